"""One user per line (`user item item ...`, time order, space-separated) plus an item table
(`items.tsv`: TAB-separated, header, first column `item_id`, no quoting)."""
from __future__ import annotations

from pathlib import Path

import polars as pl

from .base import DataError, RawData, read_item_table


def read(paths: dict[str, Path], spec: dict) -> RawData:
    users: list[str] = []
    items: list[str] = []
    orders: list[int] = []
    malformed = 0
    with open(paths["sequences"], encoding="utf-8") as lines:
        for line in lines:
            fields = line.split()
            if len(fields) < 2:  # a user without items, or a blank line
                malformed += bool(line.strip())
                continue
            users.extend([fields[0]] * (len(fields) - 1))
            items.extend(fields[1:])
            orders.extend(range(len(fields) - 1))
    if not users:
        raise DataError(f"{paths['sequences']}: no 'user item ...' lines")
    interactions = pl.DataFrame(
        {"user": users, "item": items, "order": orders}, schema={"user": pl.String, "item": pl.String, "order": pl.Float64}
    )
    item_table = read_item_table(paths["items"], "item_id", quote_char=None)
    report = {"rows_read": interactions.height, "rows_malformed": malformed}
    return RawData(interactions, item_table, report)
