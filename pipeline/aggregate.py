"""Stage `aggregate`: the per-seed metrics of one (dataset, backbone, variant) -> the results
file other tools read, `results/{dataset}_{backbone}[_{variant}]_metrics.json`.

`groups` holds the mean over seeds (the value itself for one seed), `std` the population
standard deviation, `per_seed` every seed's own numbers. `seed` is the seed when there is one
and the list when there are several; `seeds` is always the list."""
from __future__ import annotations

import argparse
import logging
from pathlib import Path

import numpy as np

from .io import read_json, write_json

log = logging.getLogger(__name__)


def aggregate(runs: list[dict]) -> dict:
    first = runs[0]
    seeds = [run["seed"] for run in runs]
    groups, spread = {}, {}
    for group, values in first["groups"].items():
        metrics = [m for m in values if m != "n"]
        groups[group], spread[group] = {"n": values["n"]}, {}
        for metric in metrics:
            numbers = [run["groups"][group][metric] for run in runs]
            if any(n is None for n in numbers):
                groups[group][metric] = spread[group][metric] = None
            else:
                groups[group][metric] = float(np.mean(numbers))
                spread[group][metric] = float(np.std(numbers))
    return {
        "dataset": first["dataset"],
        "backbone": first["backbone"],
        "variant": first["variant"],
        "seed": seeds[0] if len(seeds) == 1 else seeds,
        "seeds": seeds,
        "protocol": first["protocol"],
        "thresholds": first["thresholds"],
        "groups": groups,
        "std": spread,
        "per_seed": {str(run["seed"]): {"groups": run["groups"], "training": run["training"]} for run in runs},
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="pipeline aggregate", description=__doc__)
    parser.add_argument("runs", nargs="+", type=Path, help="per-seed metrics files")
    parser.add_argument("--out", required=True, type=Path)
    args = parser.parse_args(argv)
    write_json(aggregate([read_json(path) for path in args.runs]), args.out)
