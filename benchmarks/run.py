"""Benchmark the pipeline on a real dataset: runs the Snakemake workflow (ingest to both SASRec
metrics files, default hyperparameters unless --max-epochs is given) in a work folder, then
reads the per-job records it leaves behind (Snakemake's benchmark files, the embedding
metadata, the training histories, the evaluation speed), prints a table and writes
benchmarks/results/<dataset>.json.

    python benchmarks/run.py --dataset beauty             # needs ../shared/data/ready/beauty
    python benchmarks/run.py --dataset beauty --max-epochs 3
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"

DATASETS = {
    "beauty": {
        "format": "sequences",
        "sequences": str(SHARED / "ready" / "beauty" / "sequences.txt"),
        "items": str(SHARED / "ready" / "beauty" / "items.tsv"),
        "item_prompt": "The beauty item has following attributes: name is {title}; brand is {brand}; price is {price}.",
    },
    "yelp": {
        "format": "sequences",
        "sequences": str(SHARED / "ready" / "yelp" / "sequences.txt"),
        "items": str(SHARED / "ready" / "yelp" / "items.tsv"),
        "item_prompt": "The point of interest has following attributes: \n name is {name}; category is {categories}; city is {city}.",
        "user_item_column": "name",
    },
}


def snakemake(workdir: Path, *args: str) -> None:
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    command = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), *args]
    subprocess.run(command, cwd=workdir, env=env, check=True)


def read_benchmark(path: Path) -> dict:
    with open(path) as handle:
        row = next(csv.DictReader(handle, delimiter="\t"))
    return {"s": float(row["s"]), "max_rss_mb": float(row["max_rss"]) if row["max_rss"] != "-" else None}


def collect(workdir: Path, dataset: str) -> dict:
    results = workdir / "results"
    stages = {path.stem: read_benchmark(path) for path in sorted((results / "benchmarks" / dataset).glob("*.tsv"))}
    embed = {kind: json.loads((results / dataset / "embed" / f"{kind}.json").read_text()) for kind in ("items", "users")}
    runs = {}
    for variant in ("base", "llmesr"):
        run = results / dataset / "runs" / f"sasrec_{variant}_seed42"
        history = json.loads((run / "history.json").read_text())
        metrics = json.loads((run / "metrics.json").read_text())
        runs[variant] = {
            "train_epoch_s": history["mean_epoch_seconds"],
            "epochs_run": history["epochs_run"],
            "best_epoch": history["best_epoch"],
            "eval_users_per_s": metrics["eval_users_per_s"],
            "groups": metrics["groups"],
        }
    sentences = sum(e["count"] for e in embed.values())
    seconds = sum(e["seconds"] for e in embed.values())
    return {
        "dataset": dataset,
        "stages": stages,
        "embed_sentences_per_s": round(sentences / seconds, 1),
        "train_epoch_s": {f"sasrec_{v}": r["train_epoch_s"] for v, r in runs.items()},
        "eval_users_per_s": {f"sasrec_{v}": r["eval_users_per_s"] for v, r in runs.items()},
        "peak_rss_mb": max(s["max_rss_mb"] or 0 for s in stages.values()),
        "runs": runs,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", choices=sorted(DATASETS), default="beauty")
    parser.add_argument("--workdir", type=Path, help="reuse this work folder (default: benchmarks/results/work-<dataset>)")
    parser.add_argument("--max-epochs", type=int, help="cap training epochs (default: the config's 200 with early stopping)")
    parser.add_argument("--cores", type=int, default=os.cpu_count())
    args = parser.parse_args()

    spec = DATASETS[args.dataset]
    if not Path(next(v for k, v in spec.items() if k in ("sequences", "inter"))).exists():
        sys.exit(f"the {args.dataset} data is not under {SHARED}")
    workdir = (args.workdir or REPO / "benchmarks" / "results" / f"work-{args.dataset}").resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    config = {"datasets": {args.dataset: spec}, "targets": {"datasets": [args.dataset]}}
    if args.max_epochs:
        config["train"] = {"max_epochs": args.max_epochs}
    (workdir / "benchmark.yaml").write_text(yaml.safe_dump(config))
    targets = [f"results/{args.dataset}_sasrec_metrics.json", f"results/{args.dataset}_sasrec_base_metrics.json"]
    started = time.perf_counter()
    snakemake(workdir, "--cores", str(args.cores), *targets, "--configfile", "benchmark.yaml")
    wall = time.perf_counter() - started

    report = collect(workdir, args.dataset)
    report.update(pipeline_wall_s=round(wall, 1), cores=args.cores, max_epochs=args.max_epochs)
    out = REPO / "benchmarks" / "results" / f"{args.dataset}.json"
    out.write_text(json.dumps(report, indent=2) + "\n")

    print(f"\n{args.dataset}: pipeline wall time {wall:.0f} s on {args.cores} cores")
    print(f"{'stage':<36}{'seconds':>10}{'peak RSS MB':>14}")
    for stage, values in report["stages"].items():
        print(f"{stage:<36}{values['s']:>10.1f}{values['max_rss_mb'] or 0:>14.0f}")
    print(f"{'embedding sentences/s':<36}{report['embed_sentences_per_s']:>10}")
    for name, value in report["train_epoch_s"].items():
        print(f"{'train s/epoch ' + name:<36}{value:>10}")
    for name, value in report["eval_users_per_s"].items():
        print(f"{'eval users/s ' + name:<36}{value:>10}")
    print(f"written to {out}")


if __name__ == "__main__":
    main()
