"""The LLM-ESR authors' `inter.txt`: `user item` per line, grouped by user in time order.
Item text is optional (`items`: a TAB-separated table with a header whose first column is
`item_id`); without it the semantic view only sees item ids."""
from __future__ import annotations

from pathlib import Path

import polars as pl

from .base import DataError, RawData, read_item_table


def read(paths: dict[str, Path], spec: dict) -> RawData:
    users: list[str] = []
    items: list[str] = []
    malformed = 0
    with open(paths["inter"], encoding="utf-8") as lines:
        for line in lines:
            fields = line.split()
            if len(fields) != 2:
                malformed += bool(line.strip())
                continue
            users.append(fields[0])
            items.append(fields[1])
    if not users:
        raise DataError(f"{paths['inter']}: no 'user item' lines")
    interactions = pl.DataFrame({"user": users, "item": items}).with_columns(
        order=pl.int_range(pl.len()).cast(pl.Float64)
    )
    item_table = read_item_table(paths["items"], "item_id", quote_char=None) if "items" in paths else None
    return RawData(interactions, item_table, {"rows_read": len(users) + malformed, "rows_malformed": malformed})
