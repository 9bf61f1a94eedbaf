"""The recommendation losses of the training loop (`train.loss`), for every backbone, plain or
under LLM-ESR (whose distillation term is added on top, unchanged).

- `bce` (the paper's): binary cross-entropy of each target against `negatives` uniformly drawn
  items the user has not trained on: -log s(pos) - sum_j log(1 - s(neg_j)), averaged over the
  targets. With one negative this is the authors' mean-over-positives plus mean-over-negatives.
- `gbce` (gSASRec, Petrov & Macdonald, RecSys 2023): the positive's probability raised to
  beta = 1 - t (1 - alpha), alpha = negatives / (items - 1): -beta log s(pos) - sum_j log(1 -
  s(neg_j)). t = 0 is `bce`; gSASRec recommends t = 0.75 with 256 negatives.
  When the negatives are many against the catalogue (`Loss.scores_catalogue`), both take each
  target's logits from its scores over the whole catalogue: cheaper than gathering them.
- `sampled_softmax`: softmax cross-entropy of each target against `negatives` uniform items
  shared by the whole batch (a negative equal to the target is left out); with `logq` the
  negatives' logits are corrected by log(negatives / items), their expected count, so the
  sampled softmax estimates the full one.
- `infonce` (AlphaFuse's): softmax cross-entropy of each target against its own `negatives`
  uniform items (the user's training items left out, as for `bce`) on cosine similarities
  divided by `temperature`: the vectors' lengths do not enter training.
- `ce`: softmax cross-entropy over the whole catalogue, the logits computed for blocks of
  targets of at most `ce_block` logits each (memory stays at ce_block whatever the catalogue's
  size), and each block's gradient taken while the block is in cache (see `_SummedLogSumExp`).

Where negatives come from (besides uniform): `hard_negatives`, a share of the per-target
negatives (bce, gbce, infonce) drawn from the target's `hard_negative_pool` nearest items by
LLM embedding (cosine), so the model must tell an item from its near-duplicates; and
`negatives_from: popularity` for sampled_softmax, items drawn in proportion to their training
count, whose `logq` correction is then per item: log(negatives x its probability).

Every loss is a sum over the targets divided by `count` (default: their number): a micro-batch
passes its whole batch's count, so the micro-batches' losses add up to the batch's.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch.autograd.function import once_differentiable

from .data import sample_negatives, training_items_of

LOSSES = ("bce", "gbce", "sampled_softmax", "infonce", "ce")
PER_TARGET = ("bce", "gbce", "infonce")  # the losses that draw negatives for each target


@dataclass(frozen=True)
class LossConfig:
    """The loss options of `train` (the schema documents them and holds their defaults)."""

    loss: str
    negatives: int
    logq: bool
    gbce_t: float
    ce_block: int
    temperature: float
    hard_negatives: float
    hard_negative_pool: int
    negatives_from: str

    def __post_init__(self):
        if self.loss not in LOSSES:
            raise ValueError(f"train.loss must be one of {LOSSES}, not {self.loss!r}")
        problems = option_errors(self.__dict__)
        if problems:
            raise ValueError("; ".join(problems))


def option_errors(train: dict) -> list[str]:
    """Negative options that the loss would ignore, as messages."""
    problems = []
    if train["hard_negatives"] > 0 and train["loss"] not in PER_TARGET:
        problems.append(
            f"train.hard_negatives {train['hard_negatives']} replaces per-target negatives: use loss "
            f"{', '.join(PER_TARGET)}, not {train['loss']}"
        )
    if train["negatives_from"] != "uniform" and train["loss"] != "sampled_softmax":
        problems.append(
            f"train.negatives_from {train['negatives_from']!r} draws sampled_softmax's shared negatives: "
            f"use loss sampled_softmax, not {train['loss']}"
        )
    return problems


def _summed_bce(logits: torch.Tensor, beta: float) -> torch.Tensor:
    """(1 + N, targets) logits, the positives' first -> -beta log s(pos) - sum log(1 - s(neg)), summed."""
    positive = F.binary_cross_entropy_with_logits(logits[0], torch.ones_like(logits[0]), reduction="sum")
    return (positive if beta == 1 else beta * positive) + F.binary_cross_entropy_with_logits(
        logits[1:], torch.zeros_like(logits[1:]), reduction="sum"
    )


def bce_loss(
    states: torch.Tensor,
    targets: torch.Tensor,
    negatives: torch.Tensor,
    model: torch.nn.Module,
    count: int | None = None,
    beta: float = 1.0,
) -> torch.Tensor:
    """-beta log s(pos) - sum over the target's negatives of log(1 - s(neg)), summed over the
    non-padding target positions and divided by `count`. `negatives` has the targets' shape,
    with one more axis when a target has several. Each target's items are gathered."""
    where = targets > 0
    users = states[where]
    if not len(users):  # a micro-batch without targets (Bert4Rec's random mask may leave one)
        return states.sum() * 0
    negatives = negatives[where].reshape(len(users), -1).T  # (N, T)
    items = model.item_vectors(torch.cat([targets[where][None], negatives]))  # (1 + N, T, d)
    logits = (users.unsqueeze(0) * items).sum(-1)
    return _summed_bce(logits, beta) / (len(users) if count is None else count)


class _PickedScores(torch.autograd.Function):
    """users (T, d), items (n, d), picked (T, k) item rows -> the (T, k) dot products, computed
    for blocks of `rows` users against the whole catalogue. Autograd's `gather` would keep each
    block's (rows x n) scores for its backward pass; here the backward scatters the gradient
    into one block of zeros at a time, so memory stays at one block whatever T is."""

    @staticmethod
    def forward(ctx, users: torch.Tensor, items: torch.Tensor, picked: torch.Tensor, rows: int) -> torch.Tensor:
        ctx.save_for_backward(users, items, picked)
        ctx.rows = rows
        return torch.cat([(part @ items.T).gather(1, ids) for part, ids in zip(users.split(rows), picked.split(rows))])

    @staticmethod
    @once_differentiable
    def backward(ctx, grad: torch.Tensor):
        users, items, picked = ctx.saved_tensors
        grad_users, grad_items = torch.empty_like(users), torch.zeros_like(items)
        for start in range(0, len(users), ctx.rows):
            block = slice(start, start + ctx.rows)
            dense = users.new_zeros(len(picked[block]), len(items)).scatter_add_(1, picked[block], grad[block])
            grad_users[block] = dense @ items
            grad_items.addmm_(dense.T, users[block])
        return grad_users, grad_items, None, None


def bce_loss_scoring_catalogue(
    states: torch.Tensor,
    targets: torch.Tensor,
    negatives: torch.Tensor,
    model: torch.nn.Module,
    n_items: int,
    block: int,
    count: int | None = None,
    beta: float = 1.0,
) -> torch.Tensor:
    """`bce_loss` with each target's logits picked from its scores over the whole catalogue,
    computed for blocks of targets of at most `block` logits (memory: one block). With
    hundreds of negatives this is cheaper: the item vectors are computed once per call, and
    the work is matrix products instead of copying 1 + N vectors per target."""
    where = targets > 0
    users = states[where]
    if not len(users):
        return states.sum() * 0
    picked = torch.cat([targets[where][:, None], negatives[where].reshape(len(users), -1)], dim=1) - 1
    items = model.item_vectors(torch.arange(1, n_items + 1, device=users.device))
    logits = _PickedScores.apply(users, items, picked, max(1, block // n_items))
    return _summed_bce(logits.T, beta) / (len(users) if count is None else count)


class Loss:
    """A recommendation loss and the negatives it needs. `shared` negatives are one set for the
    whole batch, not one per target (micro-batches then take them whole)."""

    shared = False

    def __init__(
        self,
        config: LossConfig,
        n_items: int,
        hard_pool: np.ndarray | None = None,
        counts: np.ndarray | None = None,
    ):
        """`hard_pool` (n_items + 1, pool) each item's nearest items (`hard_negatives`);
        `counts` (n_items + 1,) the items' training counts (`negatives_from: popularity`)."""
        self.config, self.n_items, self.hard_pool = config, n_items, hard_pool
        if config.hard_negatives > 0 and hard_pool is None:
            raise ValueError("train.hard_negatives needs each item's nearest items (from the item LLM embeddings)")
        self.probabilities = None
        if config.negatives_from == "popularity":
            if counts is None or not counts[1:].sum():
                raise ValueError("negatives_from: popularity needs the items' training counts")
            self.probabilities = counts[1:] / counts[1:].sum()

    def negatives(
        self, rng: np.random.Generator, rows: np.ndarray, targets: np.ndarray, exclude: np.ndarray
    ) -> np.ndarray | None:
        """Per target, `negatives` uniform items the row's user has not trained on (0 where
        there is no target). One negative per target keeps the targets' shape and the draws
        of the default loss as they always were (one per position, padding too); several are
        drawn at the targets only (most of a batch's positions are padding)."""
        count = self.config.negatives
        if count == 1:
            drawn = sample_negatives(rng, rows, targets.shape, self.n_items, exclude) * (targets > 0)
        else:
            where = np.nonzero(targets > 0)
            drawn = np.zeros((*targets.shape, count), dtype=np.int64)
            drawn[where] = sample_negatives(rng, rows[where[0]], (len(where[0]), count), self.n_items, exclude)
        if self.config.hard_negatives > 0:
            self.swap_in_hard_negatives(rng, rows, targets, drawn if count > 1 else drawn[..., None], exclude)
        return drawn

    def swap_in_hard_negatives(
        self, rng: np.random.Generator, rows: np.ndarray, targets: np.ndarray, drawn: np.ndarray, exclude: np.ndarray
    ) -> None:
        """Each negative slot (of `drawn`, targets' shape + (count,), changed in place) of a
        target becomes, with probability `hard_negatives`, one of the target's nearest items
        drawn uniformly from its pool; a near item the user has trained on keeps the uniform one."""
        slots = drawn.shape
        near = self.hard_pool[
            np.broadcast_to(targets[..., None], slots), rng.integers(0, self.hard_pool.shape[1], size=slots)
        ]
        trained, local = training_items_of(exclude, rows, self.n_items)
        seen = trained[np.broadcast_to(local.reshape((-1,) + (1,) * (len(slots) - 1)), slots), near]
        swap = (rng.random(slots) < self.config.hard_negatives) & (targets[..., None] > 0) & ~seen
        drawn[swap] = near[swap]

    beta = 1.0  # the positive term's weight

    @property
    def scores_catalogue(self) -> bool:
        """Whether the logits come from scoring the whole catalogue rather than gathering each
        target's 1 + N items: a catalogue item costs about 1/64 of a gathered one (measured
        with 12k items, 256 negatives and 756 targets at 1 thread, forward and backward: 199
        vs 258 ms at d = 64, 248 vs 526 ms at LLM-ESR's d = 128). One negative always
        gathers: the paper's loss, computed as it always was."""
        return self.config.negatives > 1 and 64 * (1 + self.config.negatives) >= self.n_items

    def __call__(
        self,
        states: torch.Tensor,
        targets: torch.Tensor,
        negatives: torch.Tensor | None,
        model: torch.nn.Module,
        count: int | None = None,
    ) -> torch.Tensor:
        if self.scores_catalogue:
            return bce_loss_scoring_catalogue(
                states, targets, negatives, model, self.n_items, self.config.ce_block, count, self.beta
            )
        return bce_loss(states, targets, negatives, model, count, self.beta)


class GeneralisedBCE(Loss):
    @property
    def beta(self) -> float:
        alpha = self.config.negatives / (self.n_items - 1)
        return 1 - self.config.gbce_t * (1 - alpha)


class SampledSoftmax(Loss):
    shared = True

    def negatives(self, rng, rows, targets, exclude):
        if self.probabilities is not None:
            return rng.choice(self.n_items, size=self.config.negatives, p=self.probabilities) + 1
        return rng.integers(1, self.n_items + 1, size=self.config.negatives)

    def __call__(self, states, targets, negatives, model, count=None):
        where = targets > 0
        users, positives = states[where], targets[where]
        positive = (users * model.item_vectors(positives)).sum(-1, keepdim=True)
        sampled = users @ model.item_vectors(negatives).T  # (T, N)
        if self.config.logq and self.probabilities is not None:  # log of each item's expected count
            expected = self.config.negatives * self.probabilities[negatives.cpu().numpy() - 1]
            sampled = sampled - torch.from_numpy(np.log(expected)).to(sampled)
        elif self.config.logq:
            sampled = sampled - math.log(self.config.negatives / self.n_items)
        sampled = sampled.masked_fill(negatives[None, :] == positives[:, None], -math.inf)
        logits = torch.cat([positive, sampled], dim=1)
        summed = (torch.logsumexp(logits, dim=1) - positive[:, 0]).sum()
        return summed / (len(users) if count is None else count)


class InfoNCE(Loss):
    def __call__(self, states, targets, negatives, model, count=None):
        where = targets > 0
        users = states[where]
        if not len(users):
            return states.sum() * 0
        candidates = torch.cat([targets[where][:, None], negatives[where].reshape(len(users), -1)], dim=1)
        items = F.normalize(model.item_vectors(candidates), dim=-1)  # (T, 1 + N, d)
        logits = (F.normalize(users, dim=-1).unsqueeze(1) * items).sum(-1) / self.config.temperature
        summed = (torch.logsumexp(logits, dim=1) - logits[:, 0]).sum()
        return summed / (len(users) if count is None else count)


class _SummedLogSumExp(torch.autograd.Function):
    """sum over users u of log sum over items i of exp(u . i), in blocks of `rows` users.

    The output is one number, so the gradient that reaches it is one number too: the gradients
    (softmax-weighted items for the users, softmax-weighted users for the items) are computed
    in the forward pass while each block's logits are in cache, and the backward pass scales
    them. That is three matrix products per block and no (users x items) matrix kept, against
    four products and several passes over that matrix for autograd with recomputation (measured
    on Beauty: 73 vs 203 ms per SASRec batch, 2 threads)."""

    @staticmethod
    def forward(ctx, users: torch.Tensor, items: torch.Tensor, rows: int) -> torch.Tensor:
        wanted = ctx.needs_input_grad[0] or ctx.needs_input_grad[1]
        total = users.new_zeros(())
        grad_users = torch.empty_like(users) if wanted else None
        grad_items = torch.zeros_like(items) if wanted else None
        for start in range(0, len(users), rows):
            block = users[start : start + rows]
            logits = block @ items.T
            peak = logits.amax(dim=1, keepdim=True)
            weights = logits.sub_(peak).exp_()  # in place: the block's only (rows x items) buffer
            norm = weights.sum(dim=1, keepdim=True)
            total += (peak + norm.log()).sum()
            if wanted:
                weights.div_(norm)  # the softmax
                grad_users[start : start + rows] = weights @ items
                grad_items.addmm_(weights.T, block)
        ctx.save_for_backward(grad_users, grad_items)
        return total

    @staticmethod
    @once_differentiable
    def backward(ctx, grad: torch.Tensor):
        grad_users, grad_items = ctx.saved_tensors
        return grad_users * grad, grad_items * grad, None


class FullSoftmax(Loss):
    shared = True

    def negatives(self, rng, rows, targets, exclude):
        return None

    def __call__(self, states, targets, negatives, model, count=None):
        where = targets > 0
        users, positives = states[where], targets[where]
        positive = (users * model.item_vectors(positives)).sum(-1)
        items = model.item_vectors(torch.arange(1, self.n_items + 1, device=users.device))
        rows = max(1, self.config.ce_block // self.n_items)
        summed = _SummedLogSumExp.apply(users, items, rows) - positive.sum()
        return summed / (len(users) if count is None else count)


# The paper's loss: binary cross-entropy with one sampled negative per target.
PAPER_LOSS = LossConfig(
    loss="bce",
    negatives=1,
    logq=False,
    gbce_t=0.0,
    ce_block=1,
    temperature=1.0,
    hard_negatives=0.0,
    hard_negative_pool=1,
    negatives_from="uniform",
)


def make_loss(
    config: LossConfig, n_items: int, hard_pool: np.ndarray | None = None, counts: np.ndarray | None = None
) -> Loss:
    """The training loss `config` names (`hard_pool`, `counts`: see Loss)."""
    kind = {
        "bce": Loss,
        "gbce": GeneralisedBCE,
        "sampled_softmax": SampledSoftmax,
        "infonce": InfoNCE,
        "ce": FullSoftmax,
    }[config.loss]
    return kind(config, n_items, hard_pool, counts)
