"""Yelp reviews and businesses, read as streams, plain or gzipped: the 2013 Kaggle RecSys
training set (`yelp_training_set_review.json`, `yelp_training_set_business.json`) and the
Yelp Open Dataset (`yelp_academic_dataset_review.json`, `..._business.json`), which use the
same field names.

Interactions: user_id, business_id, date, kept when `date_min <= date <= date_max`
(compared as "YYYY-MM-DD HH:MM:SS" text, as the authors do; the paper's window is
2000-01-01 .. 2019-12-31). Item columns: name, categories (joined by a space; the Open
Dataset's comma-separated text is split first), type, open ("True"/"False"; the Open
Dataset's is_open 1/0 is read as such), review_count, city, state, stars.
"""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import polars as pl

from .base import DataError, RawData
from .lines import InteractionBuffer, LineReader, joined, text


def full_timestamp(date: str) -> str:
    """'YYYY-MM-DD' or 'YYYY-MM-DD HH:MM:SS' -> the latter."""
    return date if len(date) > 10 else f"{date} 00:00:00"


def read_reviews(path: Path, date_min: str, date_max: str) -> tuple[pl.DataFrame, dict]:
    low, high = full_timestamp(date_min), full_timestamp(date_max)
    rows = InteractionBuffer()
    reader = LineReader(path)
    incomplete = outside = 0
    for review in reader:
        try:
            user, item, date = str(review["user_id"]), str(review["business_id"]), full_timestamp(str(review["date"]))
            seconds = datetime.fromisoformat(date).replace(tzinfo=timezone.utc).timestamp()
        except (KeyError, TypeError, ValueError):
            incomplete += 1
            reader.drop("a field is missing or unreadable")
            continue
        if not low <= date <= high:
            outside += 1
            continue
        rows.add(user, item, seconds)
    frame = rows.frame()
    if frame.is_empty():
        raise DataError(
            f"{path}: no review with user_id, business_id and a date in [{date_min}, {date_max}] "
            f"({reader.lines} lines, {reader.malformed} malformed)"
        )
    return frame, {
        "rows_read": reader.lines,
        "rows_malformed": reader.malformed,
        "rows_missing_fields": incomplete,
        "rows_outside_date_window": outside,
        "bad_lines": reader.bad.examples,
    }


def categories(value: object) -> str:
    if isinstance(value, str):  # the Open Dataset: "Restaurants, Pizza"
        value = [part.strip() for part in value.split(",")]
    return joined(value, " ")


def open_status(business: dict) -> str:
    if "open" in business:
        return text(business["open"])
    return text(bool(business["is_open"])) if business.get("is_open") is not None else ""


def read_businesses(path: Path, wanted: set[str]) -> tuple[pl.DataFrame, dict]:
    rows: dict[str, dict] = {}
    reader = LineReader(path)
    for business in reader:
        key = business.get("business_id")
        if key not in wanted or key in rows:
            continue
        rows[key] = {
            "item": key,
            "name": text(business.get("name")),
            "categories": categories(business.get("categories")),
            "type": text(business.get("type")),
            "open": open_status(business),
            "review_count": text(business.get("review_count")),
            "city": text(business.get("city")),
            "state": text(business.get("state")),
            "stars": text(business.get("stars")),
        }
    columns = ["item", "name", "categories", "type", "open", "review_count", "city", "state", "stars"]
    frame = pl.DataFrame(list(rows.values()), schema={c: pl.String for c in columns})
    return frame, {"meta_lines_read": reader.lines, "meta_lines_malformed": reader.malformed}


def read(paths: dict[str, Path], spec: dict) -> RawData:
    interactions, report = read_reviews(paths["reviews"], spec["date_min"], spec["date_max"])
    items, meta_report = read_businesses(paths["business"], set(interactions["item"].unique()))
    return RawData(interactions, items, {**report, **meta_report})
