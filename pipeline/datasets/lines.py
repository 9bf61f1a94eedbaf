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

from .base import DataError


def open_binary(path: Path) -> IO[bytes]:
    with open(path, "rb") as handle:
        gzipped = handle.read(2) == b"\x1f\x8b"
    return gzip.open(path, "rb") if gzipped else open(path, "rb")


def python_literal(text: str) -> object:
    """Amazon 2014 meta lines are Python dict literals, not JSON: parsed without evaluation."""
    return ast.literal_eval(text)


class LineReader:
    """Iterates the parsed dict of every well-formed line; counts the others."""

    def __init__(self, path: Path, parse: Callable[[str], object] = json.loads):
        self.path, self.parse = path, parse
        self.lines = self.malformed = 0

    def __iter__(self) -> Iterator[dict]:
        try:
            with open_binary(self.path) as handle:
                for raw in handle:
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
