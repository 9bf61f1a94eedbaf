"""The long-tail comparison table: runs' metrics under both protocols, side by side.

Reads `results/{dataset}/runs/{backbone}_{variant}_seed{seed}/metrics.json` and `history.json`
of the work folders given, and prints a markdown table (HR@10 / NDCG@10 for the five groups
under the sampled protocol and full ranking, coverage@10 / tail_share@10, the users' mean
pairwise cosine, the semantic half's share of tail / head targets' scores, best / run epochs,
seconds per epoch), writes it with every figure as JSON, and plots full-ranking NDCG@10 on
tail items against overall, one point per run, with the reference run's lines.

    python benchmarks/longtail.py --folders runs/beauty runs/screen --dataset beauty \
        --runs sasrec_basece_seed42 sasrec_ce_seed42 ... --reference sasrec_basece_seed42 \
        --out docs/results/beauty_longtail_runs
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

GROUPS = ("overall", "tail_item", "head_item", "tail_user", "head_user")


def find_run(folders: list[Path], dataset: str, run: str) -> Path:
    for folder in folders:
        path = folder / "results" / dataset / "runs" / run
        if (path / "metrics.json").exists():
            return path
    raise SystemExit(f"no finished run {run} (metrics.json) under {', '.join(map(str, folders))}")


def summary(path: Path) -> dict:
    metrics = json.loads((path / "metrics.json").read_text())
    history = json.loads((path / "history.json").read_text())
    full = metrics["full_ranking"]["groups"]
    representation = metrics.get("representation", {})
    shares = representation.get("semantic_share") or {}
    return {
        "run": path.name,
        "title": metrics.get("title", metrics["variant"]),
        "sampled": {g: [metrics["groups"][g]["HR@10"], metrics["groups"][g]["NDCG@10"]] for g in GROUPS},
        "full": {g: [full[g]["HR@10"], full[g]["NDCG@10"]] for g in GROUPS},
        "coverage@10": full["overall"]["coverage@10"],
        "tail_share@10": full["overall"]["tail_share@10"],
        "user_mean_cosine": representation.get("user_mean_cosine"),
        "semantic_share": [shares.get("tail_item"), shares.get("head_item")] if shares else None,
        "best_epoch": history["best_epoch"],
        "epochs_run": history["epochs_run"],
        "seconds_per_epoch": history.get("mean_epoch_seconds"),
        "threads": history.get("threads"),
        "gamma": metrics.get("popularity_corrected", {}).get("gamma"),
    }


def pair(values: list[float]) -> str:
    return f"{values[0]:.4f} / {values[1]:.4f}"


def markdown(rows: list[dict]) -> str:
    head = (
        "| run | sampled overall | tail item | head item | tail user | head user | full overall | tail item | "
        "head item | tail user | head user | coverage@10 / tail_share@10 | user cos | sem. share tail / head | "
        "best / run epochs | s/epoch |"
    )
    lines = [head, "|" + "---|" * head.count(" | ") + "---|"]
    for row in rows:
        share = row["semantic_share"]
        cells = [
            f"{row['title']} (`{row['run']}`)",
            *(pair(row["sampled"][g]) for g in GROUPS),
            *(pair(row["full"][g]) for g in GROUPS),
            f"{row['coverage@10']:.3f} / {row['tail_share@10']:.3f}",
            "" if row["user_mean_cosine"] is None else f"{row['user_mean_cosine']:.3f}",
            "" if not share or share[0] is None else f"{share[0]:.2f} / {share[1]:.2f}",
            f"{row['best_epoch']} / {row['epochs_run']}",
            "" if row["seconds_per_epoch"] is None else f"{row['seconds_per_epoch']:.1f}",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot(rows: list[dict], reference: dict | None, out: Path) -> None:
    figure, axes = plt.subplots(figsize=(7, 5))
    for row in rows:
        x, y = row["full"]["overall"][1], row["full"]["tail_item"][1]
        axes.scatter(x, y, s=60 * row["coverage@10"] + 10)
        axes.annotate(row["title"], (x, y), fontsize=7, xytext=(3, 3), textcoords="offset points")
    if reference is not None:
        axes.axvline(reference["full"]["overall"][1], color="grey", linestyle=":", linewidth=1)
        axes.axhline(reference["full"]["tail_item"][1], color="grey", linestyle=":", linewidth=1)
    axes.set_xlabel("full ranking NDCG@10, overall")
    axes.set_ylabel("full ranking NDCG@10, tail items")
    axes.set_title("Long-tail vs overall under full ranking (dotted: reference; size: coverage@10)", fontsize=9)
    figure.tight_layout()
    figure.savefig(out, dpi=120)
    plt.close(figure)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--folders", type=Path, nargs="+", required=True, help="work folders holding results/")
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--runs", nargs="+", required=True, help="run folder names, e.g. sasrec_basece_seed42")
    parser.add_argument("--reference", help="the run whose overall and tail-item lines the plot draws")
    parser.add_argument("--out", type=Path, required=True, help="prefix of the .md, .json and .png written")
    args = parser.parse_args(argv)
    rows = [summary(find_run(args.folders, args.dataset, run)) for run in args.runs]
    reference = next((row for row in rows if row["run"] == args.reference), None)
    table = markdown(rows)
    print(table)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".md").write_text(table + "\n")
    args.out.with_suffix(".json").write_text(json.dumps(rows, indent=1) + "\n")
    plot(rows, reference, args.out.with_suffix(".png"))


if __name__ == "__main__":
    main()
