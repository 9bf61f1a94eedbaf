"""The one interface through which a method adds to the training loop (pipeline/train.py).

The loop trains on the recommendation loss alone; a method (LLM-ESR's self-distillation,
MELT's two transfer branches, RLMRec's alignment) hands it a list of `TrainingTerm`s, and per
epoch and batch the loop calls, in order:

    term.begin_epoch(model, epoch)          once, before the epoch's batches (caches, schedules)
    prepared = term.prepare(model, batch)   once per batch (its users, inputs, targets, negatives)
    term.loss(model, micro, prepared)       once per micro-batch (see train.length_groups)

and adds `term.weight * loss` to the recommendation loss. A term divides by counts of the
WHOLE batch (known in `prepare`), so that its micro-batch parts add up to the batch's value,
as the recommendation loss does. `weight` may change between epochs (MELT's curriculum).
Methods trained in a stage of their own (CITIES) do not use this: see models/cities.py.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from ..data import Sequences


@dataclass
class Batch:
    rows: np.ndarray  # the batch's users (0-based)
    inputs: np.ndarray  # (B, L) item ids, right-aligned, 0 = padding
    targets: np.ndarray  # (B, L) what each position predicts, 0 = nothing
    negatives: np.ndarray | None  # the recommendation loss's negatives


@dataclass
class MicroBatch:
    rows: np.ndarray  # the micro-batch's users (0-based)
    where: torch.Tensor  # their positions in the whole batch (index into what `prepare` returned)
    inputs: torch.Tensor  # (b, w) item ids, right-aligned, 0 = padding
    targets: torch.Tensor  # (b, w) what each position predicts, 0 = nothing
    states: torch.Tensor  # (b, w, d) the recommendation forward's states (with gradient)
    negatives: torch.Tensor | None = None  # the recommendation loss's negatives (per row, or shared)


@dataclass
class TrainingData:
    """What a method's terms may read besides the model."""

    sequences: Sequences
    max_len: int
    device: torch.device
    max_epochs: int
    keep_single_item_users: bool = False
    neighbours: np.ndarray | None = None  # (n_users, k) 1-based similar users (LLM-ESR)
    llm_items: np.ndarray | None = None  # (n_items, D) item prompt embeddings (RLMRec)
    llm_users: np.ndarray | None = None  # (n_users, D) user prompt embeddings (RLMRec)
    thresholds: dict | None = None  # {"ts_user", "ts_item"}: the dataset's head/tail cuts (MELT, CITIES)


class TrainingTerm:
    name = "extra"  # history and log column: f"{name}_loss"
    weight = 1.0

    def begin_epoch(self, model: nn.Module, epoch: int) -> None:
        """Called before the first batch of `epoch` (1-based)."""

    def prepare(self, model: nn.Module, batch: Batch) -> Any:
        """Whatever the batch's micro-batches need (computed once per batch)."""
        return None

    def loss(self, model: nn.Module, micro: MicroBatch, prepared: Any) -> torch.Tensor:
        raise NotImplementedError


def user_states(model: nn.Module, micro: MicroBatch, max_len: int) -> torch.Tensor:
    """(b, d) each user's representation of its training input, as scoring computes one: the
    recommendation forward's last state, or for models with a mask token (Bert4Rec) the state
    at a mask appended after the input's last max_len - 1 items (max_len positions in all)."""
    if model.mask_token is None:
        return micro.states[:, -1]
    inputs = micro.inputs[:, -(max_len - 1) :] if max_len > 1 else micro.inputs[:, :0]
    appended = torch.cat([inputs, torch.full_like(micro.inputs[:, :1], model.mask_token)], dim=1)
    return model.sequence_states(appended)[:, -1]
