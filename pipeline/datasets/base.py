"""What every source reader shares: the canonical raw frames and the error for bad input."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import polars as pl


class DataError(Exception):
    """Bad input data: the message names the file and what is wrong with it."""


@dataclass
class RawData:
    """interactions: `user` (str), `item` (str), `order` (float: time or file order);
    items: `item` (str) plus text columns (str), or None when the format has no item text."""

    interactions: pl.DataFrame
    items: pl.DataFrame | None
    report: dict = field(default_factory=dict)


def read_item_table(
    path: Path, id_column: str, quote_char: str | None, typed_header: bool = False
) -> pl.DataFrame:
    """A TAB-separated item table with a header; every column read as text, missing as ''.
    With `typed_header`, RecBole's `name:type` column names are cut to `name`."""
    try:
        frame = pl.read_csv(path, separator="\t", quote_char=quote_char, infer_schema=False)
    except pl.exceptions.PolarsError as err:
        raise DataError(f"{path}: cannot parse as a TAB-separated table with a header: {err}") from err
    if typed_header:
        frame = frame.rename({c: c.split(":", 1)[0] for c in frame.columns})
    if id_column not in frame.columns:
        raise DataError(f"{path}: no '{id_column}' column (columns: {', '.join(frame.columns)})")
    frame = frame.rename({id_column: "item"}).fill_null("")
    return frame.select("item", *[c for c in frame.columns if c != "item"])
