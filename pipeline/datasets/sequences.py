"""One user per line (`user item item ...`, time order, space-separated) plus an item table
(`items.tsv`: TAB-separated, header, first column `item_id`, no quoting). A line that is not
UTF-8 or has no item is malformed; a second line for the same user is dropped (its order
against the first is unknown) and counted with its interactions. Ingest stops when either
share passes `max_bad_rows`; the report names the first bad lines."""

from __future__ import annotations

from pathlib import Path

from .base import BadLines, DataError, RawData, read_item_table
from .lines import InteractionBuffer, text_lines


def read(paths: dict[str, Path], spec: dict) -> RawData:
    rows = InteractionBuffer()
    lines_read = malformed = duplicates = duplicate_interactions = 0
    bad = BadLines(paths["sequences"])
    first_line: dict[str, int] = {}
    for number, line in enumerate(text_lines(paths["sequences"]), start=1):
        if line is not None and not line.strip():
            continue
        lines_read += 1
        fields = line.split() if line is not None else []
        if len(fields) < 2:
            malformed += 1
            bad.add(number, "not UTF-8" if line is None else "a user without items")
            continue
        if fields[0] in first_line:
            duplicates += 1
            duplicate_interactions += len(fields) - 1
            bad.add(number, f"user {fields[0]} again (first on line {first_line[fields[0]]})")
            continue
        first_line[fields[0]] = number
        for position, item in enumerate(fields[1:]):
            rows.add(fields[0], item, float(position))
    interactions = rows.frame()
    if interactions.is_empty():
        raise DataError(f"{paths['sequences']}: no 'user item ...' lines ({lines_read} lines, {malformed} malformed)")
    item_table = read_item_table(paths["items"], "item_id", quote_char=None)
    report = {
        "lines_read": lines_read,
        "rows_read": interactions.height + duplicate_interactions,
        "rows_malformed": malformed,
        "duplicate_user_lines": duplicates,
        "interactions_in_duplicate_lines": duplicate_interactions,
        "bad_lines": bad.examples,
    }
    return RawData(interactions, item_table, report)
