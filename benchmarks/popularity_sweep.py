"""What the inference-time popularity correction buys and costs, gamma by gamma.

    python benchmarks/popularity_sweep.py --folder runs/beauty --dataset beauty \
        --runs sasrec_basece_seed42 sasrec_llmesrplus_seed42 --gammas 0 0.05 0.1 0.2 0.3 \
        --out docs/results/beauty_popularity_sweep.json

For each trained run and each gamma, items are ranked by score - gamma x log(1 + training
popularity) (`eval.popularity_gammas`), under full ranking with the user's history excluded:
on validation, NDCG@10 and coverage@10 (what a rule choosing gamma may read), and on test,
HR@10 / NDCG@10 overall, on tail items and on tail users, coverage@10 and tail share@10, and
HR@10 / NDCG@10 under the sampled protocol. Also, for each run, the gamma of three
validation-only rules: the best validation NDCG@10 (the pipeline's rule); the largest gamma
whose validation NDCG@10 stays within `--tolerance` of that best (a bounded accuracy cost spent
on breadth); and, with `--coverage-of`, the smallest gamma whose validation coverage@10 reaches
the largest of those runs' uncorrected validation coverage@10 (breadth matched to a reference
model's, on validation). Prints a table, writes JSON.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import polars as pl
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from pipeline.checkpoints import load_for_scoring  # noqa: E402
from pipeline.data import TEST_INPUT_CUT, log_popularity  # noqa: E402
from pipeline.evaluate import validation_top  # noqa: E402
from pipeline.io import read_json  # noqa: E402
from pipeline.metrics import beyond_accuracy, evaluated_users, group_masks, group_metrics  # noqa: E402
from pipeline.scoring import full_ranking, representations, sampled_ranks  # noqa: E402

SHOWN = ("overall", "tail_item", "tail_user")


def sweep(folder: Path, dataset: str, run: str, gammas: list[float], threads: int) -> list[dict]:
    data = folder / "results" / dataset
    model, state, _, sequences, device = load_for_scoring(
        data / "runs" / run / "model.pt",
        data / "ingest/interactions.parquet",
        data / "ingest/items.parquet",
        "cpu",
        threads,
    )
    candidates = np.load(data / "split/candidates.npz")
    groups = pl.read_parquet(data / "split/groups.parquet")
    stats = read_json(folder / "results" / f"{dataset}_stats.json")
    counts = np.bincount(sequences.items, minlength=sequences.n_items + 1)
    tail_items = counts < stats["thresholds"]["ts_item"]
    tail_items[0] = False
    penalty = torch.from_numpy(log_popularity(sequences))
    max_len = state["model"]["max_len"]
    test = candidates["test"]
    masks = group_masks(groups["tail_user"].to_numpy(), groups["tail_item"].to_numpy(), evaluated_users(test))
    validation = validation_top(model, sequences, candidates["valid"], max_len, device, gammas)  # what eval reads
    vectors = representations(model, sequences, TEST_INPUT_CUT, max_len, device)
    rows = []
    for gamma in gammas:
        bias = -gamma * penalty
        valid_ndcg, valid_coverage = validation[str(gamma)]
        row = {"run": run, "gamma": gamma, "valid_NDCG@10": valid_ndcg, "valid_coverage@10": valid_coverage}
        ranks, top = full_ranking(*vectors, sequences, TEST_INPUT_CUT, test[:, 0], 10, item_bias=bias)
        accuracy = group_metrics(ranks, masks, [10])
        breadth = beyond_accuracy(top, masks, [10], sequences.n_items, tail_items)["overall"]
        row |= {group: [accuracy[group]["HR@10"], accuracy[group]["NDCG@10"]] for group in SHOWN}
        row |= {"coverage@10": breadth["coverage@10"], "tail_share@10": breadth["tail_share@10"]}
        sampled = group_metrics(sampled_ranks(*vectors, test, item_bias=bias), masks, [10])["overall"]
        row["sampled"] = [sampled["HR@10"], sampled["NDCG@10"]]
        print(json.dumps(row), flush=True)
        rows.append(row)
    return rows


def chosen(rows: list[dict], tolerance: float, coverage: float | None) -> dict[str, float | None]:
    """The gamma of each validation-only rule (None: no gamma tried reaches the coverage)."""
    best = max(rows, key=lambda r: (r["valid_NDCG@10"], -r["gamma"]))
    within = [r for r in rows if r["valid_NDCG@10"] >= (1 - tolerance) * best["valid_NDCG@10"]]
    rules = {"best_valid": best["gamma"], f"within_{tolerance:g}": max(r["gamma"] for r in within)}
    if coverage is not None:
        wide = [r["gamma"] for r in rows if r["valid_coverage@10"] >= coverage]
        rules["valid_coverage"] = min(wide) if wide else None
    return rules


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--folder", required=True, type=Path, help="the work folder the runs were made in")
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--runs", required=True, nargs="+")
    parser.add_argument("--gammas", type=float, nargs="+", default=[0, 0.05, 0.1, 0.2, 0.3, 0.5])
    parser.add_argument("--tolerance", type=float, default=0.02, help="share of the best validation NDCG@10")
    parser.add_argument("--coverage-of", nargs="*", default=[], help="runs (among --runs) whose coverage to reach")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", required=True, type=Path)
    args = parser.parse_args()
    if args.coverage_of and (0 not in args.gammas or not set(args.coverage_of) <= set(args.runs)):
        parser.error("--coverage-of needs gamma 0 among --gammas and runs among --runs (their uncorrected coverage)")

    runs = {run: sweep(args.folder, args.dataset, run, sorted(args.gammas), args.threads) for run in args.runs}
    reference = max((runs[run][0]["valid_coverage@10"] for run in args.coverage_of), default=None)
    choices = {run: chosen(rows, args.tolerance, reference) for run, rows in runs.items()}
    columns = (
        "valid NDCG@10 / coverage@10 | test overall | tail items | tail users | coverage@10 / tail share@10 | sampled"
    )
    print(f"\n| run | gamma | {columns} | chosen by |")
    print("|---|---|---|---|---|---|---|---|")
    for run, rows in runs.items():
        for r in rows:
            rules = ", ".join(rule for rule, gamma in choices[run].items() if gamma == r["gamma"])
            cells = " | ".join(f"{r[g][0]:.4f} / {r[g][1]:.4f}" for g in SHOWN)
            print(
                f"| {run} | {r['gamma']:g} | {r['valid_NDCG@10']:.4f} / {r['valid_coverage@10']:.3f} | {cells} | "
                f"{r['coverage@10']:.3f} / {r['tail_share@10']:.3f} | {r['sampled'][0]:.4f} / {r['sampled'][1]:.4f} | "
                f"{rules} |"
            )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    summary = {"tolerance": args.tolerance, "coverage_of": args.coverage_of, "reference_valid_coverage@10": reference}
    args.out.write_text(json.dumps(summary | {"chosen": choices, "runs": runs}, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
