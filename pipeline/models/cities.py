"""CITIES (Jang et al., ICDM 2020, "Contextual Inference of Tail-item Embeddings for Sequential
Recommendation") over any backbone, read from the authors' code (swonj90/CITIES).

A second stage on a trained plain backbone (the `base` run of the same dataset and seed),
whose weights stay frozen:
1. Contexts: each occurrence of an item in a training sequence gives one, the `window` items
   on either side with the item itself hidden (a mask vector in its place; Bert4Rec's own
   mask row where the backbone has one), padded with 0 at the sequence ends.
2. An inference function learns to regress a HEAD item's ID vector (MSE) from K of its
   contexts (K drawn from 1..max_contexts per step, contexts drawn with replacement):
   each context is embedded with the backbone's frozen item table, scaled by a learned weight
   per position, given sinusoidal positions and run through a small Transformer (post-norm,
   `heads` heads, `layers` layers), mean-pooled over its items; a second Transformer of the
   same shape aggregates the K context vectors, which are averaged and mapped by a linear layer.
   As in CITIES' code, the inference function reads the item table, not the backbone's
   sequence encoder, so it is the same for every backbone.
3. Every TAIL item with a context gets the inferred vector (from all its contexts) as its row
   of the item table, which our backbones use as input and output table alike; every other
   weight of the backbone is unchanged.
One epoch = one pass of steps over the head items; as in CITIES' code, 5% of the head items
are held out and their MSE early-stops the training (patience 10), and the tail rows are then
inferred once with the best epoch's function. CITIES' head items are those with more than 5
occurrences, ours the dataset's ts_item cut.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from ..console import CONSOLE
from ..data import TRAIN_CUT, Sequences
from ..early_stopping import EarlyStopping, training_history
from ..options import option
from .method import BuildInputs, Method, StageInputs, divides
from .recommender import SequentialRecommender

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CITIESConfig:
    window: int = option(24, "Items on either side of the hidden item in a context.", minimum=1)
    max_contexts: int = option(10, "K contexts per item and step, drawn from 1..max_contexts.", minimum=1)
    layers: int = option(2, "Transformer layers of the context encoder and of the aggregator.", minimum=1)
    heads: int = option(4, "Attention heads (hidden_size must divide by it).", minimum=1)
    dropout: float = option(0.2, "", minimum=0, exclusiveMaximum=1)
    items_per_step: int = option(128, "", minimum=1)
    lr: float = option(0.0001, "", exclusiveMinimum=0)
    warmup_steps: int = option(100, "", minimum=1)
    held_out: float = option(
        0.05,
        "Share of head items held out; their MSE early-stops the inference function's training.",
        exclusiveMinimum=0,
        exclusiveMaximum=1,
    )
    patience: int = option(10, "", minimum=1)
    max_epochs: int = option(100, "Passes of steps over the training head items (at most train.max_epochs).", minimum=1)


def transformer(d: int, config: CITIESConfig) -> nn.TransformerEncoder:
    layer = nn.TransformerEncoderLayer(d, config.heads, dim_feedforward=2 * d, dropout=config.dropout, batch_first=True)
    return nn.TransformerEncoder(layer, config.layers, enable_nested_tensor=False)


def sinusoids(length: int, d: int) -> torch.Tensor:
    position = torch.arange(length, dtype=torch.float32)[:, None]
    frequency = torch.exp(torch.arange(0, d, 2, dtype=torch.float32) * (-math.log(10000.0) / d))
    table = torch.zeros(length, d)
    table[:, 0::2] = torch.sin(position * frequency)
    table[:, 1::2] = torch.cos(position * frequency[: d // 2])
    return table


class InferenceFunction(nn.Module):
    """Context ids (2 window + 1 columns, hidden item = -1, padding 0) -> context vectors ->
    an item's inferred vector from K of them."""

    def __init__(self, config: CITIESConfig, d: int):
        super().__init__()
        if d % config.heads:
            raise ValueError(f"hidden_size {d} is not divisible by cities.heads {config.heads}")
        width = 2 * config.window + 1
        self.position_weight = nn.Parameter(torch.ones(width, 1))
        self.register_buffer("positions", sinusoids(width, d) / math.sqrt(d))
        self.dropout = nn.Dropout(config.dropout)
        self.contexts = transformer(d, config)
        self.aggregator = transformer(d, config)
        self.out = nn.Linear(d, d)
        self.mask_vector = nn.Parameter(torch.zeros(d))

    def encode(self, contexts: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
        """(N, width) -> (N, d): each context through the context Transformer (padding keys
        masked), mean over its items. Columns that are padding in every row are cut first:
        the same result (they are masked and left out of the mean) at a fraction of the cost."""
        used = (contexts != 0).any(dim=0).nonzero().flatten()
        columns = slice(int(used[0]), int(used[-1]) + 1)
        contexts = contexts[:, columns]
        vectors = torch.where((contexts < 0).unsqueeze(-1), self.mask_vector, table[contexts.clamp(min=0)])
        x = self.dropout(vectors * self.position_weight[columns] + self.positions[columns])
        padding = contexts == 0
        encoded = self.contexts(x, src_key_padding_mask=padding)
        keep = (~padding).unsqueeze(-1).float()
        return (encoded * keep).sum(1) / keep.sum(1)

    def aggregate(self, vectors: torch.Tensor, used: torch.Tensor | None = None) -> torch.Tensor:
        """(items, K, d) context vectors, `used` (items, K) which are real (None: all) -> (items, d)."""
        skip = None if used is None else ~used
        aggregated = self.aggregator(vectors, src_key_padding_mask=skip)
        weight = torch.ones_like(aggregated[..., :1]) if used is None else used.unsqueeze(-1).float()
        return self.out((aggregated * weight).sum(1) / weight.sum(1).clamp(min=1))

    def forward(self, contexts: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
        """(items, K, width) context ids -> (items, d)."""
        items, k, width = contexts.shape
        return self.aggregate(self.encode(contexts.view(items * k, width), table).view(items, k, -1))


class CITIES(SequentialRecommender):
    def __init__(self, config: CITIESConfig, encoder: nn.Module, n_items: int, **common):
        super().__init__(encoder, n_items, **common)
        self.config = config
        self.inference = InferenceFunction(config, common["hidden_size"])


def item_contexts(sequences: Sequences, window: int, mask_token: int | None) -> tuple[np.ndarray, np.ndarray]:
    """(item of each occurrence in a training sequence, its context: (occurrences, 2 window +
    1) ids, the item itself -1, or the mask token where the backbone has one). Occurrences with
    no other item in their window are left out."""
    rows, positions = sequences.occurrences(TRAIN_CUT)
    starts, ends = sequences.offsets[rows], sequences.offsets[rows + 1] - TRAIN_CUT
    at = starts + positions
    offsets = np.arange(-window, window + 1)
    where = at[:, None] + offsets[None, :]
    inside = (where >= starts[:, None]) & (where < ends[:, None])
    contexts = np.where(inside, sequences.items[np.clip(where, 0, len(sequences.items) - 1)], 0)
    contexts[:, window] = -1 if mask_token is None else mask_token
    keep = (contexts > 0).sum(1) - (mask_token is not None) > 0
    return sequences.items[at][keep], contexts[keep]


def fit(model: CITIES, config: CITIESConfig, inputs: StageInputs) -> tuple[dict, dict]:
    """The second stage on `model`, whose backbone holds the trained base weights: the inference
    function trained on head items, early-stopped on the MSE of held-out head items, then the
    tail rows inferred once. Returns (state dict, history) as the training loop does."""
    sequences, device, rng = inputs.data.sequences, inputs.data.device, inputs.rng
    ts_item = inputs.data.thresholds["ts_item"]
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    for parameter in model.inference.parameters():
        parameter.requires_grad_(True)
    table = model.item_embedding.weight.detach().clone()  # the trained rows: contexts and targets
    popularity = np.bincount(sequences.items, minlength=sequences.n_items + 1)
    items, contexts = item_contexts(sequences, config.window, model.mask_token)
    order = np.argsort(items, kind="stable")
    items, contexts = items[order], torch.from_numpy(contexts[order]).to(device)
    distinct, first, count = np.unique(items, return_index=True, return_counts=True)
    head = popularity[distinct] >= ts_item
    held_out = np.zeros(len(distinct), bool)
    held_out[rng.choice(np.flatnonzero(head), max(1, round(config.held_out * head.sum())), replace=False)] = True
    train_rows, held_rows, tail_rows = np.flatnonzero(head & ~held_out), np.flatnonzero(held_out), np.flatnonzero(~head)
    log.info(
        "CITIES: %d head items train the inference function (%d held out), %d tail items get inferred rows",
        len(train_rows),
        len(held_rows),
        len(tail_rows),
        extra=CONSOLE,
    )
    optimizer = torch.optim.Adam(model.inference.parameters(), lr=config.lr, eps=1e-6)
    warmup = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: min(1.0, (step + 1) / config.warmup_steps))
    held_rng = np.random.default_rng(0)  # the same held-out contexts every epoch
    held_picks = first[held_rows][:, None] + held_rng.integers(
        0, count[held_rows][:, None], (len(held_rows), config.max_contexts)
    )

    def mse(rows: np.ndarray, picks: np.ndarray) -> torch.Tensor:
        inferred = model.inference(contexts[torch.from_numpy(picks).to(device)], table)
        return ((inferred - table[torch.from_numpy(distinct[rows]).to(device)]) ** 2).mean()

    stopping, history = EarlyStopping(config.patience, higher_is_better=False), []
    steps = max(1, math.ceil(len(train_rows) / config.items_per_step))
    max_epochs = min(config.max_epochs, inputs.max_epochs)  # a run's epoch budget binds this stage too
    for epoch in range(1, max_epochs + 1):
        started, total = time.perf_counter(), 0.0
        model.inference.train()
        for _ in range(steps):
            chosen = train_rows[rng.integers(0, len(train_rows), config.items_per_step)]
            k = int(rng.integers(1, config.max_contexts + 1))
            loss = mse(chosen, first[chosen][:, None] + rng.integers(0, count[chosen][:, None], (len(chosen), k)))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            warmup.step()
            total += loss.item()
        model.inference.eval()
        with torch.no_grad():
            held = mse(held_rows, held_picks).item()
        stopping.update(epoch, held, model.inference)
        history.append(
            {
                "epoch": epoch,
                "loss": total / steps,
                "inference_loss": total / steps,
                "held_out_mse": held,
                "train_seconds": round(time.perf_counter() - started, 3),
                "eval_seconds": 0.0,
            }
        )
        log.info(
            "epoch %d/%d inference MSE %.5f, held-out head items %.5f | best %.5f @ %d | %.1fs",
            epoch,
            max_epochs,
            total / steps,
            held,
            stopping.best,
            stopping.best_epoch,
            history[-1]["train_seconds"],
            extra=CONSOLE,
        )
        if stopping.stopped:
            log.info("early stop: no improvement for %d epochs", stopping.waited, extra=CONSOLE)
            break

    started = time.perf_counter()
    model.inference.load_state_dict(stopping.best_state)
    model.inference.eval()
    with torch.no_grad():  # every context of the tail items once, shortest first, then per item
        tail_contexts = torch.from_numpy(
            np.concatenate([np.arange(f, f + c) for f, c in zip(first[tail_rows], count[tail_rows])])
        )
        extent = (contexts[tail_contexts] != 0).sum(1).cpu().numpy()
        vectors = torch.empty(len(tail_contexts), table.shape[1], device=device)
        for chunk in np.array_split(np.argsort(extent, kind="stable"), max(1, len(extent) // 2048)):
            vectors[torch.from_numpy(chunk).to(device)] = model.inference.encode(
                contexts[tail_contexts[chunk].to(device)], table
            )
        most = int(count[tail_rows].max(initial=1))
        slots = torch.arange(most)
        used = slots[None, :] < torch.from_numpy(count[tail_rows])[:, None]
        starts = torch.from_numpy(np.cumsum(count[tail_rows]) - count[tail_rows])
        picked = starts[:, None] + torch.where(used, slots[None, :], 0)
        for chunk in torch.arange(len(tail_rows)).split(1024):
            inferred = model.inference.aggregate(vectors[picked[chunk].to(device)], used[chunk].to(device))
            model.item_embedding.weight[torch.from_numpy(distinct[tail_rows[chunk.numpy()]]).to(device)] = inferred
    history[-1]["train_seconds"] = round(history[-1]["train_seconds"] + time.perf_counter() - started, 3)
    started = time.perf_counter()
    scores = inputs.validate(model)
    history[-1].update(scores, eval_seconds=round(time.perf_counter() - started, 3))
    log.info(
        "tail rows inferred with the epoch-%d function: valid NDCG@10 %.4f HR@10 %.4f",
        stopping.best_epoch,
        scores["valid_NDCG@10"],
        scores["valid_HR@10"],
        extra=CONSOLE,
    )
    return (
        {k: v.detach().clone() for k, v in model.state_dict().items()},
        training_history(
            history,
            stopping.best_epoch,
            scores["valid_NDCG@10"],
            "held-out head items' MSE (CITIES)",
            "mse (inference function)",
            max_epochs,
        ),
    )


def build(config: CITIESConfig, inputs: BuildInputs) -> CITIES:
    return CITIES(config, inputs.encoder(), inputs.n_items, **inputs.common)


METHOD = Method(
    "cities",
    "CITIES",
    build,
    CITIESConfig,
    "CITIES' inference function (swonj90/CITIES defaults).",
    needs=lambda config: {"stats", "base"},
    stage=fit,
    order=10,
    check=lambda config, model: divides(model, "cities.heads", config.heads),
)
