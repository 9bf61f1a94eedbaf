"""Stage `aggregate`: the per-seed metrics of one (dataset, backbone, variant) -> the results
file other tools read, `results/{dataset}_{backbone}[_{variant}]_metrics.json`.

`groups` (sampled protocol) and `full_ranking.groups` hold the mean over seeds (the value
itself for one seed), `std` and `full_ranking.std` the population standard deviation,
`per_seed` every seed's own numbers. `seed` is the seed when there is one
and the list when there are several; `seeds` is always the list."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import numpy as np

from .io import read_json, write_json

log = logging.getLogger(__name__)


def mean_and_std(per_seed: list[dict]) -> tuple[dict, dict]:
    """{group: {metric: value}} over seeds -> (means with `n`, population std); a metric that is
    null in any seed (an empty group) stays null."""
    means, spread = {}, {}
    for group, values in per_seed[0].items():
        means[group], spread[group] = {"n": values["n"]}, {}
        for metric in (m for m in values if m != "n"):
            numbers = [groups[group][metric] for groups in per_seed]
            if any(n is None for n in numbers):
                means[group][metric] = spread[group][metric] = None
            else:
                means[group][metric], spread[group][metric] = float(np.mean(numbers)), float(np.std(numbers))
    return means, spread


def aggregate(runs: list[dict]) -> dict:
    first = runs[0]
    seeds = [run["seed"] for run in runs]
    groups, spread = mean_and_std([run["groups"] for run in runs])
    result = {
        "dataset": first["dataset"],
        "backbone": first["backbone"],
        "variant": first["variant"],
        "title": first.get("title", first["variant"]),
        "role": first.get("role"),
        "seed": seeds[0] if len(seeds) == 1 else seeds,
        "seeds": seeds,
        "protocol": first["protocol"],
        "thresholds": first["thresholds"],
        "groups": groups,
        "std": spread,
        "per_seed": {str(run["seed"]): {"groups": run["groups"], "training": run["training"]} for run in runs},
    }
    if "record" in first:
        result["record"] = {**first["record"], "device": sorted({run["record"]["device"] for run in runs})}
        result["record"]["config"] = {k: v for k, v in first["record"]["config"].items() if k != "train"}
        result["record"]["config"]["train"] = {
            k: v for k, v in first["record"]["config"]["train"].items() if k != "seed"
        }
    if "popularity_corrected" in first:  # the inference-time correction, its gamma chosen per seed
        corrected = [run["popularity_corrected"] for run in runs]
        sampled, sampled_spread = mean_and_std([c["groups"] for c in corrected])
        full, full_spread = mean_and_std([c["full_ranking"]["groups"] for c in corrected])
        result["popularity_corrected"] = {
            "gamma": [c["gamma"] for c in corrected],
            "chosen_on": corrected[0]["chosen_on"],
            "reference_valid_coverage@10": [c.get("reference_valid_coverage@10") for c in corrected],
            "groups": sampled,
            "std": sampled_spread,
            "full_ranking": {"groups": full, "std": full_spread},
        }
    if "full_ranking" in first:
        full, full_spread = mean_and_std([run["full_ranking"]["groups"] for run in runs])
        result["full_ranking"] = {"groups": full, "std": full_spread, "excluded": first["full_ranking"]["excluded"]}
        for run in runs:
            result["per_seed"][str(run["seed"])]["full_ranking"] = run["full_ranking"]["groups"]
    return result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="pipeline aggregate", description=__doc__)
    parser.add_argument("runs", nargs="+", type=Path, help="per-seed metrics files")
    parser.add_argument("--out", required=True, type=Path)
    args = parser.parse_args(argv)
    write_json(aggregate([read_json(path) for path in args.runs]), args.out)
