"""`python -m pipeline compare METRICS.json ...`: a table of HR@10 / NDCG@10 per group."""

from __future__ import annotations

import argparse
from pathlib import Path

from .io import read_json
from .metrics import GROUPS


def table(results: list[dict], k: int = 10) -> str:
    def cell(value: float | None) -> str:
        return "  -   " if value is None else f"{value:.4f}"

    header = f"{'model':<24}" + "".join(f"{g:>19}" for g in GROUPS)
    sub = f"{'':<24}" + f"{'HR@' + str(k):>10}{'NDCG@' + str(k):>9}" * len(GROUPS)
    lines = [header, sub]
    for result in results:
        name = f"{result['dataset']} {result['backbone']} {result['variant']}"
        row = f"{name:<24}"
        for group in GROUPS:
            values = result["groups"][group]
            row += f"{cell(values[f'HR@{k}']):>10}{cell(values[f'NDCG@{k}']):>9}"
        lines.append(row)
    counts = results[0]["groups"]
    lines.append(f"{'users per group':<24}" + "".join(f"{counts[g]['n']:>19}" for g in GROUPS))
    thresholds = results[0]["thresholds"]
    lines.append(f"thresholds: ts_user={thresholds['ts_user']} ts_item={thresholds['ts_item']}")
    for result in results:  # the training budget behind each row
        train = result["record"]["config"]["train"]
        for seed, run in result["per_seed"].items():
            run = run["training"]
            lines.append(
                f"{result['backbone']} {result['variant']} seed {seed}: {run['epochs_run']} epochs of at most "
                f"{train['max_epochs']} (best {run['best_epoch']}, patience {train['patience']})"
                + ("" if run["stopped_early"] else "; stopped by max_epochs, not by early stopping")
            )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="pipeline compare", description=__doc__)
    parser.add_argument("metrics", nargs="+", type=Path)
    args = parser.parse_args(argv)
    print(table([read_json(path) for path in args.metrics]))
