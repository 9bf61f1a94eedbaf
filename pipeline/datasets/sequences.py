"""One user per line (`user item item ...`, time order, space-separated) plus an item table
(`items.tsv`: TAB-separated, header, first column `item_id`, no quoting). A line that is not
UTF-8 or has no item is counted as malformed; a second line for the same user is dropped and
counted (`duplicate_user_lines`)."""
from __future__ import annotations

from pathlib import Path

from .base import DataError, RawData, read_item_table
from .lines import InteractionBuffer, text_lines


def read(paths: dict[str, Path], spec: dict) -> RawData:
    rows = InteractionBuffer()
    lines_read = malformed = duplicates = 0
    seen: set[str] = set()
    for line in text_lines(paths["sequences"]):
        if line is not None and not line.strip():
            continue
        lines_read += 1
        fields = line.split() if line is not None else []
        if len(fields) < 2:  # not UTF-8, or a user without items
            malformed += 1
            continue
        if fields[0] in seen:  # a second line for a user: its order against the first is unknown
            duplicates += 1
            continue
        seen.add(fields[0])
        for position, item in enumerate(fields[1:]):
            rows.add(fields[0], item, float(position))
    interactions = rows.frame()
    if interactions.is_empty():
        raise DataError(f"{paths['sequences']}: no 'user item ...' lines ({lines_read} lines, {malformed} malformed)")
    item_table = read_item_table(paths["items"], "item_id", quote_char=None)
    report = {"lines_read": lines_read, "rows_read": interactions.height, "rows_malformed": malformed,
              "duplicate_user_lines": duplicates}
    return RawData(interactions, item_table, report)
