"""Stage `ingest`: raw files -> canonical interactions and items with contiguous 1-based ids.

The paper's preprocessing: keep every interaction; drop those whose user or item has fewer
than `min_user_interactions` / `min_item_interactions` interactions, counted ONCE on the
unfiltered data (`filter: single_pass`; `kcore` repeats the count until it holds); drop users
left with fewer than `min_sequence_length` interactions (leave-one-out needs a training,
validation and test item); order each user's interactions by time; number users and items
1..N in order of first appearance. Files that are already preprocessed (the authors'
releases) are not count-filtered unless their entry asks for it.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import polars as pl

from .datasets import DataError, RawData, input_files, read_dataset, with_defaults
from .io import file_sha256, write_json, write_parquet

log = logging.getLogger(__name__)


def count_filter(frame: pl.DataFrame, min_user: int, min_item: int, method: str, report: dict) -> pl.DataFrame:
    """Drop interactions whose user or item has too few. `single_pass` (the paper) counts once
    on the unfiltered data; `kcore` repeats until every count holds."""
    passes = 0
    while True:
        passes += 1
        counted = frame.with_columns(user_count=pl.len().over("user"), item_count=pl.len().over("item"))
        user_short = pl.col("user_count") < min_user
        item_short = ~user_short & (pl.col("item_count") < min_item)
        dropped_users, dropped_items = counted.filter(user_short).height, counted.filter(item_short).height
        report["dropped_user_count_below_min"] = report.get("dropped_user_count_below_min", 0) + dropped_users
        report["dropped_item_count_below_min"] = report.get("dropped_item_count_below_min", 0) + dropped_items
        frame = counted.filter(~user_short & ~item_short).drop("user_count", "item_count")
        if method == "single_pass" or dropped_users + dropped_items == 0:
            report["filter_passes"] = passes
            return frame


def canonicalise(
    raw: RawData,
    min_user_interactions: int,
    min_item_interactions: int,
    min_sequence_length: int,
    method: str = "single_pass",
) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame, dict]:
    """Returns (interactions[user, item], items[item, original_id, text...],
    users[user, original_id], report). Interactions are sorted by user, then time."""
    report = {**raw.report, "interactions_read": raw.interactions.height, "filter": method}
    frame = count_filter(
        raw.interactions.with_row_index("row"), min_user_interactions, min_item_interactions, method, report
    )
    short = pl.len().over("user") < min_sequence_length
    report["dropped_short_sequences"] = frame.filter(short).height
    report["users_dropped_short_sequences"] = frame.filter(short)["user"].n_unique()
    frame = frame.filter(~short)
    if frame.is_empty():
        raise DataError(
            f"no interactions are left after filtering ({report['interactions_read']} read; dropped: "
            f"{report['dropped_user_count_below_min']} for users with < {min_user_interactions}, "
            f"{report['dropped_item_count_below_min']} for items with < {min_item_interactions}, "
            f"{report['dropped_short_sequences']} in sequences shorter than {min_sequence_length}); "
            "lower min_user_interactions / min_item_interactions for this dataset"
        )
    # Users in order of their first kept interaction; each user's interactions by time (ties
    # keep the source order); items in order of first appearance along that.
    first_row = frame.group_by("user").agg(first_row=pl.col("row").min())
    frame = frame.join(first_row, on="user").sort("first_row", "order", "row")

    user_ids = frame.select(original_id="user").unique(maintain_order=True).with_row_index("user", offset=1)
    item_ids = frame.select(original_id="item").unique(maintain_order=True).with_row_index("item", offset=1)
    interactions = (
        frame.select(pl.col("user").alias("original_user"), pl.col("item").alias("original_item"))
        .join(user_ids.rename({"original_id": "original_user"}), on="original_user", maintain_order="left")
        .join(item_ids.rename({"original_id": "original_item"}), on="original_item", maintain_order="left")
        .select(pl.col("user").cast(pl.Int32), pl.col("item").cast(pl.Int32))
    )

    items = item_ids.with_columns(pl.col("item").cast(pl.Int32))
    if raw.items is not None:
        report["duplicate_item_rows"] = raw.items.height - raw.items["item"].n_unique()
        text = raw.items.unique("item", keep="first", maintain_order=True).rename({"item": "original_id"})
        items = items.join(text, on="original_id", how="left", maintain_order="left")
        text_columns = [c for c in items.columns if c not in ("item", "original_id")]
        report["items_without_metadata"] = (
            items.filter(pl.all_horizontal(pl.col(c).is_null() for c in text_columns)).height
            if text_columns
            else items.height
        )
        unmatched = items.join(text, on="original_id", how="anti")["original_id"]
        unused = text.join(items, on="original_id", how="anti")["original_id"]
        report["items_without_text_row"] = unmatched.len()
        report["unmatched_item_ids"] = {
            "interactions": unmatched.head(5).to_list(),
            "item_table": unused.head(5).to_list(),
        }
        items = items.with_columns(pl.col(text_columns).fill_null(""))
    else:
        report["items_without_metadata"] = items.height
    users = user_ids.with_columns(pl.col("user").cast(pl.Int32))

    report.update(users=users.height, items=items.height, interactions=interactions.height)
    return interactions, items, users, report


def dropped(report: dict) -> list[tuple[str, int, int]]:
    """What reading dropped, as (what and why, how many, out of how many): lines of the
    interaction file, the interactions on them where a line holds many, and item-table rows."""
    lines_read = max(report.get("lines_read", report.get("rows_read", 0)), 1)
    found = [
        ("malformed lines (not UTF-8 or not parseable)", report.get("rows_malformed", 0), lines_read),
        ("lines missing a field", report.get("rows_missing_fields", 0), lines_read),
        (
            "lines repeating a user of an earlier line (a user's sequence must be on one line)",
            report.get("duplicate_user_lines", 0),
            lines_read,
        ),
        (
            "interactions on those repeated lines",
            report.get("interactions_in_duplicate_lines", 0),
            max(report.get("rows_read", 0), 1),
        ),
        (
            "malformed lines of the item file",
            report.get("meta_lines_malformed", 0),
            max(report.get("meta_lines_read", 0), 1),
        ),
    ]
    return [entry for entry in found if entry[1]]


def drop_summary(report: dict) -> list[str]:
    """One line per kind of dropped data (and per duplicate item row, and the items without a
    row in the item table), for the log and the console."""
    lines = [f"{count} of {total} {what} ({count / total:.2%}) dropped" for what, count, total in dropped(report)]
    if report.get("duplicate_item_rows"):
        lines.append(f"{report['duplicate_item_rows']} item rows repeat an item id (the first row of each id is kept)")
    if report.get("items_without_text_row"):
        lines.append(
            f"{report['items_without_text_row']} of {report['items']} items have no row in the item table: their "
            f"prompts read the missing text (e.g. {', '.join(map(repr, report['unmatched_item_ids']['interactions']))})"
        )
    return lines


def print_drops(results: Path, since: float) -> None:
    """On the console at the end of a workflow run: what the ingestions of this run dropped."""
    import sys

    for path in sorted(results.glob("*/ingest/report.json")):
        if path.stat().st_mtime >= since and (lines := drop_summary(json.loads(path.read_text()))):
            print(
                f"{path.parent.parent.name}: ingestion dropped data (details in {path}):\n  " + "\n  ".join(lines),
                file=sys.stderr,
            )


def check_drops(report: dict, limit: float, files: str) -> None:
    """Dropped data above `max_bad_rows` (a share of the lines, or of the interactions) means the
    input is more likely wrong than dirty: stop, saying what was dropped, why and where."""
    over = [(what, count, total) for what, count, total in dropped(report) if count / total > limit]
    if not over:
        return
    reasons = "; ".join(f"{count} of {total} {what} ({count / total:.1%})" for what, count, total in over)
    where = f" First: {'; '.join(report['bad_lines'])}." if report.get("bad_lines") else ""
    raise DataError(
        f"{files}: {reasons}: more than max_bad_rows ({limit:.1%}) would be dropped.{where} Fix the file, "
        "or raise max_bad_rows for this dataset to accept the loss"
    )


def check_item_text(report: dict, limit: float, files: str) -> None:
    """Items whose id matches no row of the item table above `limit` (a share of the items)
    mean the two files name items differently: every such prompt would read the missing text,
    and the method's semantic input would be lost without a word. Stop, showing ids of both."""
    missing, items = report.get("items_without_text_row", 0), report["items"]
    if not missing or missing / items <= limit:
        return
    ids = report["unmatched_item_ids"]
    raise DataError(
        f"{files}: {missing} of {items} items ({missing / items:.1%}) have no row in the item table, more than "
        f"max_items_without_text ({limit:.1%}): their prompts would all read the missing text. Ids without a row: "
        f"{', '.join(map(repr, ids['interactions']))}; ids of the item table that match no interaction: "
        f"{', '.join(map(repr, ids['item_table'])) or 'none'}. Are both written the same way (the same column, "
        "no spaces, no leading zeros)? Fix the files, or raise max_items_without_text for this dataset"
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="pipeline ingest", description=__doc__)
    parser.add_argument("--spec", required=True, help="the dataset's config entry, as JSON")
    for name in ("interactions", "items", "users", "report"):
        parser.add_argument(f"--out-{name}", required=True, type=Path)
    args = parser.parse_args(argv)
    spec = json.loads(args.spec)

    spec = with_defaults(spec)
    raw = read_dataset(spec)
    check_drops(raw.report, spec["max_bad_rows"], ", ".join(map(str, input_files(spec).values())))
    raw.report["source_sha256"] = {key: file_sha256(path) for key, path in input_files(spec).items()}
    interactions, items, users, report = canonicalise(
        raw,
        spec["min_user_interactions"],
        spec["min_item_interactions"],
        spec["min_sequence_length"],
        spec["filter"],
    )
    check_item_text(report, spec["max_items_without_text"], ", ".join(map(str, input_files(spec).values())))
    for key, value in report.items():
        log.info("%s: %s", key, value)
    for line in drop_summary(report):
        log.warning("%s", line)
    write_parquet(interactions, args.out_interactions)
    write_parquet(items, args.out_items)
    write_parquet(users, args.out_users)
    write_json(report, args.out_report)
