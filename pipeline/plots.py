"""Stage `plots` (matplotlib, PNG):

    python -m pipeline plots groups METRICS.json ... --out groups.png   # HR@10/NDCG@10 per group, base vs LLM-ESR per backbone
    python -m pipeline plots training HISTORY.json --out curve.png     # validation NDCG@10 and loss per epoch
"""
from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from .io import atomic_path, read_json  # noqa: E402
from .metrics import GROUPS  # noqa: E402
from .tables import BACKBONE_TITLES, GROUP_TITLES, VARIANT_TITLES  # noqa: E402

METRICS = ("HR@10", "NDCG@10")


def save(figure: plt.Figure, path: Path) -> None:
    with atomic_path(path) as tmp:
        figure.savefig(tmp, dpi=110, bbox_inches="tight", format="png")
    plt.close(figure)


def group_bars(results: list[dict], out: Path) -> None:
    backbones = sorted({r["backbone"] for r in results}, key=list(BACKBONE_TITLES).index)
    variants = [v for v in ("base", "llmesr") if any(r["variant"] == v for r in results)]
    figure, axes = plt.subplots(len(backbones), len(METRICS), figsize=(11, 3.4 * len(backbones)), squeeze=False,
                                layout="constrained")
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
                ax.bar(positions + offset * width - 0.4 + width / 2, means, width, yerr=stds, capsize=3,
                       label=VARIANT_TITLES.get(variant, variant))
            ax.set_xticks(positions, [GROUP_TITLES[g] for g in GROUPS], fontsize=8)
            ax.set_title(f"{BACKBONE_TITLES.get(backbone, backbone)}: {metric} (sampled)", fontsize=10)
            ax.set_ylim(bottom=0)
            ax.legend(fontsize=8)
    figure.suptitle(f"{results[0]['dataset']}: base vs LLM-ESR over head/tail groups")
    save(figure, out)


def training_curves(history: dict, title: str, out: Path) -> None:
    epochs = [e["epoch"] for e in history["epochs"]]
    figure, (left, right) = plt.subplots(1, 2, figsize=(10, 3.6), layout="constrained")
    left.plot(epochs, [e["valid_NDCG@10"] for e in history["epochs"]], label="NDCG@10")
    left.plot(epochs, [e["valid_HR@10"] for e in history["epochs"]], label="HR@10")
    left.axvline(history["best_epoch"], color="grey", linestyle=":", label=f"best epoch {history['best_epoch']}")
    left.set(xlabel="epoch", title="validation (sampled)")
    left.legend(fontsize=8)
    right.plot(epochs, [e["loss"] for e in history["epochs"]], label="total")
    right.plot(epochs, [e["rec_loss"] for e in history["epochs"]], label="recommendation (BCE)")
    if any(e["distill_loss"] for e in history["epochs"]):
        right.plot(epochs, [e["distill_loss"] for e in history["epochs"]], label="self-distillation (MSE)")
    right.set(xlabel="epoch", title="training loss")
    right.legend(fontsize=8)
    figure.suptitle(title)
    save(figure, out)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="pipeline plots", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    groups = commands.add_parser("groups")
    groups.add_argument("metrics", nargs="+", type=Path)
    groups.add_argument("--out", required=True, type=Path)
    training = commands.add_parser("training")
    training.add_argument("history", type=Path)
    training.add_argument("--title", required=True)
    training.add_argument("--out", required=True, type=Path)
    args = parser.parse_args(argv)
    if args.command == "groups":
        group_bars([read_json(path) for path in args.metrics], args.out)
    else:
        training_curves(read_json(args.history), args.title, args.out)
