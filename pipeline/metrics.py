"""Ranking metrics. A target's rank is the number of other candidates scored at least as high
as it (ties count against the target, so a model that scores everything alike gets no hits).
At cut-off K: HR@K = share of targets with rank < K; NDCG@K = mean of 1 / log2(rank + 2) over
hits; MRR@K = mean of 1 / (rank + 1) over hits. Beyond accuracy (full ranking): coverage@K =
share of all items that appear in some top-K list of the group; tail_share@K = share of the
group's top-K slots filled with tail items."""

from __future__ import annotations

import numpy as np
import torch

GROUPS = ("overall", "tail_item", "head_item", "tail_user", "head_user")
PAPER_K = 10  # the paper reports HR@10 and NDCG@10; always included


def cutoffs(k: int | list[int]) -> list[int]:
    return sorted({*([k] if isinstance(k, int) else k), PAPER_K})


def target_ranks(scores: torch.Tensor) -> torch.Tensor:
    """(B, C) scores with the target in column 0 -> (B,) 0-based ranks."""
    return count_against(scores[:, 1:], scores[:, :1])


def count_against(scores: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per row, how many scores rank above the target (broadcast, rows along the last
    dimension): higher ones and ties, and NaN on either side (a diverged model), so that NaN
    never looks like a hit. Counted as the width minus the scores strictly below the target
    (a comparison with NaN is false): two passes over a full-ranking block where testing
    >=, NaN, NaN and OR-ing them took five, and the mask summed in int32, not bool's int64."""
    below = scores < target
    return below.shape[-1] - below.view(torch.uint8).sum(dim=-1, dtype=torch.int32).long()


def hr_ndcg(ranks: np.ndarray, k: int) -> tuple[float | None, float | None]:
    values = ranking_metrics(ranks, [k])
    return values[f"HR@{k}"], values[f"NDCG@{k}"]


def ranking_metrics(ranks: np.ndarray, ks: list[int]) -> dict[str, float | None]:
    out: dict[str, float | None] = {}
    for k in ks:
        if len(ranks) == 0:
            out.update({f"HR@{k}": None, f"NDCG@{k}": None, f"MRR@{k}": None})
            continue
        hits = ranks < k
        out[f"HR@{k}"] = float(hits.mean())
        out[f"NDCG@{k}"] = float(np.where(hits, 1.0 / np.log2(ranks + 2.0), 0.0).mean())
        out[f"MRR@{k}"] = float(np.where(hits, 1.0 / (ranks + 1.0), 0.0).mean())
    return out


def evaluated_users(candidates: np.ndarray) -> np.ndarray:
    """Users with candidates: a row without negatives (zeros) is a user that `eval.saturated:
    drop` left out, having seen nearly every item."""
    return candidates[:, 1:].min(axis=1) > 0


def group_masks(
    tail_user: np.ndarray, tail_item: np.ndarray, evaluated: np.ndarray | None = None
) -> dict[str, np.ndarray]:
    """The users of each head/tail group, among the `evaluated` ones (default: all)."""
    evaluated = np.ones_like(tail_user, dtype=bool) if evaluated is None else evaluated
    return {
        "overall": evaluated,
        "tail_item": tail_item & evaluated,
        "head_item": ~tail_item & evaluated,
        "tail_user": tail_user & evaluated,
        "head_user": ~tail_user & evaluated,
    }


def group_metrics(ranks: np.ndarray, masks: dict[str, np.ndarray], ks: list[int]) -> dict[str, dict]:
    """{group: {"n", "HR@k", "NDCG@k", "MRR@k" for each k}}; an empty group has n 0 and null metrics."""
    return {name: {"n": int(mask.sum()), **ranking_metrics(ranks[mask], ks)} for name, mask in masks.items()}


def beyond_accuracy(
    top: np.ndarray, masks: dict[str, np.ndarray], ks: list[int], n_items: int, tail_items: np.ndarray
) -> dict[str, dict]:
    """`top` (users, max k) recommended item ids, best first; `tail_items` (n_items + 1,) bool by id."""
    out = {}
    for name, mask in masks.items():
        out[name] = {}
        for k in ks:
            lists = top[mask, :k]
            empty = len(lists) == 0
            out[name][f"coverage@{k}"] = None if empty else len(np.unique(lists)) / n_items
            out[name][f"tail_share@{k}"] = None if empty else float(tail_items[lists].mean())
    return out
