"""Stage `plots` (matplotlib, PNG):

python -m pipeline plots groups METRICS.json ... --out groups.png   # HR@10/NDCG@10 per group and backbone
python -m pipeline plots training HISTORY.json --out curve.png     # validation NDCG@10 and loss per epoch
python -m pipeline plots analysis --groups GROUPS.parquet --run base=USERS.parquet ... --out fig.png
    # the paper's Fig. 4: HR@10/NDCG@10 over finer user-length and item-popularity bins
python -m pipeline plots ranking METRICS.json ... --title T --out fig.png
    # NDCG@10 per group under both protocols, and the catalogue recommended under full ranking
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import polars as pl  # noqa: E402

from .io import atomic_path, read_json  # noqa: E402
from .metrics import GROUPS  # noqa: E402
from .tables import BACKBONE_TITLES, GROUP_TITLES  # noqa: E402

METRICS = ("HR@10", "NDCG@10")


def save(figure: plt.Figure, path: Path) -> None:
    with atomic_path(path) as tmp:
        figure.savefig(tmp, dpi=110, bbox_inches="tight", format="png")
    plt.close(figure)


def group_bars(results: list[dict], out: Path) -> None:
    backbones = sorted({r["backbone"] for r in results}, key=list(BACKBONE_TITLES).index)
    variants = [v for v in ("base", "llmesr") if any(r["variant"] == v for r in results)]
    figure, axes = plt.subplots(
        len(backbones), len(METRICS), figsize=(11, 3.4 * len(backbones)), squeeze=False, layout="constrained"
    )
    positions, width = np.arange(len(GROUPS)), 0.8 / max(len(variants), 1)
    for row, backbone in enumerate(backbones):
        for col, metric in enumerate(METRICS):
            ax = axes[row, col]
            for offset, variant in enumerate(variants):
                result = next((r for r in results if r["backbone"] == backbone and r["variant"] == variant), None)
                if result is None:
                    continue
                means = [result["groups"][g][metric] or 0.0 for g in GROUPS]
                stds = [(result.get("std", {}).get(g, {}).get(metric) or 0.0) for g in GROUPS]
                ax.bar(
                    positions + offset * width - 0.4 + width / 2,
                    means,
                    width,
                    yerr=stds,
                    capsize=3,
                    label=result.get("title", variant),
                )
            ax.set_xticks(positions, [GROUP_TITLES[g] for g in GROUPS], fontsize=8)
            ax.set_title(f"{BACKBONE_TITLES.get(backbone, backbone)}: {metric} (sampled)", fontsize=10)
            ax.set_ylim(bottom=0)
            ax.legend(fontsize=8)
    figure.suptitle(f"{results[0]['dataset']}: base vs LLM-ESR over head/tail groups")
    save(figure, out)


def training_curves(history: dict, title: str, out: Path) -> None:
    epochs = [e["epoch"] for e in history["epochs"]]
    figure, (left, right) = plt.subplots(1, 2, figsize=(10, 3.6), layout="constrained")
    validated = [e for e in history["epochs"] if "valid_NDCG@10" in e]  # CITIES validates its last epoch only
    left.plot([e["epoch"] for e in validated], [e["valid_NDCG@10"] for e in validated], marker=".", label="NDCG@10")
    left.plot([e["epoch"] for e in validated], [e["valid_HR@10"] for e in validated], marker=".", label="HR@10")
    left.axvline(history["best_epoch"], color="grey", linestyle=":", label=f"best epoch {history['best_epoch']}")
    left.set(xlabel="epoch", title="validation (sampled)")
    left.legend(fontsize=8)
    right.plot(epochs, [e["loss"] for e in history["epochs"]], label="total")
    # The recommendation loss and each term a method adds (distill, user_transfer, align, ...).
    for key in sorted({k for e in history["epochs"] for k in e if k.endswith("_loss")}):
        label = "recommendation" if key == "rec_loss" else key.removesuffix("_loss").replace("_", " ")
        right.plot(epochs, [e.get(key, 0.0) for e in history["epochs"]], label=label)
    right.set(xlabel="epoch", title="training loss")
    right.legend(fontsize=8)
    figure.suptitle(title)
    save(figure, out)


def bin_edges(values: np.ndarray, bins: int) -> np.ndarray:
    """Integer edges at quantiles (duplicates merged): bins of about equal size; at least one bin."""
    edges = np.unique(np.quantile(values, np.linspace(0, 1, bins + 1)).round().astype(int))
    return edges if len(edges) > 1 else np.array([edges[0], edges[0]])


def binned(values: np.ndarray, edges: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """Bin index of each value and the bins' labels: [edges[i], edges[i+1]), the last bin closed."""
    index = np.clip(np.searchsorted(edges, values, side="right") - 1, 0, len(edges) - 2)
    labels = []
    for i in range(len(edges) - 1):
        low, high = edges[i], edges[i + 1] - (i < len(edges) - 2)
        labels.append(f"{low}-{high}" if high > low else f"{low}")
    return index, labels


def group_analysis(
    groups: pl.DataFrame, runs: dict[str, list[pl.DataFrame]], title: str, out: Path, bins: int = 5
) -> None:
    """HR@10 and NDCG@10 (sampled protocol) per bin of the user's input length and of the test
    target's popularity, one line per variant (seeds averaged), with each bin's user count."""
    evaluated = np.all([run["evaluated"].to_numpy() for parts in runs.values() for run in parts], axis=0)
    splits = {"user": ("input_length", "user sequence length"), "item": ("target_popularity", "target item popularity")}
    figure, axes = plt.subplots(2, 2, figsize=(11, 7), layout="constrained", squeeze=False)
    for col, (kind, (column, label)) in enumerate(splits.items()):
        values = groups[column].to_numpy()
        index, labels = binned(values, bin_edges(values[evaluated], bins))
        counts = np.bincount(index[evaluated], minlength=len(labels))
        for row, metric in enumerate(METRICS):
            ax = axes[row, col]
            for variant, parts in runs.items():
                per_seed = []
                for run in parts:
                    rank = run["rank_sampled"].to_numpy()
                    hit = (rank >= 0) & (rank < 10)
                    score = hit.astype(float) if metric == "HR@10" else np.where(hit, 1 / np.log2(rank + 2), 0.0)
                    per_seed.append(
                        [score[evaluated & (index == b)].mean() if counts[b] else np.nan for b in range(len(labels))]
                    )
                ax.plot(range(len(labels)), np.mean(per_seed, axis=0), marker="o", label=variant)
            ax.set_xticks(range(len(labels)), [f"{name}\n(n={c})" for name, c in zip(labels, counts)], fontsize=7)
            ax.set(xlabel=label, title=f"{metric} by {label} (sampled)")
            ax.legend(fontsize=8)
    figure.suptitle(title)
    save(figure, out)


def ranking(results: list[dict], title: str, out: Path) -> None:
    """Sampled vs full ranking for the runs of one backbone: NDCG@10 per group under each
    protocol (a method can win one and lose the other), and under full ranking the share of the
    catalogue in anyone's top 10 and the tail items' share of those slots."""
    figure, axes = plt.subplots(1, 3, figsize=(16, 3.8), layout="constrained", width_ratios=[5, 5, 2])
    positions, width = np.arange(len(GROUPS)), 0.8 / max(len(results), 1)
    for offset, result in enumerate(results):
        label = result.get("title", result["variant"])
        shift = offset * width - 0.4 + width / 2
        for ax, groups in zip(axes[:2], (result["groups"], result["full_ranking"]["groups"])):
            ax.bar(positions + shift, [groups[g]["NDCG@10"] or 0.0 for g in GROUPS], width, label=label)
        overall = result["full_ranking"]["groups"]["overall"]
        axes[2].bar(np.arange(2) + shift, [overall["coverage@10"], overall["tail_share@10"]], width, label=label)
    for ax, protocol in zip(axes[:2], ("sampled (100 negatives)", "full ranking")):
        ax.set_xticks(positions, [GROUP_TITLES[g] for g in GROUPS], fontsize=8)
        ax.set_title(f"NDCG@10, {protocol}", fontsize=10)
        ax.set_ylim(bottom=0)
    axes[2].set_xticks(np.arange(2), ["coverage@10", "tail share@10"], fontsize=8)
    axes[2].set_title("full ranking: what is recommended", fontsize=10)
    axes[2].set_ylim(0, 1)
    # below the panels: with many runs a legend inside one would cover its bars
    figure.legend(
        *axes[0].get_legend_handles_labels(), loc="outside lower center", ncols=min(len(results), 8), fontsize=8
    )
    figure.suptitle(title)
    save(figure, out)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="pipeline plots", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    commands = parser.add_subparsers(dest="command", required=True)
    groups = commands.add_parser("groups")
    groups.add_argument("metrics", nargs="+", type=Path)
    groups.add_argument("--out", required=True, type=Path)
    training = commands.add_parser("training")
    training.add_argument("history", type=Path)
    training.add_argument("--title", required=True)
    training.add_argument("--out", required=True, type=Path)
    analysis = commands.add_parser("analysis")
    analysis.add_argument("--groups", required=True, type=Path, help="the split's groups.parquet")
    analysis.add_argument(
        "--run",
        action="append",
        required=True,
        metavar="TITLE=USERS.parquet",
        help="a run's per-user results under its title; a title given several times is averaged",
    )
    analysis.add_argument("--title", required=True)
    analysis.add_argument("--out", required=True, type=Path)
    protocols = commands.add_parser("ranking")
    protocols.add_argument("metrics", nargs="+", type=Path, help="metrics files of one backbone, in the bars' order")
    protocols.add_argument("--title", required=True)
    protocols.add_argument("--out", required=True, type=Path)
    args = parser.parse_args(argv)
    if args.command == "ranking":
        ranking([read_json(path) for path in args.metrics], args.title, args.out)
    elif args.command == "groups":
        group_bars([read_json(path) for path in args.metrics], args.out)
    elif args.command == "analysis":
        runs: dict[str, list[pl.DataFrame]] = {}
        for spec in args.run:
            variant, _, path = spec.rpartition("=")
            runs.setdefault(variant, []).append(pl.read_parquet(path))
        group_analysis(pl.read_parquet(args.groups), runs, args.title, args.out)
    else:
        training_curves(read_json(args.history), args.title, args.out)
