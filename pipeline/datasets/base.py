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


class BadLines:
    """Where a file's dropped lines are, for the report and messages: the first few, by line number."""

    KEEP = 5

    def __init__(self, path: Path):
        self.path, self.count, self.examples = path, 0, []

    def add(self, number: int, why: str) -> None:
        self.count += 1
        if len(self.examples) < self.KEEP:
            self.examples.append(f"{self.path}:{number}: {why}")


def table_problems(path: Path, quote_char: str | None) -> list[str]:
    """The lines of a TAB-separated table with a header that are not UTF-8 or whose number of
    fields differs from the header's (too few as well as too many), as 'line N: problem'."""
    import csv

    problems = []
    with open(path, "rb") as handle:
        for number, raw in enumerate(handle, start=1):
            try:
                raw.decode("utf-8")
            except UnicodeDecodeError as err:
                problems.append(f"line {number}: not UTF-8 ({err.reason} at byte {err.start})")
    if problems:
        return problems
    with open(path, encoding="utf-8", newline="") as handle:
        reader = csv.reader(
            handle,
            delimiter="\t",
            quotechar=quote_char or "\0",
            quoting=csv.QUOTE_MINIMAL if quote_char else csv.QUOTE_NONE,
        )
        width = None
        for fields in reader:
            if not fields:
                continue
            if width is None:
                width = len(fields)
            elif len(fields) != width:
                problems.append(f"line {reader.line_num}: {len(fields)} fields where the header has {width}")
    return problems


def read_table(path: Path, quote_char: str | None, typed_header: bool = False) -> pl.DataFrame:
    """A TAB-separated table with a header, every column as text. A line that does not fit
    (not UTF-8, too few or too many fields) is an error naming the file, the line and the
    problem. With `typed_header`, RecBole's `name:type` column names are cut to `name`."""
    check_not_empty(path)
    problems = table_problems(path, quote_char)
    if problems:
        more = f" (and {len(problems) - 3} more lines)" if len(problems) > 3 else ""
        raise DataError(f"{path}: " + "; ".join(problems[:3]) + more)
    try:
        frame = pl.read_csv(path, separator="\t", quote_char=quote_char, infer_schema=False)
    except pl.exceptions.PolarsError as err:
        raise DataError(f"{path}: cannot be read as a TAB-separated table ({type(err).__name__}: {err})") from err
    if typed_header:
        frame = frame.rename({c: c.split(":", 1)[0] for c in frame.columns})
    return frame


def require_columns(frame: pl.DataFrame, path: Path, columns: tuple[str, ...]) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise DataError(
            f"{path}: no {', '.join(repr(c) for c in missing)} column (columns: {', '.join(frame.columns)})"
        )


def read_item_table(path: Path, id_column: str, quote_char: str | None, typed_header: bool = False) -> pl.DataFrame:
    """An item table: `id_column` becomes `item`, every other column is text, missing as ''.
    Duplicate ids keep their first row (ingest counts the others as `duplicate_item_rows`)."""
    frame = read_table(path, quote_char, typed_header)
    require_columns(frame, path, (id_column,))
    frame = frame.rename({id_column: "item"}).fill_null("")
    return frame.select("item", *[c for c in frame.columns if c != "item"])
