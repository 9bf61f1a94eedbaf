"""`python -m pipeline <stage> [options]`: the command each Snakemake rule runs."""
from __future__ import annotations

import importlib
import logging
import sys

STAGES = {
    "ingest": "pipeline.ingest",
    "prompts": "pipeline.prompts",
    "embed": "pipeline.embed",
    "embed-merge": "pipeline.embed:merge_main",
    "pca": "pipeline.reduce",
    "retrieve": "pipeline.retrieve",
    "split": "pipeline.split",
    "train": "pipeline.train",
    "evaluate": "pipeline.evaluate",
    "recommend": "pipeline.recommend",
    "aggregate": "pipeline.aggregate",
    "bundle": "pipeline.interchange",
    "tables": "pipeline.tables",
    "plots": "pipeline.plots",
    "compare": "pipeline.compare",
}


def main() -> None:
    if len(sys.argv) < 2 or sys.argv[1] not in STAGES:
        sys.exit(f"usage: python -m pipeline {{{','.join(STAGES)}}} [options]")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", stream=sys.stderr)
    from .datasets import DataError

    module, _, function = STAGES[sys.argv[1]].partition(":")
    entry = getattr(importlib.import_module(module), function or "main")
    try:
        entry(sys.argv[2:])
    except DataError as err:  # bad input: a message for the user, not a traceback
        sys.exit(f"error: {err}")


if __name__ == "__main__":
    main()
