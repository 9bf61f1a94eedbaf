"""Stage `recommend`: top-K recommendations for every user from a trained model, after each
user's whole sequence (validation and test items included), the items the user already
interacted with excluded. Writes Parquet with one row per (user, rank): original user and
item ids and the model's score."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import numpy as np
import polars as pl
import torch

from .checkpoints import load_for_scoring
from .io import write_parquet
from .scoring import full_ranking, representations

log = logging.getLogger(__name__)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="pipeline recommend", description=__doc__)
    parser.add_argument("--checkpoint", required=True, type=Path)
    parser.add_argument("--interactions", required=True, type=Path)
    parser.add_argument("--items", required=True, type=Path)
    parser.add_argument("--users", required=True, type=Path)
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--k", type=int, required=True)
    parser.add_argument("--device", required=True)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)

    model, state, item_table, sequences, device = load_for_scoring(
        args.checkpoint, args.interactions, args.items, args.device, args.threads
    )
    users, items = representations(model, sequences, 0, state["model"]["max_len"], device)
    _, top = full_ranking(users, items, sequences, 0, None, args.k)
    scores = torch.einsum("ud,ukd->uk", users, items[torch.from_numpy(top).to(device)]).cpu().numpy()
    n_users, k = top.shape
    write_parquet(
        pl.DataFrame(
            {
                "user": np.repeat(pl.read_parquet(args.users)["original_id"].to_numpy(), k),
                "rank": np.tile(np.arange(1, k + 1), n_users).astype(np.int32),
                "item": item_table["original_id"].to_numpy()[top.reshape(-1) - 1],
                "score": scores.reshape(-1),
            }
        ),
        args.out,
    )
    log.info("top-%d recommendations for %d users", k, n_users)
