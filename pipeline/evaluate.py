"""Stage `evaluate`: the best checkpoint of one run on the test targets and their fixed
candidates -> HR@k and NDCG@k overall and per head/tail group."""
from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

import numpy as np
import polars as pl
import torch

from .data import TEST_INPUT_CUT, Sequences, length_sorted_chunks
from .io import read_json, write_json
from .metrics import group_masks, group_metrics, target_ranks
from .models import build_model

log = logging.getLogger(__name__)

# Padded positions per forward chunk: measured on CPU, chunks of about 128 x 128 run
# several times faster than larger ones on long sequences (the attention matrices stay in cache).
TOKEN_BUDGET = 16384


def last_states(model: torch.nn.Module, sequences: Sequences, rows: np.ndarray, cut: int, max_len: int,
                device: torch.device, append_mask: bool = False, token_budget: int = TOKEN_BUDGET) -> torch.Tensor:
    """The model's state at the last position of each row's sequence without its last `cut`
    items, in the order of `rows`. With `append_mask` (Bert4Rec's user representation) a mask
    token follows the last max_len - 1 items. Rows go through the model in length-sorted
    chunks, so each is padded only to the longest sequence in its chunk."""
    keep = max_len - 1 if append_mask else max_len
    chunks = length_sorted_chunks(np.minimum(sequences.lengths[rows] - cut, keep), token_budget)
    states = []
    for chunk in chunks:
        seq = torch.from_numpy(sequences.padded(rows[chunk], cut, keep)).to(device)
        if append_mask:
            seq = torch.cat([seq, torch.full_like(seq[:, :1], model.mask_token)], dim=1)
        states.append(model.sequence_states(seq)[:, -1])
    return torch.cat(states)[torch.from_numpy(np.argsort(np.concatenate(chunks))).to(device)]


def user_vectors(model: torch.nn.Module, sequences: Sequences, rows: np.ndarray, cut: int, max_len: int,
                 device: torch.device) -> torch.Tensor:
    """The representation each user is scored with: the last state, or for models with a mask
    token (Bert4Rec) the state at a mask appended after the sequence."""
    return last_states(model, sequences, rows, cut, max_len, device, append_mask=model.mask_token is not None)


@torch.no_grad()
def candidate_ranks(model: torch.nn.Module, sequences: Sequences, candidates: np.ndarray, cut: int,
                    max_len: int, device: torch.device, batch_size: int = 1024) -> np.ndarray:
    """0-based rank of column 0 of `candidates` among its row, for every user."""
    was_training = model.training
    model.eval()
    rows = np.arange(sequences.n_users)
    users = user_vectors(model, sequences, rows, cut, max_len, device)
    items = model.item_vectors(torch.arange(sequences.n_items + 1, device=device))
    ranks = []
    for start in range(0, len(rows), batch_size):
        cands = torch.from_numpy(candidates[start : start + batch_size]).to(device).long()
        scores = torch.einsum("bd,bcd->bc", users[start : start + batch_size], items[cands])
        ranks.append(target_ranks(scores).cpu())
    model.train(was_training)
    return torch.cat(ranks).numpy()


def load_run(checkpoint: Path, device: torch.device) -> tuple[torch.nn.Module, dict]:
    state = torch.load(checkpoint, map_location=device, weights_only=False)
    n_items, llm_dim, hidden = state["n_items"], state["llm_dim"], state["model"]["hidden_size"]
    # Tables from data are placeholders here: their values come with the state dict.
    placeholders = dict(llm_items=torch.zeros(n_items, max(llm_dim, 1)), pca_items=torch.zeros(n_items, hidden))
    model = build_model(state["backbone"], state["model"], n_items, **placeholders)
    model.load_state_dict(state["state_dict"])
    return model.to(device), state


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="pipeline evaluate", description=__doc__)
    parser.add_argument("--checkpoint", required=True, type=Path)
    parser.add_argument("--history", required=True, type=Path)
    parser.add_argument("--interactions", required=True, type=Path)
    parser.add_argument("--items", required=True, type=Path)
    parser.add_argument("--candidates", required=True, type=Path)
    parser.add_argument("--groups", required=True, type=Path)
    parser.add_argument("--stats", required=True, type=Path)
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--run", required=True, help='JSON {"dataset", "backbone", "variant", "seed"}')
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)

    torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    model, state = load_run(args.checkpoint, device)
    sequences = Sequences.from_interactions(pl.read_parquet(args.interactions), pl.read_parquet(args.items).height)
    candidates = np.load(args.candidates)["test"]
    groups = pl.read_parquet(args.groups)

    start = time.perf_counter()
    ranks = candidate_ranks(model, sequences, candidates, TEST_INPUT_CUT, state["model"]["max_len"], device)
    seconds = time.perf_counter() - start
    log.info("scored %d users in %.2f s (%.0f users/s)", len(ranks), seconds, len(ranks) / seconds)
    masks = group_masks(groups["tail_user"].to_numpy(), groups["tail_item"].to_numpy())
    stats = read_json(args.stats)
    history = read_json(args.history)
    metrics = {
        **json.loads(args.run),
        "protocol": {"split": "leave-one-out", "negatives": candidates.shape[1] - 1, "k": args.k,
                     "negative_sampling": "uniform over items the user never interacted with, fixed per dataset",
                     "ties": "count against the target"},
        "thresholds": stats["thresholds"],
        "groups": group_metrics(ranks, masks, args.k),
        "training": {key: history[key] for key in ("best_epoch", "epochs_run", "stopped_early", "train_seconds")},
        "eval_users_per_s": round(len(ranks) / seconds, 1),
        "device": str(device),
    }
    for name, values in metrics["groups"].items():
        log.info("%-9s n=%-6d HR@%d=%s NDCG@%d=%s", name, values["n"], args.k, values[f"HR@{args.k}"],
                 args.k, values[f"NDCG@{args.k}"])
    write_json(metrics, args.out)
