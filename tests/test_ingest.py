"""Ingestion of hand-made tiny datasets in every format, against hand-computed results.

The data (user: item@time) is built so that every filtering rule fires once:
  u1: a@3 b@1 c@2 d@4   u2: a@1 b@2 c@3   u3: a@5 b@6 e@7   u4: a@1 c@2
Counted once on the unfiltered data: u4 has 2 interactions (< 3, dropped); items d and e
have 1 (dropped); c has 3 (kept, although only 2 remain once u4 is gone: single pass, not an
iterative k-core). u3 is then left with 2 items and is dropped. What remains, time-ordered:
  u1: b c a     u2: a b c     -> users u1=1, u2=2; items by first appearance b=1, c=2, a=3.
"""

import json

import polars as pl
import pytest

from pipeline.datasets import DataError, read_dataset
from pipeline.ingest import canonicalise

from conftest import EXPECTED_INTERACTIONS, ROWS

EXPECTED_REPORT = {
    "interactions_read": 12,
    "dropped_user_count_below_min": 2,
    "dropped_item_count_below_min": 2,
    "dropped_short_sequences": 2,
    "users_dropped_short_sequences": 1,
    "users": 2,
    "items": 3,
    "interactions": 6,
}


def time_ordered():
    by_user = {}
    for user, item, time in sorted(ROWS, key=lambda r: (r[0], r[2])):
        by_user.setdefault(user, []).append(item)
    return by_user


def write_recbole(tmp_path):
    inter = tmp_path / "tiny.inter"
    inter.write_text(
        "user_id:token\titem_id:token\trating:float\ttimestamp:float\n"
        + "".join(f"{u}\t{i}\t5\t{t}\n" for u, i, t in ROWS)
    )
    item = tmp_path / "tiny.item"
    # 'b' has no metadata; a title holds a quoted TAB, which RecBole's quoting allows.
    item.write_text('item_id:token\ttitle:token_seq\na\tAlpha\nc\t"Gam\tma"\nd\tDelta\n')
    return {"format": "recbole", "inter": str(inter), "item": str(item)}


def write_sequences(tmp_path):
    sequences = tmp_path / "sequences.txt"
    sequences.write_text("".join(f"{u} {' '.join(items)}\n" for u, items in time_ordered().items()))
    items = tmp_path / "items.tsv"
    items.write_text('item_id\ttitle\na\tAlpha "quoted"\nc\tGamma\nd\tDelta\n')
    return {"format": "sequences", "sequences": str(sequences), "items": str(items)}


def write_llmesr(tmp_path):
    inter = tmp_path / "inter.txt"
    inter.write_text("".join(f"{u} {i}\n" for u, items in time_ordered().items() for i in items))
    return {"format": "llmesr", "inter": str(inter)}


@pytest.mark.parametrize("writer", [write_recbole, write_sequences, write_llmesr])
def test_single_pass_filter_ids_and_report(tmp_path, writer):
    interactions, items, users, report = canonicalise(read_dataset(writer(tmp_path)), 3, 3, 3)
    assert list(zip(interactions["user"], interactions["item"])) == EXPECTED_INTERACTIONS
    assert interactions.schema == pl.Schema({"user": pl.Int32, "item": pl.Int32})
    assert users["original_id"].to_list() == ["u1", "u2"]
    assert items["original_id"].to_list() == ["b", "c", "a"]
    assert {k: report[k] for k in EXPECTED_REPORT} == EXPECTED_REPORT


def test_item_text_is_joined_and_missing_metadata_counted(tmp_path):
    _, items, _, report = canonicalise(read_dataset(write_recbole(tmp_path)), 3, 3, 3)
    assert items["title"].to_list() == ["", "Gam\tma", "Alpha"]
    assert report["items_without_metadata"] == 1


def test_sequences_items_keep_literal_quotes(tmp_path):
    _, items, _, _ = canonicalise(read_dataset(write_sequences(tmp_path)), 3, 3, 3)
    assert items.filter(pl.col("original_id") == "a")["title"].item() == 'Alpha "quoted"'


def test_llmesr_without_item_text_has_only_ids(tmp_path):
    _, items, _, report = canonicalise(read_dataset(write_llmesr(tmp_path)), 3, 3, 3)
    assert items.columns == ["item", "original_id"]
    assert report["items_without_metadata"] == 3


def test_missing_file_is_a_data_error(tmp_path):
    with pytest.raises(DataError, match="missing input files"):
        read_dataset({"format": "llmesr", "inter": str(tmp_path / "absent.txt")})


def test_ingest_cli_writes_all_artifacts(tmp_path):
    from pipeline.ingest import main

    spec = {**write_sequences(tmp_path), "max_items_without_text": 0.5}  # item b has no row
    out = {name: tmp_path / "out" / name for name in ("i.parquet", "t.parquet", "u.parquet", "r.json")}
    main(
        [
            "--spec",
            json.dumps(spec),
            "--out-interactions",
            str(out["i.parquet"]),
            "--out-items",
            str(out["t.parquet"]),
            "--out-users",
            str(out["u.parquet"]),
            "--out-report",
            str(out["r.json"]),
        ]
    )
    assert pl.read_parquet(out["i.parquet"]).height == 6
    assert json.loads(out["r.json"].read_text())["users"] == 2
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(out)  # no temporary files left


def test_ml100k_from_shared_data():
    from conftest import shared_data

    folder = shared_data("raw", "ml-100k")
    spec = {"format": "recbole", "inter": str(folder / "ml-100k.inter"), "item": str(folder / "ml-100k.item")}
    interactions, items, users, report = canonicalise(read_dataset(spec), 3, 3, 3)
    assert report["interactions_read"] == 100_000
    assert users.height == 943  # every MovieLens user has at least 20 ratings
    assert interactions.height == 100_000 - report["dropped_item_count_below_min"]
    assert items.height == interactions["item"].n_unique() == interactions["item"].max()
