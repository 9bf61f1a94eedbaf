"""Stage `tables`: the paper's tables rebuilt from the metrics files of one dataset.

- `{dataset}.md` / `.csv`: Table 1: a row per backbone and metrics file, in the order the files
  are given (base, the competitors, LLM-ESR, the authors' computation), LLM-ESR's relative
  improvement over base and over the best competitor (the runs whose `role` is competitor) in
  each column; columns Overall, Tail Item, Head Item, Tail User, Head User x HR@10, NDCG@10;
  mean ± std over seeds; once for the sampled (paper) protocol and once for full ranking.
  For datasets the paper reports (Yelp), its published LLM-ESR rows are shown beside ours.
- `{dataset}_ablation.md` / `.csv`: Table 2: one row per variant of each backbone.
- `{dataset}_ranking.md` / `.csv`: sampled vs full ranking: base, LLM-ESR, the variants that
  train differently (a `train` override: loss, negatives, select_on) and the targeted ablations,
  both protocols, with each run's loss and selection and its catalogue coverage@10 /
  tail_share@10 under full ranking.
- `{dataset}_stages.csv`: seconds and peak memory of every job, from Snakemake's benchmarks.
"""

from __future__ import annotations

import argparse
import csv
import io
from pathlib import Path

from . import paper
from .io import atomic_path, read_json
from .metrics import GROUPS

METRICS = ("HR@10", "NDCG@10")
GROUP_TITLES = {
    "overall": "Overall",
    "tail_item": "Tail Item",
    "head_item": "Head Item",
    "tail_user": "Tail User",
    "head_user": "Head User",
}
BACKBONE_TITLES = {"sasrec": "SASRec", "gru4rec": "GRU4Rec", "bert4rec": "Bert4Rec"}
IMPROVEMENT_TITLES = {"improvement_%": "Improv. over base", "improvement_best_%": "Improv. over best competitor"}
PROTOCOLS = {"sampled": "sampled (100 negatives, the paper's protocol)", "full": "full ranking (history excluded)"}


def values(result: dict, protocol: str) -> tuple[dict, dict]:
    """(means, stds) by group for one metrics file and protocol."""
    if protocol == "sampled":
        return result["groups"], result.get("std", {})
    return result["full_ranking"]["groups"], result["full_ranking"].get("std", {})


def cell(mean: float | None, std: float | None) -> str:
    if mean is None:
        return "-"
    return f"{mean:.4f}" if not std else f"{mean:.4f} ± {std:.4f}"


def improvement(ours: float | None, base: float | None) -> float | None:
    return None if ours is None or not base else 100 * (ours - base) / base


def table_rows(
    results: dict[tuple[str, str], dict],
    rows: list[tuple[str, str]],
    protocol: str,
    improvement_of: tuple[str, str] | None = None,
    competitors: tuple[str, ...] = (),
) -> list[dict]:
    """Rows of {backbone, model, and per group x metric: mean, std}; with `improvement_of`
    (variant, baseline variant) an extra row per backbone with the relative change in %, and
    with `competitors` one more: the change over the best competitor present, column by column."""
    out = []
    for backbone, variant in rows:
        means, stds = values(results[backbone, variant], protocol)
        row = {"backbone": backbone, "model": variant}
        for group in GROUPS:
            for metric in METRICS:
                row[(group, metric)] = (means[group][metric], stds.get(group, {}).get(metric))
        out.append(row)
        if not improvement_of or variant != improvement_of[0]:
            continue
        if (backbone, improvement_of[1]) in results:
            base, _ = values(results[backbone, improvement_of[1]], protocol)
            change = {"backbone": backbone, "model": "improvement_%"}
            for group in GROUPS:
                for metric in METRICS:
                    change[(group, metric)] = (improvement(means[group][metric], base[group][metric]), None)
            out.append(change)
        rivals = [values(results[backbone, c], protocol)[0] for c in competitors if (backbone, c) in results]
        if rivals:
            change = {"backbone": backbone, "model": "improvement_best_%"}
            for group in GROUPS:
                for metric in METRICS:
                    present = [r[group][metric] for r in rivals if r[group][metric] is not None]
                    change[(group, metric)] = (improvement(means[group][metric], max(present, default=None)), None)
            out.append(change)
    return out


def titles_of(results: dict) -> dict[str, str]:
    """Each variant's name in the tables, as its metrics file records it."""
    return {variant: result.get("title", variant) for (_, variant), result in results.items()}


def markdown(rows: list[dict], title: str, titles: dict[str, str]) -> str:
    header = "| Backbone | Model | " + " | ".join(f"{GROUP_TITLES[g]} {m}" for g in GROUPS for m in METRICS) + " |"
    lines = [f"## {title}", "", header, "|" + "---|" * (2 + len(GROUPS) * len(METRICS))]
    for row in rows:
        if row["model"] in IMPROVEMENT_TITLES:
            cells = ["-" if row[g, m][0] is None else f"{row[g, m][0]:+.1f}%" for g in GROUPS for m in METRICS]
            name = IMPROVEMENT_TITLES[row["model"]]
        else:
            cells = [cell(*row[g, m]) for g in GROUPS for m in METRICS]
            name = titles.get(row["model"], row["model"])
        lines.append(
            f"| {BACKBONE_TITLES.get(row['backbone'], row['backbone'])} | {name} | " + " | ".join(cells) + " |"
        )
    return "\n".join(lines) + "\n"


def csv_rows(rows: list[dict], protocol: str) -> list[dict]:
    out = []
    for row in rows:
        flat = {"protocol": protocol, "backbone": row["backbone"], "model": row["model"]}
        for group in GROUPS:
            for metric in METRICS:
                mean, std = row[group, metric]
                flat[f"{group} {metric}"] = mean
                flat[f"{group} {metric} std"] = std
        out.append(flat)
    return out


def write_csv(rows: list[dict], path: Path) -> None:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    with atomic_path(path) as tmp:
        tmp.write_text(buffer.getvalue())


def write_text(text: str, path: Path) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def published_table1(dataset: str, backbones: list[str]) -> str:
    published = paper.TABLE1.get(dataset)
    if not published:
        return ""
    lines = [
        f"## Published in the paper ({dataset}, LLM-ESR rows, sampled protocol, embedder: {paper.EMBEDDER})",
        "",
        "| Backbone | " + " | ".join(f"{GROUP_TITLES[g]} {m}" for g in GROUPS for m in METRICS) + " |",
        "|" + "---|" * (1 + len(GROUPS) * len(METRICS)),
    ]
    for backbone in backbones:
        if backbone in published:
            numbers = [f"{v:.4f}" for g in GROUPS for v in published[backbone][g]]
            lines.append(f"| {BACKBONE_TITLES[backbone]} | " + " | ".join(numbers) + " |")
    return "\n".join(lines) + "\n"


def table1(results: dict, backbones: list[str], dataset: str, embedder: str, md: Path, out_csv: Path) -> None:
    """`results` in the order of the rows, each backbone's apart."""
    variants = list(dict.fromkeys(variant for _, variant in results))
    competitors = tuple(
        v for v in variants if any(r.get("role") == "competitor" for (_, w), r in results.items() if w == v)
    )
    rows = [(b, v) for b in backbones for v in variants if (b, v) in results]
    parts = [
        f"# {dataset}: head/tail results (Table 1 layout)",
        "",
        f"Our embedder: {embedder}. Mean ± std over seeds where there are several.",
        "",
    ]
    records = []
    for protocol, title in PROTOCOLS.items():
        built = table_rows(results, rows, protocol, improvement_of=("llmesr", "base"), competitors=competitors)
        parts.append(markdown(built, f"Ours, {title}", titles_of(results)))
        records += csv_rows(built, protocol)
    parts.append(published_table1(dataset, backbones))
    write_text("\n".join(parts), md)
    write_csv(records, out_csv)


def ablation(
    results: dict, backbones: list[str], variants: list[str], dataset: str, embedder: str, md: Path, out_csv: Path
) -> None:
    rows = [(b, v) for b in backbones for v in variants if (b, v) in results]
    parts = [f"# {dataset}: ablations (Table 2 layout)", "", f"Our embedder: {embedder}.", ""]
    records = []
    for protocol, title in PROTOCOLS.items():
        built = table_rows(results, rows, protocol)
        parts.append(markdown(built, f"Ours, {title}", titles_of(results)))
        records += csv_rows(built, protocol)
    published = paper.ABLATION.get(dataset)
    if published:
        parts.append(
            f"## Published in the paper ({dataset}, SASRec, Overall HR@10 / NDCG@10, embedder: {paper.EMBEDDER})\n"
        )
        titles = titles_of(results)
        parts.append(
            "\n".join(f"- {titles.get(v, v)}: {hr:.4f} / {ndcg:.4f}" for v, (hr, ndcg) in published.items()) + "\n"
        )
    write_text("\n".join(parts), md)
    write_csv(records, out_csv)


def training_setup(result: dict) -> dict:
    """How a run trained and chose its checkpoint (runs recorded before these options existed
    trained with their defaults)."""
    train = result["record"]["config"]["train"]
    loss = train.get("loss", "bce")
    return {
        "loss": loss,
        "negatives": None if loss == "ce" else train.get("negatives", 1),
        "gbce_t": train.get("gbce_t", 0.75) if loss == "gbce" else None,
        "logq": train.get("logq", False) if loss == "sampled_softmax" else None,
        "select_on": train.get("select_on", "sampled"),
    }


def loss_label(setup: dict) -> str:
    if setup["gbce_t"] is not None:
        return f"gbce (t = {setup['gbce_t']})"
    return f"{setup['loss']}{', log-Q' if setup['logq'] else ''}"


def ranking(
    results: dict, backbones: list[str], variants: list[str], dataset: str, embedder: str, md: Path, out_csv: Path
) -> None:
    rows = [(b, v) for b in backbones for v in variants if (b, v) in results]
    parts = [
        f"# {dataset}: sampled vs full ranking",
        "",
        f"Our embedder: {embedder}. Mean ± std over seeds where there are several.",
        "",
    ]
    records = []
    for protocol, title in PROTOCOLS.items():
        built = table_rows(results, rows, protocol)
        parts.append(markdown(built, f"Ours, {title}", titles_of(results)))
        records += csv_rows(built, protocol)
    lines = [
        "## Training and the catalogue it recommends (full ranking, top 10)",
        "",
        "| Backbone | Model | loss | negatives | checkpoint chosen on | coverage@10 | tail_share@10 |",
        "|---|---|---|---|---|---|---|",
    ]
    for backbone, variant in rows:
        setup, overall = (
            training_setup(results[backbone, variant]),
            results[backbone, variant]["full_ranking"]["groups"]["overall"],
        )
        lines.append(
            f"| {BACKBONE_TITLES.get(backbone, backbone)} | {titles_of(results)[variant]} | {loss_label(setup)} | "
            f"{setup['negatives'] or 'all items'} | validation NDCG@10, {setup['select_on']} | "
            f"{overall['coverage@10']:.3f} | {overall['tail_share@10']:.3f} |"
        )
        for record in records:
            if record["backbone"] == backbone and record["model"] == variant:
                record.update(
                    **setup,
                    **{"full coverage@10": overall["coverage@10"], "full tail_share@10": overall["tail_share@10"]},
                )
    parts.append("\n".join(lines) + "\n")
    write_text("\n".join(parts), md)
    write_csv(records, out_csv)


def stage_times(benchmarks: list[Path], out_csv: Path) -> None:
    rows = []
    for path in sorted(benchmarks):
        with open(path) as handle:
            record = next(csv.DictReader(handle, delimiter="\t"))
        rows.append(
            {
                "job": path.stem,
                "seconds": float(record["s"]),
                "max_rss_mb": None if record["max_rss"] == "-" else float(record["max_rss"]),
            }
        )
    write_csv(rows or [{"job": "", "seconds": None, "max_rss_mb": None}], out_csv)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="pipeline tables", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("metrics", nargs="+", type=Path, help="metrics files of one dataset")
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--backbones", nargs="+", required=True)
    parser.add_argument("--embedder", required=True, help="the encoder's name, shown in the tables")
    parser.add_argument("--variants", nargs="*", default=[], help="with --out-ablation-* / --out-ranking-*: the rows")
    parser.add_argument("--out-md", type=Path)
    parser.add_argument("--out-csv", type=Path)
    parser.add_argument("--out-ablation-md", type=Path)
    parser.add_argument("--out-ablation-csv", type=Path)
    parser.add_argument("--out-ranking-md", type=Path)
    parser.add_argument("--out-ranking-csv", type=Path)
    parser.add_argument("--benchmarks", type=Path, help="folder of Snakemake benchmark files")
    parser.add_argument("--out-stages", type=Path)
    args = parser.parse_args(argv)

    results = {}
    for path in args.metrics:
        result = read_json(path)
        results[result["backbone"], result["variant"]] = result
    if args.out_md:
        table1(results, args.backbones, args.dataset, args.embedder, args.out_md, args.out_csv)
    if args.out_ablation_md:
        ablation(
            results,
            args.backbones,
            args.variants,
            args.dataset,
            args.embedder,
            args.out_ablation_md,
            args.out_ablation_csv,
        )
    if args.out_ranking_md:
        ranking(
            results,
            args.backbones,
            args.variants,
            args.dataset,
            args.embedder,
            args.out_ranking_md,
            args.out_ranking_csv,
        )
    if args.out_stages:
        stage_times(
            list(args.benchmarks.glob("*.tsv")) if args.benchmarks and args.benchmarks.exists() else [], args.out_stages
        )
