"""Scoring a model's users against items: the representations, sampled-candidate ranks and
full-ranking ranks that both validation (training) and the test stage (evaluation,
recommendation) compute. One floor below both stages."""

from __future__ import annotations

import logging

import numpy as np
import torch

from .console import ProgressLog
from .data import Sequences, length_sorted_chunks
from .errors import DataError
from .metrics import count_against, target_ranks

# Padded positions per forward chunk: measured on CPU, chunks of about 128 x 128 run
# several times faster than larger ones on long sequences (the attention matrices stay in cache).
TOKEN_BUDGET = 16384

log = logging.getLogger(__name__)


def last_states(
    model: torch.nn.Module,
    sequences: Sequences,
    rows: np.ndarray,
    cut: int | np.ndarray,
    max_len: int,
    device: torch.device,
    append_mask: bool = False,
    token_budget: int = TOKEN_BUDGET,
) -> torch.Tensor:
    """The model's state at the last position of each row's sequence without its last `cut`
    items (one number, or one per row), in the order of `rows`. With `append_mask` (Bert4Rec's
    user representation) a mask token follows the last max_len - 1 items (with the authors'
    shifted positions where the model has them). Rows go through the model in length-sorted
    chunks, so each is padded only to the longest sequence in its chunk."""
    keep = max_len - 1 if append_mask else max_len
    cut = np.broadcast_to(np.asarray(cut), rows.shape)
    lengths = sequences.lengths[rows] - cut
    # A model that steps over every padding position (GRU4Rec, padding: attended) computes max_len
    # positions per row whatever the chunk's width: size the chunks by that.
    widths = np.full(len(rows), max_len) if model.encoder.full_width else np.minimum(lengths, keep)
    chunks = length_sorted_chunks(widths, token_budget)
    states = []
    for chunk in chunks:
        seq = torch.from_numpy(sequences.padded(rows[chunk], cut[chunk], keep)).to(device)
        shift = None
        if append_mask:
            seq = torch.cat([seq, torch.full_like(seq[:, :1], model.mask_token)], dim=1)
            if model.shifts_long_positions:  # the authors' Bert4Rec quirk: inputs of max_len or more items
                shift = torch.from_numpy(lengths[chunk] >= max_len).to(device)
        states.append(model.sequence_states(seq, shift)[:, -1])
    return torch.cat(states)[torch.from_numpy(np.argsort(np.concatenate(chunks))).to(device)]


def user_vectors(
    model: torch.nn.Module,
    sequences: Sequences,
    rows: np.ndarray,
    cut: int | np.ndarray,
    max_len: int,
    device: torch.device,
) -> torch.Tensor:
    """The representation each user is scored with: the last state, or for models with a mask
    token (Bert4Rec) the state at a mask appended after the sequence."""
    return last_states(model, sequences, rows, cut, max_len, device, append_mask=model.mask_token is not None)


@torch.no_grad()
def representations(
    model: torch.nn.Module,
    sequences: Sequences,
    cut: int,
    max_len: int,
    device: torch.device,
    rows: np.ndarray | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(user vectors for each user's sequence without its last `cut` items, item vectors for
    ids 0..n_items), in evaluation mode; the users are `rows` (0-based; default: every user)."""
    was_training = model.training
    model.eval()
    rows = np.arange(sequences.n_users) if rows is None else rows
    users = user_vectors(model, sequences, rows, cut, max_len, device)
    items = model.item_vectors(torch.arange(sequences.n_items + 1, device=device))
    model.train(was_training)
    return users, items


def sampled_ranks(
    users: torch.Tensor,
    items: torch.Tensor,
    candidates: np.ndarray,
    batch_size: int = 4096,
    item_bias: torch.Tensor | None = None,
) -> np.ndarray:
    """0-based rank of column 0 of `candidates` among its row: one gather and dot product per batch.
    `item_bias` (n_items + 1,): added to every item's score (an inference-time correction)."""
    ranks = []
    for start in range(0, len(users), batch_size):
        cands = torch.from_numpy(candidates[start : start + batch_size]).to(users.device).long()
        scores = torch.einsum("bd,bcd->bc", users[start : start + batch_size], items[cands])
        if item_bias is not None:
            scores = scores + item_bias[cands]
        ranks.append(target_ranks(scores).cpu())
    return torch.cat(ranks).numpy()


@torch.no_grad()
def full_ranking(
    users: torch.Tensor,
    items: torch.Tensor,
    sequences: Sequences,
    cut: int,
    targets: np.ndarray | None,
    k: int,
    batch_size: int = 1024,
    item_bias: torch.Tensor | None = None,
    owners: np.ndarray | None = None,
) -> tuple[np.ndarray | None, np.ndarray]:
    """Every item scored for every user, in chunks of users (memory: batch_size x n_items).
    The user's history (the sequence without its last `cut` items) is excluded, except the
    target itself when it also occurs there. `item_bias` (n_items + 1,) is added to every
    item's score. `owners`: the 0-based sequence row of each of `users` (default: user i is
    row i). Returns (0-based target ranks, or None without targets; top-k item ids per user,
    best first)."""
    n_users, device = len(users), users.device
    if k > len(items) - 1:  # row 0 is padding
        raise DataError(
            f"top-{k} lists asked for, but the catalogue has only {len(items) - 1} items: evaluation "
            f"ranks the top max(eval.k) and 10 (also select_on: full): lower eval.k to at most "
            f"{len(items) - 1} (a catalogue under 10 items cannot be ranked this way)"
        )
    ranks, top = [], []
    progress = ProgressLog(log, "full ranking, users", n_users)
    for start in range(0, n_users, batch_size):
        progress.update(start)
        rows = np.arange(start, min(start + batch_size, n_users))
        scores = users[rows] @ items.T
        if item_bias is not None:
            scores += item_bias
        scores[:, 0] = -torch.inf  # padding id
        starts, ends = sequences.bounds(rows if owners is None else owners[rows], cut)
        lengths = np.maximum(ends - starts, 0)
        which = np.repeat(np.arange(len(rows)), lengths)
        seen = sequences.items[
            np.repeat(starts, lengths) + np.arange(lengths.sum()) - np.repeat(np.cumsum(lengths) - lengths, lengths)
        ]
        if targets is not None:
            target = torch.from_numpy(targets[rows]).to(device).long()
            local = torch.arange(len(rows), device=device)
            target_scores = scores[local, target].clone()
        scores[torch.from_numpy(which).to(device), torch.from_numpy(seen).to(device)] = -torch.inf
        if targets is not None:
            scores[local, target] = target_scores
            ranks.append((count_against(scores, target_scores[:, None]) - 1).cpu())
        top.append(scores.topk(k, dim=1).indices.cpu())
    return (torch.cat(ranks).numpy() if ranks else None), torch.cat(top).numpy()
