"""Stage `split`: the evaluation protocol of one dataset, fixed once so every model faces it.

- Leave-one-out: last item = test target, second to last = validation target.
- Candidates: each target plus `negatives` items drawn uniformly (seeded, without
  replacement) from the items the user never interacted with. Column 0 is the target. A user
  who has not seen that many items stops the stage, or under `eval.saturated: drop` gets a row
  without negatives (zeros), which evaluation leaves out (and counts).
- Head/tail groups: tail users have an input sequence (train + validation, capped at
  max_len) shorter than ts_user; tail items have a popularity (interactions over the whole
  dataset) below ts_item. Thresholds come from the dataset's config or, when absent, a
  Pareto cut: the value at the top `head_share` rank, so about that share is head.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
from pathlib import Path

import numpy as np
import polars as pl

from .data import TEST_INPUT_CUT, Sequences
from .errors import DataError
from .io import atomic_path, read_json, write_json, write_parquet
from .metrics import evaluated_users

log = logging.getLogger(__name__)


def pareto_threshold(values: np.ndarray, head_share: float) -> int:
    """The value at the top `head_share` rank (values >= it are head)."""
    ordered = np.sort(values)[::-1]
    return int(ordered[max(math.ceil(head_share * len(values)) - 1, 0)])


def item_popularity(sequences: Sequences) -> np.ndarray:
    """(n_items + 1,) interaction counts over the whole dataset; index 0 unused."""
    return np.bincount(sequences.items, minlength=sequences.n_items + 1)


def input_lengths(sequences: Sequences, max_len: int) -> np.ndarray:
    """Length of each user's test input (train + validation part), capped at max_len."""
    return np.minimum(sequences.lengths - TEST_INPUT_CUT, max_len)


def sample_candidates(
    sequences: Sequences,
    targets: np.ndarray,
    count: int,
    rng: np.random.Generator,
    saturated: str = "error",
    user_names: np.ndarray | None = None,
) -> np.ndarray:
    """(users, 1 + count): the target, then `count` distinct items the user never touched. A
    user who has touched all but fewer than `count` items is an error naming them, or with
    `saturated="drop"` gets no negatives (zeros): evaluation leaves such a row out."""
    spare = sequences.n_items - np.array(
        [len(np.unique(sequences.items[a:b])) for a, b in zip(sequences.offsets[:-1], sequences.offsets[1:])]
    )
    short = np.flatnonzero(spare < count)
    if len(short) and saturated != "drop":
        names = user_names if user_names is not None else np.arange(1, sequences.n_users + 1).astype(str)
        shown = ", ".join(f"{names[row]} ({spare[row]} unseen)" for row in short[:5])
        more = f" and {len(short) - 5} more" if len(short) > 5 else ""
        raise DataError(
            f"eval.negatives is {count}, but {len(short)} user(s) have not seen that many of the {sequences.n_items} "
            f"items: {shown}{more}. Set eval.saturated: drop to evaluate without them (they still train), or lower "
            "eval.negatives"
        )
    out = np.zeros((sequences.n_users, 1 + count), dtype=np.int32)
    out[:, 0] = targets
    for row in np.flatnonzero(spare >= count):
        seen = set(sequences.items[sequences.offsets[row] : sequences.offsets[row + 1]].tolist())
        picked: list[int] = []
        chosen: set[int] = set()
        while len(picked) < count:
            for item in rng.integers(1, sequences.n_items + 1, size=2 * count).tolist():
                if item not in seen and item not in chosen:
                    chosen.add(item)
                    picked.append(item)
                    if len(picked) == count:
                        break
        out[row, 1:] = picked
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="pipeline split", description=__doc__)
    parser.add_argument("--interactions", required=True, type=Path)
    parser.add_argument("--item-table", required=True, type=Path)
    parser.add_argument("--ingest-report", required=True, type=Path)
    parser.add_argument("--out-candidates", required=True, type=Path)
    parser.add_argument("--out-groups", required=True, type=Path)
    parser.add_argument("--out-stats", required=True, type=Path)
    parser.add_argument("--negatives", type=int, required=True)
    parser.add_argument("--seed", type=int, required=True)
    parser.add_argument("--max-len", type=int, required=True)
    parser.add_argument("--head-share", type=float, required=True)
    parser.add_argument("--thresholds", default="{}", help='JSON {"ts_user": int, "ts_item": int}, either optional')
    parser.add_argument(
        "--saturated",
        choices=["error", "drop"],
        required=True,
        help="users who have not seen --negatives items: an error, or left out of evaluation",
    )
    parser.add_argument("--user-table", type=Path, help="the ingested user table, to name saturated users")
    args = parser.parse_args(argv)

    n_items = pl.read_parquet(args.item_table).height
    sequences = Sequences.from_interactions(pl.read_parquet(args.interactions), n_items)
    popularity = item_popularity(sequences)
    lengths = input_lengths(sequences, args.max_len)
    configured = json.loads(args.thresholds)
    thresholds = {
        "ts_user": configured.get("ts_user", pareto_threshold(lengths, args.head_share)),
        "ts_item": configured.get("ts_item", pareto_threshold(popularity[1:], args.head_share)),
    }
    sources = {k: ("config" if k in configured else f"pareto(head_share={args.head_share})") for k in thresholds}
    log.info("thresholds: %s (%s)", thresholds, sources)

    rows = np.arange(sequences.n_users)
    rng = np.random.default_rng(args.seed)
    names = pl.read_parquet(args.user_table)["original_id"].cast(pl.String).to_numpy() if args.user_table else None
    valid = sample_candidates(sequences, sequences.targets(rows, 2), args.negatives, rng, args.saturated, names)
    test = sample_candidates(sequences, sequences.targets(rows, 1), args.negatives, rng, args.saturated, names)
    dropped = int((~evaluated_users(test)).sum())
    if dropped:
        log.warning(
            "eval.saturated: drop: %d user(s) have not seen %d of the items and are left out of evaluation",
            dropped,
            args.negatives,
        )
    with atomic_path(args.out_candidates) as tmp:
        np.savez(tmp, valid=valid, test=test)

    test_targets = test[:, 0]
    groups = pl.DataFrame(
        {
            "user": rows + 1,
            "input_length": lengths,
            "target": test_targets,
            "target_popularity": popularity[test_targets],
            "tail_user": lengths < thresholds["ts_user"],
            "tail_item": popularity[test_targets] < thresholds["ts_item"],
        }
    )
    write_parquet(groups, args.out_groups)

    users, items, interactions = sequences.n_users, n_items, len(sequences.items)
    tail_items = float(np.mean(popularity[1:] < thresholds["ts_item"]))
    tail_users = float(np.mean(groups["tail_user"].to_numpy()))
    write_json(
        {
            "users": users,
            "items": items,
            "interactions": interactions,
            "avg_len": round(interactions / users, 4),
            "sparsity": round(1 - interactions / (users * items), 6),
            "thresholds": thresholds,
            "threshold_source": sources,
            "user_share": {"tail": round(tail_users, 4), "head": round(1 - tail_users, 4)},
            "item_share": {"tail": round(tail_items, 4), "head": round(1 - tail_items, 4)},
            "test_targets": {
                "tail_item": int(groups["tail_item"].sum()),
                "head_item": int((~groups["tail_item"]).sum()),
            },
            "saturated_users_dropped": dropped,
            "ingest": read_json(args.ingest_report),
        },
        args.out_stats,
    )
