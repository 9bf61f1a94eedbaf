"""The LLM-ESR authors' `inter.txt`: `user item` per line, grouped by user in time order.
Item text is optional (`items`: a TAB-separated table with a header whose first column is
`item_id`); without it the semantic view only sees item ids."""

from __future__ import annotations

from pathlib import Path

from .base import BadLines, DataError, RawData, read_item_table
from .lines import InteractionBuffer, text_lines


def read(paths: dict[str, Path], spec: dict) -> RawData:
    rows = InteractionBuffer()
    bad = BadLines(paths["inter"])
    for number, line in enumerate(text_lines(paths["inter"]), start=1):
        if line is not None and not line.strip():
            continue
        fields = line.split() if line is not None else []
        if len(fields) != 2:
            bad.add(number, "not UTF-8" if line is None else f"{len(fields)} fields, not 'user item'")
            continue
        rows.add(fields[0], fields[1], float(number))
    interactions = rows.frame()
    if interactions.is_empty():
        raise DataError(f"{paths['inter']}: no 'user item' lines")
    item_table = read_item_table(paths["items"], "item_id", quote_char=None) if "items" in paths else None
    return RawData(
        interactions,
        item_table,
        {"rows_read": interactions.height + bad.count, "rows_malformed": bad.count, "bad_lines": bad.examples},
    )
