"""Stage `bundle`: move artifacts to and from the LLM-ESR authors' released folder layout
(see pipeline/datasets/authors_bundle.py).

    python -m pipeline bundle import ...   # a bundle's embeddings, PCA and similar users -> our artifacts
    python -m pipeline bundle export ...   # our artifacts -> a folder the authors' code can read
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import numpy as np
import polars as pl

from .datasets import authors_bundle
from .io import save_npy, write_json

log = logging.getLogger(__name__)


def import_main(args: argparse.Namespace) -> None:
    arrays = authors_bundle.import_artifacts(
        args.dir, pl.read_parquet(args.items), pl.read_parquet(args.users), args.hidden_size
    )
    save_npy(arrays["llm_items"], args.out_llm_items)
    save_npy(arrays["llm_users"], args.out_llm_users)
    save_npy(arrays["pca_items"], args.out_pca_items)
    save_npy(arrays["neighbours"], args.out_neighbours)
    source = {"model": f"llmesr_bundle:{args.dir}", "model_path": str(args.dir), "seconds": 0.0}
    for name, path in (("llm_items", args.out_items_meta), ("llm_users", args.out_users_meta)):
        write_json({**source, "dim": int(arrays[name].shape[1]), "count": len(arrays[name])}, path)
    write_json(
        {
            "method": "llmesr_bundle",
            "k": int(arrays["neighbours"].shape[1]),
            "users": len(arrays["neighbours"]),
            "source": str(args.dir),
        },
        args.out_retrieve_report,
    )
    log.info(
        "imported %s: %d items x %d dims, %d users, %d similar users each",
        args.dir,
        *arrays["llm_items"].shape,
        *arrays["neighbours"].shape,
    )


def export_main(args: argparse.Namespace) -> None:
    authors_bundle.export(
        args.out_dir,
        pl.read_parquet(args.interactions),
        np.load(args.llm_items),
        np.load(args.llm_users),
        np.load(args.pca_items),
        np.load(args.neighbours),
    )
    log.info("wrote %s", ", ".join(sorted(authors_bundle.FILES.values())))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="pipeline bundle", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    commands = parser.add_subparsers(dest="command", required=True)
    into = commands.add_parser("import")
    into.add_argument("--dir", required=True, type=Path)
    into.add_argument("--items", required=True, type=Path)
    into.add_argument("--users", required=True, type=Path)
    into.add_argument("--hidden-size", required=True, type=int)
    for name in ("llm-items", "llm-users", "pca-items", "neighbours", "items-meta", "users-meta", "retrieve-report"):
        into.add_argument(f"--out-{name}", required=True, type=Path)
    out = commands.add_parser("export")
    for name in ("interactions", "llm-items", "llm-users", "pca-items", "neighbours"):
        out.add_argument(f"--{name}", required=True, type=Path)
    out.add_argument("--out-dir", required=True, type=Path)
    args = parser.parse_args(argv)
    (import_main if args.command == "import" else export_main)(args)
