"""RecBole atomic files: `.inter` (user_id, item_id[, timestamp]) and `.item` (item_id + text),
TAB-separated, headers typed as `name:type`, fields optionally quoted with '"'."""

from __future__ import annotations

from pathlib import Path

import polars as pl

from .base import BadLines, RawData, read_item_table, read_table, require_columns


def read(paths: dict[str, Path], spec: dict) -> RawData:
    inter = read_table(paths["inter"], '"', typed_header=True)
    require_columns(inter, paths["inter"], ("user_id", "item_id"))
    rows_read = inter.height
    if "timestamp" in inter.columns:
        order = pl.col("timestamp").cast(pl.Float64, strict=False)
    else:  # without timestamps the file order is the time order
        order = pl.int_range(pl.len()).cast(pl.Float64)
    interactions = inter.select(user=pl.col("user_id").fill_null(""), item=pl.col("item_id").fill_null(""), order=order)
    broken = pl.col("order").is_null() | (pl.col("user") == "") | (pl.col("item") == "")
    bad = BadLines(paths["inter"])
    for row in interactions.with_row_index("row").filter(broken)["row"].to_list():
        bad.add(row + 2, "an empty user or item, or a timestamp that is not a number")  # line 1 is the header
    interactions = interactions.filter(~broken)

    items = read_item_table(paths["item"], "item_id", '"', typed_header=True)
    return RawData(
        interactions, items, {"rows_read": rows_read, "rows_malformed": bad.count, "bad_lines": bad.examples}
    )
