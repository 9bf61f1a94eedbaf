"""Streaming line readers for large raw dumps: plain or gzipped (detected from the file's
first bytes, not its name), one record per line, decoded and parsed line by line so memory
stays bounded by what the caller keeps. A line that is not UTF-8 or does not parse to a
dict is counted, never fatal."""

from __future__ import annotations

import ast
import gzip
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO

import polars as pl

from .base import BadLines, DataError, check_not_empty


def open_binary(path: Path) -> IO[bytes]:
    with open(path, "rb") as handle:
        gzipped = handle.read(2) == b"\x1f\x8b"
    return gzip.open(path, "rb") if gzipped else open(path, "rb")


def python_literal(text: str) -> object:
    """Amazon 2014 meta lines are Python dict literals, not JSON: parsed without evaluation."""
    return ast.literal_eval(text)


UTF8_BOM = b"\xef\xbb\xbf"  # a byte-order mark some editors put at the start of a file


def text_lines(path: Path) -> Iterator[str | None]:
    """The lines of a plain text file, each decoded on its own: None for one that is not
    UTF-8 (the caller counts it), so one bad byte does not sink the file. A byte-order mark
    at the start is not part of the first line."""
    check_not_empty(path)
    with open(path, "rb") as handle:
        for number, raw in enumerate(handle):
            try:
                yield (raw.removeprefix(UTF8_BOM) if number == 0 else raw).decode("utf-8")
            except UnicodeDecodeError:
                yield None


class LineReader:
    """Iterates the parsed dict of every well-formed line; counts the others and keeps where
    they are (`bad`). A caller that drops a record it was given calls `drop(why)`."""

    def __init__(self, path: Path, parse: Callable[[str], object] = json.loads):
        self.path, self.parse = path, parse
        self.lines = self.malformed = self.line_number = 0
        self.bad = BadLines(path)

    def drop(self, why: str) -> None:
        """The record just yielded is dropped: note its line."""
        self.bad.add(self.line_number, why)

    def __iter__(self) -> Iterator[dict]:
        check_not_empty(self.path)
        try:
            with open_binary(self.path) as handle:
                for raw in handle:
                    self.line_number += 1
                    raw = raw.removeprefix(UTF8_BOM) if self.line_number == 1 else raw
                    if not raw.strip():
                        continue
                    self.lines += 1
                    try:
                        record = self.parse(raw.decode("utf-8"))
                    except (UnicodeDecodeError, ValueError, SyntaxError, RecursionError, MemoryError):
                        record = None
                    if isinstance(record, dict):
                        yield record
                    else:
                        self.malformed += 1
                        self.drop("not UTF-8 or not a record")
        except (OSError, EOFError, gzip.BadGzipFile) as err:
            raise DataError(f"{self.path}: cannot read ({err})") from err


def joined(value: object, separator: str) -> str:
    """A list of strings as one string ('' when missing or empty); a scalar as text."""
    if isinstance(value, (list, tuple)):
        return separator.join(str(v) for v in value if v not in (None, ""))
    return text(value)


def text(value: object) -> str:
    """A scalar field as text, the way Python prints it ('' when missing)."""
    return "" if value is None else str(value)


class InteractionBuffer:
    """Collects (user, item, order) rows in small Python lists and moves them into compact
    polars frames every `chunk` rows, so memory grows with the kept interactions in Arrow
    form, not with Python objects."""

    SCHEMA = {"user": pl.String, "item": pl.String, "order": pl.Float64}

    def __init__(self, chunk: int = 500_000):
        self.chunk = chunk
        self.frames: list[pl.DataFrame] = []
        self.users: list[str] = []
        self.items: list[str] = []
        self.orders: list[float] = []

    def add(self, user: str, item: str, order: float) -> None:
        self.users.append(user)
        self.items.append(item)
        self.orders.append(order)
        if len(self.users) >= self.chunk:
            self.flush()

    def flush(self) -> None:
        if self.users:
            self.frames.append(
                pl.DataFrame({"user": self.users, "item": self.items, "order": self.orders}, schema=self.SCHEMA)
            )
            self.users, self.items, self.orders = [], [], []

    def frame(self) -> pl.DataFrame:
        self.flush()
        return pl.concat(self.frames) if self.frames else pl.DataFrame(schema=self.SCHEMA)
