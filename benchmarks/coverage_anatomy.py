"""Which items a model's top 10 leaves out: coverage@10 by item popularity and, for AlphaFuse's
table, by the length of the item's frozen semantic vector; and how many distinct items each
model recommends to a user who then takes it (a hit at 10), beside how many it recommends at all,
and the validation figure the run's checkpoint was chosen on (the only one a knob may be chosen on).

Reads each run's `users.parquet` (the evaluated users' top 20 under full ranking and their test
targets), the dataset's interactions and item table, and for AlphaFuse models the `semantic`
buffer of `model.pt`; prints markdown tables and writes them as JSON.

    python benchmarks/coverage_anatomy.py --folder runs/beauty --dataset beauty \
        --runs sasrec_basece_seed42 sasrec_llmesrplus_seed42 --out docs/results/beauty_coverage.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import polars as pl
import torch

K = 10
BINS = 5  # bins at the quintiles of popularity (ties make them uneven) and of semantic length


def quintile_edges(values: np.ndarray) -> np.ndarray:
    return np.quantile(values, np.linspace(0, 1, BINS + 1))


def shares_by_bin(values: np.ndarray, covered: np.ndarray, edges: np.ndarray) -> list[float]:
    """The covered share of the items in each bin of `values` (bins closed on the right; ties
    at an edge fall in the lower bin)."""
    bins = np.clip(np.searchsorted(edges, values, side="left") - 1, 0, BINS - 1)
    return [round(float(covered[bins == b].mean()), 4) for b in range(BINS)]


def semantic_lengths(checkpoint: Path, n_items: int) -> np.ndarray | None:
    """Items 1..n_items (row 0 is padding, a row after them Bert4Rec's mask)."""
    state = torch.load(checkpoint, map_location="cpu", weights_only=False)["state_dict"]
    if "semantic" not in state:
        return None
    return state["semantic"][1 : n_items + 1].norm(dim=1).numpy()


def anatomy(run: Path, original_to_row: dict[str, int], popularity: np.ndarray, edges: np.ndarray) -> dict:
    users = pl.read_parquet(run / "users.parquet").filter(pl.col("evaluated"))
    top = users["top20"].list.head(K).to_list()
    covered = np.zeros(len(popularity), dtype=bool)
    covered[[original_to_row[item] for items in top for item in items]] = True
    hits = users.filter(pl.col("rank_full") < K)["target"].unique().to_list()
    history = json.loads((run / "history.json").read_text())
    best = next(epoch for epoch in history["epochs"] if epoch["epoch"] == history["best_epoch"])
    row = {
        "run": run.name,
        "valid_full_NDCG@10": best.get("valid_full_NDCG@10"),  # what a knob may be chosen on
        f"coverage@{K}": round(float(covered.mean()), 4),
        f"distinct_items_hit@{K}": len(hits),
        f"distinct_items_hit_share@{K}": round(len(hits) / len(popularity), 4),
        "coverage_by_popularity_quintile": shares_by_bin(popularity, covered, edges),
    }
    lengths = semantic_lengths(run / "model.pt", len(popularity))
    if lengths is not None and np.ptp(lengths) > 1e-5 * lengths.mean():  # not `equal_norms`
        row["coverage_by_semantic_length_quintile"] = shares_by_bin(lengths, covered, quintile_edges(lengths))
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--folder", type=Path, required=True, help="the work folder (holds results/)")
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--runs", nargs="+", required=True, help="run folder names, e.g. sasrec_basece_seed42")
    parser.add_argument("--out", type=Path, required=True, help="JSON file to write")
    args = parser.parse_args()

    results = args.folder / "results" / args.dataset
    items = pl.read_parquet(results / "ingest" / "items.parquet")
    interactions = pl.read_parquet(results / "ingest" / "interactions.parquet")
    popularity = np.bincount(interactions["item"].to_numpy(), minlength=items.height + 1)[1:]
    original_to_row = {original: row for row, original in enumerate(items["original_id"].to_list())}
    edges = quintile_edges(popularity)
    rows = [anatomy(results / "runs" / run, original_to_row, popularity, edges) for run in args.runs]

    print(f"items: {len(popularity)}; popularity quintile edges (interactions): {edges.round(1).tolist()}")
    print(
        f"| run | validation full NDCG@10 | coverage@{K} | distinct items hit@{K} "
        "| coverage by popularity bin, least first |"
    )
    print("|---|---|---|---|---|")
    for row in rows:
        by_popularity = " / ".join(f"{v:.3f}" for v in row["coverage_by_popularity_quintile"])
        print(
            f"| {row['run']} | {row['valid_full_NDCG@10']:.4f} | {row[f'coverage@{K}']:.3f} "
            f"| {row[f'distinct_items_hit@{K}']} ({row[f'distinct_items_hit_share@{K}']:.3f}) | {by_popularity} |"
        )
    semantic = [row for row in rows if "coverage_by_semantic_length_quintile" in row]
    if semantic:
        print("\n| run | coverage by semantic-length quintile, shortest first |")
        print("|---|---|")
        for row in semantic:
            print(f"| {row['run']} | {' / '.join(f'{v:.3f}' for v in row['coverage_by_semantic_length_quintile'])} |")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"k": K, "popularity_edges": edges.tolist(), "runs": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
