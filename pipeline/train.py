"""Stage `train`: one model (backbone x variant x seed) trained with Adam on a recommendation
loss (`train.loss`, pipeline/losses.py; default the paper's BCE with one sampled negative per
positive), early-stopped on validation NDCG@10 under the sampled protocol or, with
`train.select_on: full`, under full ranking; the best checkpoint is kept.

What a method adds (LLM-ESR's self-distillation, MELT's transfers, RLMRec's alignment) comes
in as training terms through one interface (pipeline/models/terms.py): the loop calls each
term's `begin_epoch`, `prepare` (per batch) and `loss` (per micro-batch) and adds weight x
loss. A method that is a stage of its own on a trained plain backbone (CITIES) replaces the
loop: `METHODS[...].stage`, given the base checkpoint.

Resumable: the state after every epoch (model, optimizer, random generators, early-stopping
state) is saved atomically to `resume.pt` beside the outputs; a killed run started again
continues from the last finished epoch and ends as an uninterrupted run would (CPU).

Speed without changing what is learned: each random batch runs as up to `length_groups`
micro-batches of users of similar length, each trimmed to its longest sequence, with their
gradients added up before the optimizer step. The losses are divided by the whole batch's
counts, so the step is the one the whole batch would give; only padding is skipped.
`bucket_pool` > 0 (opt-in) goes further and builds the batches themselves from users of
similar length (see data.epoch_batches): faster, but it changes which users share a step, and
on Beauty it learns measurably worse (docs/speed.md).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import polars as pl
import torch

from .console import CONSOLE
from .data import TRAIN_CUT, VALID_INPUT_CUT, Sequences, epoch_batches, log_popularity, training_counts
from .device import resolve_device
from .early_stopping import EarlyStopping, training_history
from .io import exclusive_lock, file_sha256, load_torch, read_json, save_torch, write_json
from .lazy_adam import LazyAdam
from .losses import PAPER_LOSS, Loss, LossConfig, make_loss
from .metrics import evaluated_users, hr_ndcg
from .models import BACKBONES, METHODS, backbone_config, build_model, effective_options, method_config, method_of
from .models.bert4rec import mask_items
from .models.method import ARTIFACTS, Artifacts, StageInputs
from .models.terms import Batch, MicroBatch, TrainingData, TrainingTerm
from .options import typed
from .provenance import code_sha256, machine
from .retrieve import exact_neighbours
from .scoring import full_ranking, representations, sampled_ranks

log = logging.getLogger(__name__)
BCE = Loss(PAPER_LOSS, n_items=0)  # the paper's loss; its negatives are drawn by the caller


@dataclass(frozen=True)
class TrainOptions:
    """The `train` options of one run (the schema documents and fills each)."""

    batch_size: int
    lr: float
    weight_decay: float
    max_epochs: int
    patience: int
    length_groups: int
    bucket_pool: int
    loss: str
    negatives: int
    gbce_t: float
    logq: bool
    ce_block: int
    temperature: float
    hard_negatives: float
    hard_negative_pool: int
    negatives_from: str
    valid_users: int | None
    batches_per_epoch: int | None
    sparse_embeddings: bool | str
    select_on: str
    seed: int
    device: str

    @classmethod
    def of(cls, options: dict) -> "TrainOptions":
        return typed(cls, options)

    @property
    def loss_config(self) -> LossConfig:
        return LossConfig(
            self.loss,
            self.negatives,
            self.logq,
            self.gbce_t,
            self.ce_block,
            self.temperature,
            self.hard_negatives,
            self.hard_negative_pool,
            self.negatives_from,
        )


def length_groups(lengths: np.ndarray, max_groups: int) -> list[np.ndarray]:
    """Positions of a batch's rows split into at most `max_groups` groups of consecutive
    lengths, cut where the padded area (sum over groups of rows x longest) is smallest.
    Never more groups than distinct lengths: a split that saves no padding only adds calls."""
    order = np.argsort(lengths, kind="stable")
    widths = lengths[order].astype(np.float64)
    n, groups = len(widths), min(max_groups, len(np.unique(widths)))
    # area[j]: least padded area of the j shortest rows in k groups; starts[k-2][j]: where the last group starts.
    rows = np.arange(n + 1)
    widest = np.concatenate([[0.0], widths])  # the widest of rows i..j-1 is row j-1
    ordered = rows[:, None] < rows[None, :]  # a group runs from row i (axis 0) to row j (axis 1)
    area, starts = rows * widest, []
    for _ in range(groups - 1):
        candidates = np.where(ordered, area[:, None] + (rows[None, :] - rows[:, None]) * widest[None, :], np.inf)
        starts.append(candidates.argmin(0))
        area = np.where(rows > 0, candidates.min(0), 0.0)
    cuts, end = [n], n
    for best_start in reversed(starts):
        end = int(best_start[end])
        cuts.append(end)
    cuts.append(0)
    cuts = sorted(set(cuts))
    return [order[a:b] for a, b in zip(cuts[:-1], cuts[1:]) if b > a]


def accumulate_gradients(
    model: torch.nn.Module,
    inputs: np.ndarray,
    targets: np.ndarray,
    negatives: np.ndarray | None,
    terms: list[tuple[TrainingTerm, Any]],
    max_groups: int,
    device: torch.device,
    loss: Loss | None = None,
    rows: np.ndarray | None = None,
) -> tuple[float, float, dict[str, float]]:
    """Backpropagates one batch's loss, rec + sum of weight x term (rec: `loss`, default the
    paper's BCE with the given negatives per target; terms: a method's additions with what
    their `prepare` gave for this batch), as up to `max_groups` micro-batches of rows of
    similar length, each trimmed to its longest input (inputs are right-aligned, so the trim
    drops padding only; under `padding: attended` the model computes the padding it is not
    shown). Every part is divided by the whole batch's counts: the gradients add up to the
    whole batch's. `rows`: the batch's users (0-based), for the terms.
    Returns (loss, rec, {term name: unweighted term})."""
    loss = loss or BCE
    rows = np.arange(len(inputs)) if rows is None else rows
    n_targets = int((targets > 0).sum())
    total_loss, total_rec, total_terms = 0.0, 0.0, {term.name: 0.0 for term, _ in terms}
    lengths = (inputs > 0).sum(1)
    shared = None if negatives is None or not loss.shared else torch.from_numpy(negatives).to(device)
    for group in length_groups(lengths, max_groups):
        width = max(int(lengths[group].max()), 1)
        per_row = (inputs, targets) if loss.shared or negatives is None else (inputs, targets, negatives)
        trimmed = [torch.from_numpy(np.ascontiguousarray(a[group, -width:])).to(device) for a in per_row]
        group_inputs, group_targets = trimmed[:2]
        group_negatives = trimmed[2] if len(trimmed) == 3 else shared
        states = model.sequence_states(group_inputs)
        rec = loss(states, group_targets, group_negatives, model, count=n_targets)
        total = rec
        micro = MicroBatch(
            rows[group], torch.from_numpy(group).to(device), group_inputs, group_targets, states, group_negatives
        )
        for term, prepared in terms:
            value = term.loss(model, micro, prepared)
            total = total + term.weight * value
            total_terms[term.name] += value.item()
        total.backward()
        total_loss += total.item()
        total_rec += rec.item()
    return total_loss, total_rec, total_terms


def validation_scores(
    model: torch.nn.Module,
    sequences: Sequences,
    candidates: np.ndarray,
    evaluated: np.ndarray,
    max_len: int,
    device: torch.device,
    full: bool,
) -> dict[str, float]:
    """Validation HR@10 and NDCG@10 of the validation targets under the sampled protocol, and
    with `full` also under full ranking (the training items excluded, the target kept), from
    one pass over the users: every user, or with `evaluated` a sorted array of 0-based rows
    (a sample), those alone. Plain floats: the checkpoint holds no numpy objects."""
    if evaluated.dtype == bool:  # every user is scored, the evaluated ones count
        rows, counted, owners = None, evaluated, None
    else:
        rows, counted, owners = evaluated, slice(None), evaluated
        candidates = candidates[evaluated]
    users, items = representations(model, sequences, VALID_INPUT_CUT, max_len, device, rows)
    hr, ndcg = hr_ndcg(sampled_ranks(users, items, candidates)[counted], 10)
    scores = {"valid_HR@10": float(hr), "valid_NDCG@10": float(ndcg)}
    if full:
        ranks, _ = full_ranking(users, items, sequences, VALID_INPUT_CUT, candidates[:, 0], 10, owners=owners)
        full_hr, full_ndcg = hr_ndcg(ranks[counted], 10)
        scores.update({"valid_full_HR@10": float(full_hr), "valid_full_NDCG@10": float(full_ndcg)})
    return scores


def validation_users(evaluated: np.ndarray, limit: int | None) -> np.ndarray:
    """Who validation scores after each epoch: the `evaluated` mask as it is when it holds at
    most `limit` users (or `limit` is None), else the sorted 0-based rows of a sample of
    `limit` of them, drawn with a fixed seed so that every run of the dataset validates on
    the same users."""
    if limit is None or evaluated.sum() <= limit:
        return evaluated
    log.info("validation: a fixed sample of %d of the %d evaluated users (train.valid_users)", limit, evaluated.sum())
    return np.sort(np.random.default_rng(0).choice(np.flatnonzero(evaluated), size=limit, replace=False))


def training_users(objective: str, sequences: Sequences, keep_single_item_users: bool = False) -> np.ndarray:
    """0-based rows with something to learn from: an (input, target) pair for next/last-item
    training (a training sequence of at least 2 items), any training item for masked training.
    `keep_single_item_users` keeps every user, as the authors do: with one training item a
    user's input is empty (all padding); SASRec then has no target and learns only from the
    distillation term, GRU4Rec predicts that item from the empty input."""
    if keep_single_item_users:
        return np.flatnonzero(sequences.lengths > TRAIN_CUT)
    return np.flatnonzero(sequences.lengths > TRAIN_CUT + (objective != "masked"))


def without_saturated_users(users: np.ndarray, sequences: Sequences, keys: np.ndarray) -> np.ndarray:
    """The training users but those who have trained on every item (no item is left to be
    their negative: eval.saturated: drop evaluates without them, and they train without them).
    `keys`: Sequences.membership_keys of the training items."""
    distinct = np.bincount(keys // (sequences.n_items + 1), minlength=sequences.n_users)
    saturated = distinct[users] >= sequences.n_items
    if saturated.any():
        log.warning(
            "%d user(s) have trained on every item: left out of training (no negative exists)",
            int(saturated.sum()),
            extra=CONSOLE,
        )
    return users[~saturated]


def training_batch(
    objective: str,
    sequences: Sequences,
    rows: np.ndarray,
    last_only: np.ndarray,
    max_len: int,
    rng: np.random.Generator,
    mask_token: int | None,
    mask_prob: float,
    full_width: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """(inputs, targets) for one batch; targets are 0 where there is nothing to predict.
    With `full_width` every row is padded to exactly max_len, as the authors' batches are."""
    if objective == "next_item":
        return sequences.training_pairs(rows, max_len, full_width)
    if objective == "last_item":
        inputs = sequences.padded(rows, TRAIN_CUT + 1, max_len, full_width=full_width)
        targets = np.zeros_like(inputs)
        targets[:, -1] = sequences.targets(rows, TRAIN_CUT + 1)
        return inputs, targets
    tokens = sequences.padded(rows, TRAIN_CUT, max_len, full_width=full_width)
    return mask_items(rng, tokens, last_only, mask_prob, mask_token, sequences.n_items)


class Optimizers:
    """Adam over the parameters and, with `train.sparse_embeddings`, LazyAdam over the
    embedding tables, stepped as one, with one state dict (what resumption saves)."""

    def __init__(self, dense: torch.optim.Adam, tables: LazyAdam | None = None):
        self.dense, self.tables = dense, tables

    def zero_grad(self) -> None:
        self.dense.zero_grad(set_to_none=True)
        if self.tables is not None:
            self.tables.zero_grad()

    def step(self) -> None:
        self.dense.step()
        if self.tables is not None:
            self.tables.step()

    def flush(self) -> None:
        """Every weight as Adam would have it now (LazyAdam defers the rows no batch looked up)."""
        if self.tables is not None:
            self.tables.flush()

    def state_dict(self) -> dict:
        return {"dense": self.dense.state_dict(), "tables": None if self.tables is None else self.tables.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.dense.load_state_dict(state["dense"])
        if self.tables is not None:
            self.tables.load_state_dict(state["tables"])


SPARSE_FROM_ITEMS = 35_000  # LazyAdam measured faster per step at 38,200 items, slower at 3,820


def uses_sparse_embeddings(options: TrainOptions, n_items: int, device: torch.device) -> bool:
    """`train.sparse_embeddings`, with auto resolved: on where it was measured to pay (CPU, a
    large catalogue, a loss that looks up only some items) and allowed (no weight decay)."""
    if options.sparse_embeddings != "auto":
        return options.sparse_embeddings
    return device.type == "cpu" and n_items >= SPARSE_FROM_ITEMS and options.loss != "ce" and options.weight_decay == 0


def make_optimizer(
    model: torch.nn.Module, trainable: list[torch.nn.Parameter], options: TrainOptions, sparse: bool
) -> Optimizers:
    """Adam over the trainable parameters. With `sparse` (`train.sparse_embeddings`) the trainable
    embedding tables (item IDs, positions) are looked up with row-sparse gradients and stepped
    by LazyAdam (pipeline/lazy_adam.py): Adam up to its eps, at the cost of the rows a batch
    looked up, where Adam reads and writes every row of the item table and its moments at
    every step."""
    if not sparse:
        return Optimizers(torch.optim.Adam(trainable, lr=options.lr, weight_decay=options.weight_decay))
    tables = [m for m in model.modules() if isinstance(m, torch.nn.Embedding) and m.weight.requires_grad]
    for table in tables:
        table.sparse = True
    looked_up = {id(table.weight) for table in tables}
    dense = [p for p in trainable if id(p) not in looked_up]
    lazy = LazyAdam([table.weight for table in tables], options.lr)
    for table in tables:
        lazy.watch(table)
    return Optimizers(torch.optim.Adam(dense, lr=options.lr), lazy)


def option_errors(train: dict) -> list[str]:
    """Train options that contradict each other, as messages."""
    if train["sparse_embeddings"] is True and train["weight_decay"] > 0:
        return [
            f"train.sparse_embeddings steps the embedding tables with LazyAdam, which has no weight decay: "
            f"set weight_decay to 0 (not {train['weight_decay']}) or sparse_embeddings to false"
        ]
    return []


@dataclass
class Progress:
    """Everything early stopping and resumption need besides the model and optimizer."""

    stopping: EarlyStopping
    epoch: int = 0
    history: list[dict] = field(default_factory=list)

    def state(self) -> dict:
        return {"epoch": self.epoch, "history": self.history, "stopping": vars(self.stopping)}

    @classmethod
    def from_state(cls, state: dict) -> "Progress":
        return cls(EarlyStopping(**state["stopping"]), state["epoch"], state["history"])


def save_checkpoint(
    path: Path,
    fingerprint: str,
    model: torch.nn.Module,
    optimizer: Optimizers,
    rng: np.random.Generator,
    progress: Progress,
) -> None:
    """The state after a finished epoch, written atomically: a killed run resumes from here."""
    save_torch(
        {
            "fingerprint": fingerprint,
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "torch_rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
            "numpy_rng": rng.bit_generator.state,
            "progress": progress.state(),
        },
        path,
    )


def resume(
    path: Path | None,
    fingerprint: str,
    model: torch.nn.Module,
    optimizer: Optimizers,
    rng: np.random.Generator,
    device: torch.device,
    patience: int,
) -> Progress:
    """Progress from a checkpoint of the same run (same fingerprint), or a fresh start."""
    if path is None or not path.is_file():
        return Progress(EarlyStopping(patience))
    # On the CPU: the random generators' states must be CPU tensors; the model and optimizer
    # copy theirs to the parameters' device as they load.
    state = load_torch(path, "training state (resume.pt)", map_location="cpu")
    if state.get("fingerprint") != fingerprint:
        log.warning(
            "not resuming from %s: it belongs to another configuration, other inputs or other code; "
            "starting afresh (it is overwritten after the first epoch)",
            path,
        )
        return Progress(EarlyStopping(patience))
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    torch.set_rng_state(state["torch_rng"])
    if state["cuda_rng"] is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda_rng"])
    rng.bit_generator.state = state["numpy_rng"]
    progress = Progress.from_state(state["progress"])
    log.info("resuming after epoch %d from %s", progress.epoch, path)
    return progress


@dataclass
class Loop:
    """What every epoch of the training loop uses, fixed for the run."""

    model: torch.nn.Module
    objective: str
    sequences: Sequences
    users: np.ndarray  # the training users (0-based rows)
    copies: int  # how often each user appears per epoch (masked training: twice)
    terms: list[TrainingTerm]
    loss: Loss
    optimizer: Optimizers
    trainable: list[torch.nn.Parameter]  # what the optimizer steps
    options: TrainOptions
    max_len: int
    mask_prob: float
    full_width: bool  # every batch padded to max_len (padding: attended)
    device: torch.device
    exclude: np.ndarray  # the training items (Sequences.membership_keys), never drawn as negatives


def finite_gradients(parameters: list[torch.nn.Parameter]) -> bool:
    """Whether every gradient is finite (a row-sparse one: its values)."""
    grads = [p.grad.coalesce().values() if p.grad.is_sparse else p.grad for p in parameters if p.grad is not None]
    return bool(torch.isfinite(torch.nn.utils.get_total_norm(grads)))


def train_epoch(loop: Loop, epoch: int, rng: np.random.Generator) -> tuple[np.ndarray, int, int, float]:
    """One pass over the training users (or its first `batches_per_epoch` batches). Returns
    (summed [loss, rec, *terms] of the steps taken, steps taken, steps skipped for a non-finite
    gradient, seconds of the terms' once-per-epoch work, e.g. LLM-ESR's teacher cache)."""
    model, options = loop.model, loop.options
    model.train()
    totals = np.zeros(2 + len(loop.terms))
    batches = skipped = 0
    started = time.perf_counter()
    for term in loop.terms:
        term.begin_epoch(model, epoch)
    start_seconds = time.perf_counter() - started
    lengths = np.tile(loop.sequences.lengths[loop.users], loop.copies)
    for picked in epoch_batches(rng, lengths, options.batch_size, options.bucket_pool)[: options.batches_per_epoch]:
        rows, last_only = loop.users[picked % len(loop.users)], picked >= len(loop.users)
        inputs, targets = training_batch(
            loop.objective,
            loop.sequences,
            rows,
            last_only,
            loop.max_len,
            rng,
            model.mask_token,
            loop.mask_prob,
            loop.full_width,
        )
        negatives = loop.loss.negatives(rng, rows, targets, loop.exclude)
        batch = Batch(rows, inputs, targets, negatives)
        prepared = [(term, term.prepare(model, batch)) for term in loop.terms]
        loop.optimizer.zero_grad()
        step_loss, rec, parts = accumulate_gradients(
            model, inputs, targets, negatives, prepared, options.length_groups, loop.device, loop.loss, rows
        )
        if not finite_gradients(loop.trainable):
            # One non-finite gradient turns every weight into NaN for good (seen in GRU4Rec's
            # backward on batches of 200-item sequences): skip that step, count it, go on.
            skipped += 1
            continue
        loop.optimizer.step()
        totals += (step_loss, rec, *parts.values())
        batches += 1
    loop.optimizer.flush()
    return totals, batches, skipped, start_seconds


def load_base(model: torch.nn.Module, base: dict | None, backbone: str, title: str) -> None:
    """The trained plain backbone's weights into the model of a method that starts from them
    (CITIES, MELT): every weight of the plain model is loaded; the method's own keep theirs."""
    if base is None:
        raise ValueError(f"{title} starts from the trained plain backbone: pass its checkpoint")
    _, unexpected = model.load_state_dict(base, strict=False)
    if unexpected:
        raise ValueError(f"the base checkpoint does not fit this {backbone}: {unexpected} are not in its model")


def nearest_items(llm_items: np.ndarray | None, pool: int) -> np.ndarray:
    """(n_items + 1, pool) each item's most cosine-similar other items by LLM embedding, as
    1-based ids (row 0, padding, points at item 1: it is never a target)."""
    if llm_items is None:
        raise ValueError("train.hard_negatives needs the item LLM embeddings (--llm-items)")
    if not 0 < pool < len(llm_items):
        raise ValueError(f"train.hard_negative_pool {pool} must be below the number of items, {len(llm_items)}")
    return np.concatenate([np.ones((1, pool), np.int64), exact_neighbours(llm_items, pool) + 1])


def build_loop(
    backbone: str,
    model: torch.nn.Module,
    model_options: dict,
    options: TrainOptions,
    sequences: Sequences,
    terms: list[TrainingTerm],
    device: torch.device,
    llm_items: np.ndarray | None = None,
) -> Loop:
    """The optimizer, the loss, the training users and the batches' shape, fixed for the run.
    `llm_items` gives the hard negatives' pools (`train.hard_negatives`)."""
    trainable = [p for p in model.parameters() if p.requires_grad]
    sparse = uses_sparse_embeddings(options, sequences.n_items, device)
    if sparse and options.sparse_embeddings == "auto":
        log.info(
            "%d items on CPU: embedding tables stepped by LazyAdam (train.sparse_embeddings: auto)", sequences.n_items
        )
    optimizer = make_optimizer(model, trainable, options, sparse)
    objective = BACKBONES[backbone].objective
    trained = sequences.membership_keys(TRAIN_CUT)
    users = training_users(objective, sequences, model_options["single_item_users"] == "keep")
    loop = Loop(
        model,
        objective,
        sequences,
        without_saturated_users(users, sequences, trained),
        # Masked training sees every user twice per epoch: randomly masked, and last item masked.
        2 if objective == "masked" else 1,
        terms,
        make_loss(
            options.loss_config,
            sequences.n_items,
            nearest_items(llm_items, options.hard_negative_pool) if options.hard_negatives > 0 else None,
            training_counts(sequences),
        ),
        optimizer,
        trainable,
        options,
        model_options["max_len"],
        getattr(backbone_config(backbone, model_options), "mask_prob", 0.0),
        model_options["padding"] == "attended",
        device,
        trained,
    )
    log.info(
        "%s: %d parameters (%d trainable), %d training users, %d batches per epoch",
        backbone,
        sum(p.numel() for p in model.parameters()) + sum(b.numel() for b in model.buffers()),
        sum(p.numel() for p in trainable),
        len(loop.users),
        -(-loop.copies * len(loop.users) // options.batch_size),
    )
    return loop


def epoch_record(
    epoch: int,
    means: np.ndarray,
    terms: list[TrainingTerm],
    scores: dict,
    skipped: int,
    train_seconds: float,
    eval_seconds: float,
    steps: int,
    start_seconds: float,
) -> dict:
    """An epoch's row of the history: mean losses ([loss, rec, *terms]), validation scores, times
    (train_seconds includes epoch_start_seconds, the terms' once-per-epoch work)."""
    mean_loss, rec, *parts = means.tolist()
    return {
        "epoch": epoch,
        "loss": mean_loss,
        "rec_loss": rec,
        **{f"{term.name}_loss": value for term, value in zip(terms, parts)},
        **scores,
        "skipped_steps": skipped,
        "steps": steps,
        "train_seconds": round(train_seconds, 3),
        "epoch_start_seconds": round(start_seconds, 3),
        "eval_seconds": round(eval_seconds, 3),
    }


def log_epoch(record: dict, terms: list[TrainingTerm], options: TrainOptions, stopping: EarlyStopping) -> None:
    """One line per epoch on the console: losses, validation, the best so far, seconds."""
    named = "".join(f", {term.name} {record[f'{term.name}_loss']:.4f}" for term in terms)
    full = f" full NDCG@10 {record['valid_full_NDCG@10']:.4f}" if options.select_on == "full" else ""
    log.info(
        "epoch %d/%d loss %.4f (rec %.4f%s) valid NDCG@10 %.4f HR@10 %.4f%s | best %.4f @ %d | %.1fs + %.1fs eval",
        record["epoch"],
        options.max_epochs,
        record["loss"],
        record["rec_loss"],
        named,
        record["valid_NDCG@10"],
        record["valid_HR@10"],
        full,
        stopping.best,
        stopping.best_epoch,
        record["train_seconds"],
        record["eval_seconds"],
        extra=CONSOLE,
    )


def train(
    backbone: str,
    model_options: dict,
    options: TrainOptions,
    sequences: Sequences,
    valid_candidates: np.ndarray,
    device: torch.device,
    artifacts: Artifacts = Artifacts(),
    checkpoint: Path | None = None,
    fingerprint: str = "",
) -> tuple[dict, dict]:
    """Returns (best state dict, history). `artifacts`: what the method (`model.method`) reads
    besides the interactions. With `checkpoint`, the state after every epoch is saved there
    and a run with the same `fingerprint` continues from it."""
    model_options = effective_options(model_options)
    torch.manual_seed(options.seed)
    rng = np.random.default_rng(options.seed)
    as_tensor = lambda a: None if a is None else torch.from_numpy(a)
    model = build_model(
        backbone,
        model_options,
        sequences.n_items,
        as_tensor(artifacts.llm_items),
        as_tensor(artifacts.pca_items),
        artifacts.stats,
        torch.from_numpy(log_popularity(sequences)),
    ).to(device)
    name = method_of(model_options)
    method, config = METHODS[name], method_config(name, model_options)
    max_len = model_options["max_len"]
    keep_single = model_options["single_item_users"] == "keep"
    log.info("method: %s", method.title)
    evaluated = validation_users(evaluated_users(valid_candidates), options.valid_users)
    validate: Callable[[torch.nn.Module], dict] = lambda m: validation_scores(
        m, sequences, valid_candidates, evaluated, max_len, device, options.select_on == "full"
    )
    data = TrainingData(
        sequences,
        max_len,
        device,
        options.max_epochs,
        keep_single,
        artifacts.neighbours,
        artifacts.llm_items,
        artifacts.llm_users,
        artifacts.stats,
    )
    if "base" in method.needs(config):  # a method that reads the trained plain backbone starts from it
        load_base(model, artifacts.base, backbone, method.title)
    if method.stage is not None:
        return method.stage(model, config, StageInputs(data, rng, options.max_epochs, validate))
    terms = method.terms(config, data)
    loop = build_loop(backbone, model, model_options, options, sequences, terms, device, artifacts.llm_items)
    progress = resume(checkpoint, fingerprint, model, loop.optimizer, rng, device, options.patience)
    stopping = progress.stopping
    while progress.epoch < options.max_epochs and (progress.epoch == 0 or not stopping.stopped):
        epoch = progress.epoch + 1
        started = time.perf_counter()
        totals, batches, skipped, start_seconds = train_epoch(loop, epoch, rng)
        train_seconds = time.perf_counter() - started
        if skipped:
            log.warning(
                "epoch %d: skipped %d of %d steps with a non-finite loss or gradient", epoch, skipped, batches + skipped
            )
        if batches == 0:
            raise RuntimeError(
                f"training diverged: every step of epoch {epoch} had a non-finite loss or gradient; lower train.lr"
            )
        started = time.perf_counter()
        scores = validate(model)
        eval_seconds = time.perf_counter() - started
        record = epoch_record(
            epoch, totals / batches, terms, scores, skipped, train_seconds, eval_seconds, batches, start_seconds
        )
        progress.history.append(record)
        progress.epoch = epoch
        stopping.update(epoch, scores["valid_full_NDCG@10" if options.select_on == "full" else "valid_NDCG@10"], model)
        log_epoch(record, terms, options, stopping)
        if checkpoint is not None:
            save_checkpoint(checkpoint, fingerprint, model, loop.optimizer, rng, progress)
        if stopping.stopped:
            log.info("early stop: no improvement for %d epochs", stopping.waited, extra=CONSOLE)
    history = training_history(
        progress.history, stopping.best_epoch, stopping.best, options.select_on, options.loss, options.max_epochs
    )
    return stopping.best_state, history


def fingerprint_of(*parts: object, files: list[Path]) -> str:
    """What a checkpoint must match to be resumed: the run's options, its input files, the
    code, and the thread count (another count sums floats in another order)."""
    described = json.dumps(
        [parts, [file_sha256(path) for path in files], code_sha256(), torch.get_num_threads()], sort_keys=True
    )
    return hashlib.sha256(described.encode()).hexdigest()


# How each artifact a method may read (models.method.ARTIFACTS) is loaded from its file.
LOADERS: dict[str, Callable[[Path, torch.device], Any]] = {
    "llm_items": lambda path, device: np.load(path),
    "pca_items": lambda path, device: np.load(path),
    "neighbours": lambda path, device: np.load(path),
    "llm_users": lambda path, device: np.load(path),
    "stats": lambda path, device: read_json(path)["thresholds"],
    "base": lambda path, device: load_torch(path, "base model checkpoint (model.pt)", map_location=device)[
        "state_dict"
    ],
}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="pipeline train", description=__doc__)
    parser.add_argument("--interactions", required=True, type=Path)
    parser.add_argument("--item-table", required=True, type=Path)
    parser.add_argument("--candidates", required=True, type=Path)
    parser.add_argument("--backbone", required=True)
    parser.add_argument("--model", required=True, help="the variant's resolved `model` config, as JSON")
    parser.add_argument("--train", required=True, help="the `train` config with this run's seed, as JSON")
    for name in ARTIFACTS:
        parser.add_argument(
            f"--{name.replace('_', '-')}", type=Path, help=f"the artifact {name}, for methods that read it"
        )
    parser.add_argument("--out-checkpoint", required=True, type=Path)
    parser.add_argument("--out-history", required=True, type=Path)
    parser.add_argument("--threads", required=True, type=int)
    args = parser.parse_args(argv)

    torch.set_num_threads(args.threads)
    model_options, options = json.loads(args.model), TrainOptions.of(json.loads(args.train))
    device = resolve_device(options.device)
    n_items = pl.read_parquet(args.item_table).height
    sequences = Sequences.from_interactions(pl.read_parquet(args.interactions), n_items)
    paths = {name: getattr(args, name) for name in ARTIFACTS if getattr(args, name) is not None}
    artifacts = Artifacts(**{name: LOADERS[name](path, device) for name, path in paths.items()})
    inputs = [args.interactions, args.item_table, args.candidates, *paths.values()]
    checkpoint = args.out_checkpoint.with_name("resume.pt")
    # One trainer per run folder: a second one (say, a rerun while an orphaned trainer of a
    # killed Snakemake still runs) would fight over resume.pt.
    with exclusive_lock(args.out_checkpoint.with_name("train.lock"), "a training of this run"):
        best_state, history = train(
            args.backbone,
            model_options,
            options,
            sequences,
            np.load(args.candidates)["valid"],
            device,
            artifacts,
            checkpoint=checkpoint,
            fingerprint=fingerprint_of(args.backbone, model_options, json.loads(args.train), files=inputs),
        )
    save_torch(
        {
            "backbone": args.backbone,
            "model": model_options,
            "n_items": n_items,
            "llm_dim": 0 if artifacts.llm_items is None else int(artifacts.llm_items.shape[1]),
            "seed": options.seed,
            "best_epoch": history["best_epoch"],
            "state_dict": {k: v.cpu() for k, v in best_state.items()},
        },
        args.out_checkpoint,
    )
    history.update(
        # What produced this run, for the evaluation to check against what it is asked to report.
        options={"model": model_options, "train": json.loads(args.train)},
        device=str(device),
        threads=args.threads,
        machine=machine(),
        inputs_sha256={f"{path.parent.name}/{path.name}": file_sha256(path) for path in inputs},
    )
    write_json(history, args.out_history)
    checkpoint.unlink(missing_ok=True)  # finished: a later rerun starts afresh
