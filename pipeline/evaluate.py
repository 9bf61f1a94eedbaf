"""Stage `evaluate`: the best checkpoint of one run on the test targets, under both protocols,
overall and per head/tail group:
- sampled (the paper's): the target among its 100 fixed negatives;
- full ranking: the target among all items, the user's history excluded (except the target).
HR, NDCG and MRR at each K; under full ranking also item coverage and the share of tail items
in the top-K lists. Writes the run's metrics (JSON) and per-user results (Parquet: group,
target rank under both protocols, top-K recommended items as original ids)."""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

import numpy as np
import polars as pl
import torch

from . import provenance
from .checkpoints import load_for_scoring, load_run
from .config import with_defaults
from .data import TEST_INPUT_CUT, VALID_INPUT_CUT, Sequences, log_popularity, shard_bounds
from .errors import DataError
from .io import atomic_path, read_json, write_json, write_parquet
from .metrics import GROUPS, PAPER_K, beyond_accuracy, cutoffs, evaluated_users, group_masks, group_metrics, hr_ndcg
from .schema import leaves
from .scoring import full_ranking, representations, sampled_ranks

log = logging.getLogger(__name__)

# Users per batch of sampled_ranks (a multiple of full_ranking's): shards of the evaluation
# start on these batches, so that every score is computed as in the unsharded pass.
SHARD_USERS = 4096


def check_options(path: Path, history: dict, record: dict) -> None:
    """The run's model must have been trained with the options this evaluation reports (a
    trainer left running after Snakemake was killed can finish a run with older ones). A run
    trained before histories recorded their options is taken as it is; an option added after a
    run was trained counts as its default there, as it does when the checkpoint loads."""
    if "options" not in history:
        log.warning("%s records no options (an older run): not checked against this evaluation's", path)
        return
    trained, asked = option_leaves(history["options"]), option_leaves(record)
    differ = sorted(key for key in trained.keys() | asked.keys() if trained.get(key) != asked.get(key))
    if differ:
        shown = "; ".join(f"{key}: trained {trained.get(key)!r}, asked {asked.get(key)!r}" for key in differ[:5])
        raise DataError(
            f"{path}: this run was trained with other options than the ones it would be reported under ({shown}): "
            f"its model is not reported. Delete {path.parent} and run again"
        )


def option_leaves(options: dict) -> dict[str, object]:
    """The model and train options, defaults filled in, as {"train.lr": 0.001, ...}."""
    filled = with_defaults({"model": options["model"], "train": options["train"]})
    return {".".join(key): value for key, value in leaves({part: filled[part] for part in ("model", "train")}).items()}


def user_mean_cosine(users: torch.Tensor) -> float:
    """Mean cosine similarity over all pairs of distinct users: near 0 when their directions
    spread out, 1 when every user points the same way. Exact in O(n d): the squared length
    of the sum of the unit vectors is n plus the sum over ordered pairs of their cosines."""
    unit = torch.nn.functional.normalize(users.double(), dim=1)
    n, total = len(unit), unit.sum(dim=0)
    return round(float((total @ total - n) / max(n * (n - 1), 1)), 4)


def semantic_share_per_user(users: torch.Tensor, items: torch.Tensor, targets: np.ndarray, split: int) -> np.ndarray:
    """Two-view models (LLM-ESR): |semantic half of the target's score| / (|collaborative half|
    + |semantic half|) per user; the halves are the first `split` and the remaining coordinates
    of the user and item vectors."""
    target_vectors = items[torch.from_numpy(targets).to(items.device)]
    products = users * target_vectors
    collaborative, semantic = products[:, :split].sum(1).abs(), products[:, split:].sum(1).abs()
    return (semantic / (collaborative + semantic).clamp(min=1e-12)).cpu().numpy()


def group_means(values: np.ndarray, masks: dict[str, np.ndarray]) -> dict[str, float | None]:
    return {name: round(float(values[mask].mean()), 4) if mask.any() else None for name, mask in masks.items()}


def semantic_shares(
    users: torch.Tensor, items: torch.Tensor, targets: np.ndarray, split: int, masks: dict[str, np.ndarray]
) -> dict[str, float | None]:
    """Per group, the mean over users of semantic_share_per_user."""
    return group_means(semantic_share_per_user(users, items, targets, split), masks)


def validation_top(
    model: torch.nn.Module, sequences: Sequences, valid: np.ndarray, max_len: int, device: torch.device, gammas: list
) -> dict[str, tuple[float, float]]:
    """For each gamma of score - gamma * log(1 + training popularity): the full-ranking
    validation (NDCG@10, coverage@10) over the evaluated users."""
    users, items = representations(model, sequences, VALID_INPUT_CUT, max_len, device)
    penalty = torch.from_numpy(log_popularity(sequences)).to(device)
    evaluated = evaluated_users(valid)
    tried = {}
    for gamma in sorted(gammas):
        ranks, top = full_ranking(users, items, sequences, VALID_INPUT_CUT, valid[:, 0], 10, item_bias=-gamma * penalty)
        coverage = np.unique(top[evaluated]).size / sequences.n_items
        tried[str(gamma)] = (float(hr_ndcg(ranks[evaluated], 10)[1]), coverage)
    return tried


def chosen_gamma(tried: dict[str, tuple[float, float]], breadth: float | None) -> float:
    """The gamma of the best validation NDCG@10 (the smallest on a tie); with `breadth`, the
    smallest gamma whose validation coverage@10 reaches it (the largest if none does)."""
    gammas = sorted(tried, key=float)
    if breadth is None:
        return float(max(gammas, key=lambda gamma: tried[gamma][0]))
    return float(next((gamma for gamma in gammas if tried[gamma][1] >= breadth), gammas[-1]))


def popularity_correction(
    args: argparse.Namespace, model: torch.nn.Module, sequences: Sequences, max_len: int, device: torch.device
) -> tuple[float, dict[str, tuple[float, float]], float | None]:
    """(gamma, validation NDCG@10 and coverage@10 by gamma, the reference's validation
    coverage@10 with --breadth-reference, else None)."""
    valid = np.load(args.candidates)["valid"]
    tried = validation_top(model, sequences, valid, max_len, device, args.popularity_gammas)
    breadth = None
    if args.breadth_reference is not None:
        reference, state = load_run(args.breadth_reference, device)
        ((_, breadth),) = validation_top(reference, sequences, valid, state["model"]["max_len"], device, [0]).values()
    return chosen_gamma(tried, breadth), tried, breadth


def score(args: argparse.Namespace, start: int | None = None, stop: int | None = None) -> dict[str, np.ndarray]:
    """The model's scores of the users start..stop (default: all): target ranks under both
    protocols, top-K lists, user vectors, semantic shares (two-view models), and with
    --popularity-gammas the same under the correction chosen on validation. Every user's
    vector is computed (one pass, as unsharded), only the slice is scored."""
    model, state, _, sequences, device = load_for_scoring(
        args.checkpoint, args.interactions, args.item_table, args.device, args.threads
    )
    candidates = np.load(args.candidates)["test"]
    start, stop = start or 0, len(candidates) if stop is None else stop
    owners = np.arange(start, stop)
    k = max(cutoffs(args.k))
    started = time.perf_counter()
    users, items = representations(model, sequences, TEST_INPUT_CUT, state["model"]["max_len"], device)
    users = users[start:stop]
    represent_seconds = time.perf_counter() - started
    started = time.perf_counter()
    sampled = sampled_ranks(users, items, candidates[start:stop])
    sampled_seconds = time.perf_counter() - started + represent_seconds
    started = time.perf_counter()
    full, top = full_ranking(users, items, sequences, TEST_INPUT_CUT, candidates[start:stop, 0], k, owners=owners)
    full_seconds = time.perf_counter() - started + represent_seconds
    n = len(sampled)
    log.info(
        "scored %d users: sampled %.2f s (%.0f users/s), full ranking %.2f s (%.0f users/s)",
        n,
        sampled_seconds,
        n / sampled_seconds,
        full_seconds,
        n / full_seconds,
    )
    scores = {
        "sampled": sampled,
        "full": full,
        "top": top,
        "users": users.cpu().numpy(),
        "seconds": np.array([sampled_seconds, full_seconds]),
        "device": np.array(str(device)),
    }
    if getattr(model, "view_split", None):
        scores["semantic_share"] = semantic_share_per_user(users, items, candidates[start:stop, 0], model.view_split)
    if args.popularity_gammas:
        gamma, tried, breadth = popularity_correction(args, model, sequences, state["model"]["max_len"], device)
        bias = -gamma * torch.from_numpy(log_popularity(sequences)).to(device)
        scores["corrected_full"], scores["corrected_top"] = full_ranking(
            users, items, sequences, TEST_INPUT_CUT, candidates[start:stop, 0], k, item_bias=bias, owners=owners
        )
        scores["corrected_sampled"] = sampled_ranks(users, items, candidates[start:stop], item_bias=bias)
        scores["gamma"], scores["tried"] = np.array(gamma), np.array(json.dumps(tried))
        scores["breadth"] = np.array(np.nan if breadth is None else breadth)
        log.info("popularity correction: gamma %s (validation full NDCG@10, coverage@10 by gamma: %s)", gamma, tried)
    return scores


def report(args: argparse.Namespace, scores: dict[str, np.ndarray]) -> None:
    """metrics.json and the per-user Parquet from the scores of every user, in order."""
    history = read_json(args.history)
    item_table = pl.read_parquet(args.item_table)
    sequences = Sequences.from_interactions(pl.read_parquet(args.interactions), item_table.height)
    candidates = np.load(args.candidates)["test"]
    groups = pl.read_parquet(args.groups)
    stats = read_json(args.stats)
    ks = cutoffs(args.k)
    sampled, full, top = scores["sampled"], scores["full"], scores["top"]
    n = len(sampled)
    sampled_seconds, full_seconds = scores["seconds"]

    evaluated = evaluated_users(candidates)
    masks = group_masks(groups["tail_user"].to_numpy(), groups["tail_item"].to_numpy(), evaluated)
    popularity = np.bincount(sequences.items, minlength=sequences.n_items + 1)
    tail_items = popularity < stats["thresholds"]["ts_item"]
    tail_items[0] = False
    sampled_groups = group_metrics(sampled, masks, ks)
    full_groups = group_metrics(full, masks, ks)
    for name, extra in beyond_accuracy(top, masks, ks, sequences.n_items, tail_items).items():
        full_groups[name].update(extra)
    users = torch.from_numpy(scores["users"])
    metrics = {
        **json.loads(args.run),
        "protocol": {
            "split": "leave-one-out",
            "negatives": candidates.shape[1] - 1,
            "k": PAPER_K,
            "ks": ks,
            "negative_sampling": "uniform over items the user never interacted with, fixed per dataset",
            "ties": "count against the target",
            "saturated_users_dropped": int((~evaluated).sum()),
        },
        "thresholds": stats["thresholds"],
        "groups": sampled_groups,
        "full_ranking": {
            "groups": full_groups,
            "excluded": "the user's history (train + validation items), except the target",
        },
        "training": {key: history[key] for key in ("best_epoch", "epochs_run", "stopped_early", "train_seconds")},
        "representation": {"user_mean_cosine": user_mean_cosine(users[torch.from_numpy(evaluated)])},
        "eval_users_per_s": {"sampled": round(n / sampled_seconds, 1), "full_ranking": round(n / full_seconds, 1)},
        "device": str(scores["device"]),
        "record": provenance.record(
            json.loads(args.record), history["device"], args.interactions, args.ingest_report, args.embed_meta, history
        ),
    }
    if "semantic_share" in scores:
        metrics["representation"]["semantic_share"] = group_means(scores["semantic_share"], masks)
    if "gamma" in scores:
        corrected = group_metrics(scores["corrected_full"], masks, ks)
        for name, extra in beyond_accuracy(scores["corrected_top"], masks, ks, sequences.n_items, tail_items).items():
            corrected[name].update(extra)
        tried, breadth = json.loads(str(scores["tried"])), float(scores["breadth"])
        metrics["popularity_corrected"] = {
            "gamma": scores["gamma"].item(),
            "chosen_on": "full-ranking validation NDCG@10 of score - gamma * log(1 + training popularity)"
            if np.isnan(breadth)
            else "the smallest gamma whose full-ranking validation coverage@10 reaches the reference's",
            "valid_full_NDCG@10": {gamma: ndcg for gamma, (ndcg, _) in tried.items()},
            "valid_coverage@10": {gamma: coverage for gamma, (_, coverage) in tried.items()},
            "reference_valid_coverage@10": None if np.isnan(breadth) else breadth,
            "groups": group_metrics(scores["corrected_sampled"], masks, ks),
            "full_ranking": {"groups": corrected},
        }
    for name in GROUPS:
        log.info(
            "%-9s n=%-6d sampled HR@10=%s NDCG@10=%s | full HR@10=%s NDCG@10=%s",
            name,
            sampled_groups[name]["n"],
            sampled_groups[name]["HR@10"],
            sampled_groups[name]["NDCG@10"],
            full_groups[name]["HR@10"],
            full_groups[name]["NDCG@10"],
        )
    write_json(metrics, args.out_metrics)

    original_items = item_table["original_id"].to_numpy()
    recommended = original_items[top - 1]  # item id i is row i - 1
    per_user = pl.DataFrame(
        {
            "user": pl.read_parquet(args.user_table)["original_id"],
            "tail_user": groups["tail_user"],
            "tail_item": groups["tail_item"],
            "target": original_items[candidates[:, 0] - 1],
            "evaluated": evaluated,
            "rank_sampled": np.where(evaluated, sampled, -1),
            "rank_full": np.where(evaluated, full, -1),
            f"top{max(ks)}": [list(row) for row in recommended],
        }
    )
    write_parquet(per_user, args.out_per_user)


def scoring_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoint", required=True, type=Path)
    parser.add_argument("--interactions", required=True, type=Path)
    parser.add_argument("--item-table", required=True, type=Path)
    parser.add_argument("--candidates", required=True, type=Path)
    parser.add_argument("--k", type=int, nargs="+", required=True)
    parser.add_argument(
        "--popularity-gammas",
        type=float,
        nargs="*",
        required=True,
        help="eval.popularity_gammas: the corrections tried on validation (none: no corrected metrics)",
    )
    parser.add_argument(
        "--breadth-reference",
        type=Path,
        help="eval.popularity_breadth_of: the reference run's model.pt, whose validation coverage@10 gamma must reach",
    )
    parser.add_argument("--device", required=True)
    parser.add_argument("--threads", type=int, default=1)


def report_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--history", required=True, type=Path)
    parser.add_argument("--user-table", required=True, type=Path)
    parser.add_argument("--groups", required=True, type=Path)
    parser.add_argument("--stats", required=True, type=Path)
    parser.add_argument("--out-metrics", required=True, type=Path)
    parser.add_argument("--out-per-user", required=True, type=Path, help="per-user results (Parquet)")
    parser.add_argument("--run", required=True, help='JSON {"dataset", "backbone", "variant", "seed"}')
    parser.add_argument("--record", required=True, help="the configuration behind this run, as JSON")
    parser.add_argument("--ingest-report", required=True, type=Path)
    parser.add_argument("--embed-meta", type=Path, help="the item embeddings' metadata (models that use them)")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="pipeline evaluate", description=__doc__)
    scoring_arguments(parser)
    report_arguments(parser)
    args = parser.parse_args(argv)
    check_options(args.history, read_json(args.history), json.loads(args.record))
    report(args, score(args))


def shard_main(argv: list[str] | None = None) -> None:
    """`pipeline evaluate-shard`: the scores of one of --shards slices of the users (npz)."""
    parser = argparse.ArgumentParser(prog="pipeline evaluate-shard", description=shard_main.__doc__)
    scoring_arguments(parser)
    parser.add_argument("--shard", type=int, required=True)
    parser.add_argument("--shards", type=int, required=True)
    parser.add_argument("--out-scores", required=True, type=Path)
    args = parser.parse_args(argv)
    if args.popularity_gammas:
        raise SystemExit("error: the popularity correction is chosen on every user's validation: not sharded")
    start, stop = shard_bounds(len(np.load(args.candidates)["test"]), args.shard, args.shards, SHARD_USERS)
    # more shards than scoring batches: this one has no users, and the merge skips it
    scores = score(args, start, stop) if stop > start else {"seconds": np.zeros(2)}
    with atomic_path(args.out_scores) as tmp, open(tmp, "wb") as out:
        np.savez(out, **scores)


def merge_main(argv: list[str] | None = None) -> None:
    """`pipeline evaluate-merge`: the shards' scores, in order, into the run's metrics."""
    parser = argparse.ArgumentParser(prog="pipeline evaluate-merge", description=merge_main.__doc__)
    parser.add_argument("shards", nargs="+", type=Path)
    parser.add_argument("--interactions", required=True, type=Path)
    parser.add_argument("--item-table", required=True, type=Path)
    parser.add_argument("--candidates", required=True, type=Path)
    parser.add_argument("--k", type=int, nargs="+", required=True)
    report_arguments(parser)
    args = parser.parse_args(argv)
    check_options(args.history, read_json(args.history), json.loads(args.record))
    parts = [part for part in (dict(np.load(path)) for path in args.shards) if "sampled" in part]
    scores = {key: np.concatenate([part[key] for part in parts]) for key in parts[0] if parts[0][key].ndim}
    scores["seconds"] = np.sum([part["seconds"] for part in parts], axis=0)
    scores["device"] = parts[0]["device"]
    if len(scores["sampled"]) != len(np.load(args.candidates)["test"]):
        raise SystemExit(f"error: the shards hold {len(scores['sampled'])} users, the candidates more or fewer")
    report(args, scores)
