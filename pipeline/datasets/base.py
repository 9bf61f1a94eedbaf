"""What every source reader shares: the canonical raw frames and the error for bad input."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from ..errors import DataError  # noqa: F401  (re-exported: readers raise it)


@dataclass
class RawData:
    """interactions: `user` (str), `item` (str), `order` (float: time or file order);
    items: `item` (str) plus text columns (str), or None when the format has no item text."""

    interactions: pl.DataFrame
    items: pl.DataFrame | None
    report: dict = field(default_factory=dict)


def check_not_empty(path: Path) -> None:
    if path.stat().st_size == 0:
        raise DataError(f"{path}: the file is empty")


def first_bad_line(path: Path, quote_char: str | None) -> str:
    """Where a TAB-separated table with a header goes wrong: not UTF-8, or a line whose
    number of fields differs from the header's."""
    import csv

    with open(path, "rb") as handle:
        raw_lines = handle.read().split(b"\n")
    for number, raw in enumerate(raw_lines, start=1):
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError as err:
            return f"line {number}: not UTF-8 ({err.reason} at byte {err.start})"
    text = path.read_text(encoding="utf-8")
    reader = csv.reader(text.splitlines(keepends=True), delimiter="\t",
                        quotechar=quote_char or "\0", quoting=csv.QUOTE_MINIMAL if quote_char else csv.QUOTE_NONE)
    width = None
    for fields in reader:
        if not fields:
            continue
        if width is None:
            width = len(fields)
        elif len(fields) != width:
            return f"line {reader.line_num}: {len(fields)} fields where the header has {width}"
    return "unknown problem"


def read_table(path: Path, quote_char: str | None, typed_header: bool = False) -> pl.DataFrame:
    """A TAB-separated table with a header, every column as text. A line that does not fit is
    an error naming the file, the line and the problem. With `typed_header`, RecBole's
    `name:type` column names are cut to `name`."""
    check_not_empty(path)
    try:
        frame = pl.read_csv(path, separator="\t", quote_char=quote_char, infer_schema=False)
    except pl.exceptions.PolarsError as err:
        raise DataError(f"{path}: {first_bad_line(path, quote_char)} ({type(err).__name__})") from err
    if typed_header:
        frame = frame.rename({c: c.split(":", 1)[0] for c in frame.columns})
    return frame


def require_columns(frame: pl.DataFrame, path: Path, columns: tuple[str, ...]) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise DataError(f"{path}: no {', '.join(repr(c) for c in missing)} column (columns: {', '.join(frame.columns)})")


def read_item_table(path: Path, id_column: str, quote_char: str | None, typed_header: bool = False) -> pl.DataFrame:
    """An item table: `id_column` becomes `item`, every other column is text, missing as ''.
    Duplicate ids keep their first row (the rest are counted by ingest as duplicates)."""
    frame = read_table(path, quote_char, typed_header)
    require_columns(frame, path, (id_column,))
    frame = frame.rename({id_column: "item"}).fill_null("")
    return frame.select("item", *[c for c in frame.columns if c != "item"])
