"""MELT (Kim et al., SIGIR 2023, "Mutual Enhancement of Long-Tailed User and Item for
Sequential Recommendation"), over any backbone: the plain recommender plus two linear
transfers trained beside the recommendation loss, read from the authors' code (rlqja1107/MELT).

- User branch: for each HEAD user of a batch, the l most recent items of its input (l drawn
  uniformly from 1..ts_user - 1) are encoded too; W_U learns to map that short representation
  to the full one: weighted MSE(W_U(r_short), r_full), neither side detached. At inference a
  TAIL user's representation r becomes r + W_U(r) (the residual is MELT's, at inference only).
- Item branch: contexts of an item are users' representations of a sequence ENDING WITH the
  item; transferred as users are (c + W_U(c)) and mapped by W_I, they regress the item's ID
  vector (weighted MSE, not detached). Here a HEAD item's contexts are the batch's own states
  at the positions where the item is an input (each occurrence its own regression; MELT
  averages a few sampled contexts first). At the start of every epoch each TAIL item's row of
  the item table (input and output: the backbones tie them) is overwritten with W_I(mean of
  its raw contexts), over all its occurrences in the training sequences, in evaluation mode.
- Curriculum: each user's weight |sin(pi/2 * e / E + pi (n - ts_user - 1) / (2 (max_len -
  ts_user - 1)))| and each item's |sin(pi/2 * e / E + pi/100 (c - ts_item - 1))| (e: the
  epoch from 0, E: `curriculum_epochs`, n: the input length, c: the item's occurrences
  capped at ts_item + 50): the emphasis moves from the longest head users and the most
  frequent head items toward the shorter and rarer ones as training proceeds.
Loss = rec + lambda_user * L_user + lambda_item * L_item. Head and tail are the dataset's own
cuts (ts_user, ts_item: the groups every table reports) where MELT takes quantiles. Like
MELT's code, it fine-tunes the trained plain backbone of the same dataset and seed
(`melt.from_base`, default; false trains the backbone and the branches from scratch
together); the reversed-suffix contexts of MELT's code are left out.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from ..data import TRAIN_CUT
from ..options import option
from ..scoring import user_vectors
from .layers import init_weights
from .method import BuildInputs, Method
from .recommender import SequentialRecommender
from .terms import Batch, MicroBatch, TrainingData, TrainingTerm, user_states


@dataclass(frozen=True)
class MELTConfig:
    # MELT's Beauty setting (its README); the code's defaults are 0.2 and 0.3.
    lambda_user: float = option(0.1, "Weight of the user branch (MELT's Beauty setting).", minimum=0)
    lambda_item: float = option(0.4, "Weight of the item branch (MELT's Beauty setting).", minimum=0)
    curriculum_epochs: int = option(
        180, "E of the curriculum |sin(pi/2 e / E + ...)| (MELT's Beauty epoch budget).", minimum=1
    )
    from_base: bool = option(
        True,
        "Start from the trained plain backbone of the same dataset and seed and fine-tune it with the branches, as "
        "MELT's code does; false trains the backbone and the branches from scratch together.",
    )


class MELT(SequentialRecommender):
    """The plain recommender with MELT's two transfers; `ts_user` is kept as a buffer so that
    a saved model applies the user transfer to the same users at inference."""

    def __init__(self, config: MELTConfig, encoder: nn.Module, n_items: int, ts_user: int = 0, **common):
        super().__init__(encoder, n_items, **common)
        self.config = config
        d = common["hidden_size"]
        self.user_transfer = nn.Linear(d, d)
        self.item_transfer = nn.Linear(d, d)
        init_weights(self.user_transfer)
        init_weights(self.item_transfer)
        self.register_buffer("ts_user", torch.tensor(ts_user))
        self.transfers_tail_users = True  # off while the tail items' raw contexts are computed

    def item_count(self, seq: torch.Tensor) -> torch.Tensor:
        real = seq > 0
        if self.mask_token is not None:
            real &= seq != self.mask_token
        return real.sum(dim=1)

    def sequence_states(self, seq: torch.Tensor, position_shift: torch.Tensor | None = None) -> torch.Tensor:
        states = super().sequence_states(seq, position_shift)
        if self.training or not self.transfers_tail_users:
            return states
        tail = (self.item_count(seq) < self.ts_user)[:, None, None]
        return torch.where(tail, states + self.user_transfer(states), states)


def curriculum(phase: float, offset: torch.Tensor) -> torch.Tensor:
    return torch.sin(phase + offset).abs()


class UserTransfer(TrainingTerm):
    name = "user_transfer"

    def __init__(self, config: MELTConfig, ts_user: int, max_len: int):
        self.weight, self.config, self.ts_user, self.max_len = config.lambda_user, config, ts_user, max_len
        self.phase = 0.0

    def begin_epoch(self, model: MELT, epoch: int) -> None:
        self.phase = math.pi / 2 * (epoch - 1) / self.config.curriculum_epochs

    def prepare(self, model: MELT, batch: Batch) -> int:
        real = (batch.inputs > 0) & (batch.inputs != (model.mask_token or -1))
        return int((real.sum(1) >= self.ts_user).sum())  # the batch's head users

    def loss(self, model: MELT, micro: MicroBatch, n_head: int) -> torch.Tensor:
        lengths = model.item_count(micro.inputs)
        head = lengths >= self.ts_user
        if not head.any() or self.ts_user < 2:
            return micro.states.new_zeros(())
        inputs, width = micro.inputs[head], micro.inputs.shape[1]
        keep = torch.randint(1, self.ts_user, (len(inputs),), device=inputs.device)
        columns = torch.arange(width, device=inputs.device)
        short = torch.where(columns >= width - keep[:, None], inputs, torch.zeros_like(inputs))
        if model.mask_token is not None:
            short = torch.cat([short, torch.full_like(short[:, :1], model.mask_token)], dim=1)
        r_short = model.sequence_states(short)[:, -1]
        r_full = user_states(model, micro, self.max_len)[head]
        span = max(self.max_len - self.ts_user - 1, 1)
        weights = curriculum(self.phase, math.pi * (lengths[head] - self.ts_user - 1) / (2 * span))
        squared = (model.user_transfer(r_short) - r_full) ** 2
        return (weights[:, None] * squared).sum() / (n_head * squared.shape[-1])


class ItemTransfer(TrainingTerm):
    name = "item_transfer"

    def __init__(self, config: MELTConfig, data: TrainingData):
        self.weight, self.config, self.data = config.lambda_item, config, data
        sequences, ts_item = data.sequences, data.thresholds["ts_item"]
        # One entry per id, padding and Bert4Rec's mask included (neither is a head item).
        popularity = np.bincount(sequences.items, minlength=sequences.n_items + 2)
        self.ts_item = ts_item
        self.head_ids = popularity >= ts_item
        self.head_ids[[0, -1]] = False
        self.head = torch.from_numpy(self.head_ids).to(data.device)
        # The tail items' contexts: every occurrence in a training sequence, as (user row, cut).
        users, position = sequences.occurrences(TRAIN_CUT)
        items = sequences.items[sequences.offsets[users] + position]
        occurrences = np.bincount(items, minlength=sequences.n_items + 2)
        self.contexts = torch.from_numpy(np.minimum(occurrences, ts_item + 50)).to(data.device)
        tail = ~self.head_ids[items]
        self.tail_users, self.tail_items = users[tail], items[tail]
        self.tail_cuts = sequences.lengths[self.tail_users] - position[tail] - 1  # the sequence ends with the item
        self.phase = 0.0

    @torch.no_grad()
    def refresh_tail_items(self, model: MELT) -> None:
        """Each tail item's row <- W_I(mean of its raw contexts), in evaluation mode."""
        if not len(self.tail_items):
            return
        was_training = model.training
        model.eval()
        model.transfers_tail_users = False
        try:
            states = user_vectors(
                model, self.data.sequences, self.tail_users, self.tail_cuts, self.data.max_len, self.data.device
            )
        finally:
            model.transfers_tail_users = True
            model.train(was_training)
        items = torch.from_numpy(self.tail_items).to(states.device)
        distinct, where = torch.unique(items, return_inverse=True)
        sums = states.new_zeros(len(distinct), states.shape[1]).index_add_(0, where, states)
        counts = torch.bincount(where, minlength=len(distinct)).unsqueeze(1)
        model.item_embedding.weight[distinct] = model.item_transfer(sums / counts)

    def begin_epoch(self, model: MELT, epoch: int) -> None:
        self.phase = math.pi / 2 * (epoch - 1) / self.config.curriculum_epochs
        self.refresh_tail_items(model)

    def prepare(self, model: MELT, batch: Batch) -> int:
        return int(self.head_ids[batch.inputs].sum())  # head-item occurrences in the batch's inputs

    def loss(self, model: MELT, micro: MicroBatch, n_occurrences: int) -> torch.Tensor:
        at = self.head[micro.inputs]
        if not at.any():
            return micro.states.new_zeros(())
        items, contexts = micro.inputs[at], micro.states[at]
        transferred = contexts + model.user_transfer(contexts)
        weights = curriculum(self.phase, math.pi / 100 * (self.contexts[items] - self.ts_item - 1))
        squared = (model.item_transfer(transferred) - model.item_embedding(items)) ** 2
        return (weights[:, None] * squared).sum() / (n_occurrences * squared.shape[-1])


def melt_terms(config: MELTConfig, data: TrainingData) -> list[TrainingTerm]:
    return [UserTransfer(config, data.thresholds["ts_user"], data.max_len), ItemTransfer(config, data)]


def build(config: MELTConfig, inputs: BuildInputs) -> MELT:
    ts_user = (inputs.thresholds or {}).get("ts_user", 0)  # a loaded model takes it from its state dict
    return MELT(config, inputs.encoder(), inputs.n_items, ts_user, **inputs.common)


METHOD = Method(
    "melt",
    "MELT",
    build,
    MELTConfig,
    "MELT's Beauty setting (rlqja1107/MELT README).",
    needs=lambda config: {"stats", "base"} if config.from_base else {"stats"},
    terms=melt_terms,
    group_analysis=True,
    order=20,
)
