"""Amazon review dumps (McAuley lab), read as streams.

- `amazon2014`: `reviews_<Cat>.json.gz` (JSON lines) + `meta_<Cat>.json.gz` (one Python-literal
  dict per line, parsed with ast.literal_eval, never eval).
- `amazon2018`: `<Cat>.json.gz` + `meta_<Cat>.json.gz` (both JSON lines).

Interactions: reviewerID, asin, unixReviewTime (every rating kept, as in the paper). Item
columns (for prompt templates): title, brand, price, date, plus, as one string each,
`categories` (2014: the first category path joined by "; "), `category`, `feature` and
`description` (2018 lists joined by "; "; 2014's description is a plain string).
Only the items that occur in the reviews are kept from the meta file.
"""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl

from .base import DataError, RawData
from .lines import InteractionBuffer, LineReader, joined, python_literal, text


def read_reviews(path: Path) -> tuple[pl.DataFrame, dict]:
    rows = InteractionBuffer()
    reader = LineReader(path)
    incomplete = 0
    for review in reader:
        try:
            rows.add(str(review["reviewerID"]), str(review["asin"]), float(int(review["unixReviewTime"])))
        except (KeyError, TypeError, ValueError):
            incomplete += 1
            reader.drop("a field is missing or unreadable")
    frame = rows.frame()
    if frame.is_empty():
        raise DataError(
            f"{path}: no review with reviewerID, asin and unixReviewTime "
            f"({reader.lines} lines, {reader.malformed} malformed)"
        )
    report = {
        "rows_read": reader.lines,
        "rows_malformed": reader.malformed,
        "rows_missing_fields": incomplete,
        "bad_lines": reader.bad.examples,
    }
    return frame, report


def read_meta(path: Path, wanted: set[str], python_literals: bool) -> tuple[pl.DataFrame, dict]:
    rows: dict[str, dict] = {}
    reader = LineReader(path, parse=python_literal if python_literals else json.loads)
    for meta in reader:
        asin = meta.get("asin")
        if asin not in wanted or asin in rows:
            continue
        categories = meta.get("categories")
        first_path = (
            categories[0] if isinstance(categories, list) and categories and isinstance(categories[0], list) else []
        )
        rows[asin] = {
            "item": asin,
            "title": text(meta.get("title")),
            "brand": text(meta.get("brand")),
            "price": text(meta.get("price")),
            "date": text(meta.get("date")),
            "categories": joined(first_path, "; "),
            "category": joined(meta.get("category"), "; "),
            "feature": joined(meta.get("feature"), "; "),
            "description": joined(meta.get("description"), "; "),
        }
    columns = ["item", "title", "brand", "price", "date", "categories", "category", "feature", "description"]
    frame = pl.DataFrame(list(rows.values()), schema={c: pl.String for c in columns})
    return frame, {"meta_lines_read": reader.lines, "meta_lines_malformed": reader.malformed}


def _read(paths: dict[str, Path], python_literals: bool) -> RawData:
    interactions, report = read_reviews(paths["reviews"])
    items, meta_report = read_meta(paths["meta"], set(interactions["item"].unique()), python_literals)
    return RawData(interactions, items, {**report, **meta_report})


def read_2014(paths: dict[str, Path], spec: dict) -> RawData:
    return _read(paths, python_literals=True)


def read_2018(paths: dict[str, Path], spec: dict) -> RawData:
    return _read(paths, python_literals=False)
