"""Ranking metrics. A target's rank is the number of candidates scored at least as high as it
(ties count against the target, so a model that scores everything alike gets no hits).
HR@k = share of targets with rank < k; NDCG@k = mean of 1 / log2(rank + 2) over hits."""
from __future__ import annotations

import numpy as np
import torch

GROUPS = ("overall", "tail_item", "head_item", "tail_user", "head_user")


def target_ranks(scores: torch.Tensor) -> torch.Tensor:
    """(B, C) scores with the target in column 0 -> (B,) 0-based ranks."""
    return (scores[:, 1:] >= scores[:, :1]).sum(dim=1)


def hr_ndcg(ranks: np.ndarray, k: int) -> tuple[float | None, float | None]:
    if len(ranks) == 0:
        return None, None
    hits = ranks < k
    return float(hits.mean()), float(np.where(hits, 1.0 / np.log2(ranks + 2.0), 0.0).mean())


def group_masks(tail_user: np.ndarray, tail_item: np.ndarray) -> dict[str, np.ndarray]:
    return {
        "overall": np.ones_like(tail_user, dtype=bool),
        "tail_item": tail_item,
        "head_item": ~tail_item,
        "tail_user": tail_user,
        "head_user": ~tail_user,
    }


def group_metrics(ranks: np.ndarray, masks: dict[str, np.ndarray], k: int) -> dict[str, dict]:
    """{group: {"n", "HR@k", "NDCG@k"}}; an empty group has n 0 and null metrics."""
    out = {}
    for name, mask in masks.items():
        hr, ndcg = hr_ndcg(ranks[mask], k)
        out[name] = {"n": int(mask.sum()), f"HR@{k}": hr, f"NDCG@{k}": ndcg}
    return out
