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
One epoch = one pass of steps over the head items; after each, the tail rows are inferred and
the model is validated as every row is (validation NDCG@10, the loop's patience), and the best
epoch's model is kept. CITIES' code trains one epoch against 5% of held-out head items; its
head items are those with more than 5 occurrences, ours the dataset's ts_item cut.
"""
from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
from torch import nn

from ..console import CONSOLE
from ..data import TRAIN_CUT, Sequences
from .recommender import SequentialRecommender

log = logging.getLogger(__name__)


@dataclass
class CITIESConfig:
    window: int = 24  # items on either side of the hidden one
    max_contexts: int = 10  # K per item and step is drawn from 1..max_contexts
    layers: int = 2
    heads: int = 4
    dropout: float = 0.2
    items_per_step: int = 128
    lr: float = 1e-4
    warmup_steps: int = 100


def transformer(d: int, config: CITIESConfig) -> nn.TransformerEncoder:
    layer = nn.TransformerEncoderLayer(d, config.heads, dim_feedforward=2 * d, dropout=config.dropout,
                                       batch_first=True)
    return nn.TransformerEncoder(layer, config.layers, enable_nested_tensor=False)


def sinusoids(length: int, d: int) -> torch.Tensor:
    position = torch.arange(length, dtype=torch.float32)[:, None]
    frequency = torch.exp(torch.arange(0, d, 2, dtype=torch.float32) * (-math.log(10000.0) / d))
    table = torch.zeros(length, d)
    table[:, 0::2] = torch.sin(position * frequency)
    table[:, 1::2] = torch.cos(position * frequency[: d // 2])
    return table


class InferenceFunction(nn.Module):
    """(items, K, 2 window + 1) context ids, hidden item = -1 -> (items, d) inferred vectors."""

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

    def forward(self, contexts: torch.Tensor, table: torch.Tensor, used: torch.Tensor | None = None) -> torch.Tensor:
        """`table`: the frozen item table; `used` (items, K): which contexts are real (None: all)."""
        items, k, width = contexts.shape
        flat = contexts.view(items * k, width)
        hidden = flat < 0
        vectors = torch.where(hidden.unsqueeze(-1), self.mask_vector, table[flat.clamp(min=0)])
        x = self.dropout(vectors * self.position_weight + self.positions)
        padding = flat == 0
        encoded = self.contexts(x, src_key_padding_mask=padding)
        keep = (~padding).unsqueeze(-1).float()
        pooled = (encoded * keep).sum(1) / keep.sum(1).clamp(min=1)
        skip = None if used is None else ~used
        aggregated = self.aggregator(pooled.view(items, k, -1), src_key_padding_mask=skip)
        weight = torch.ones(items, k, 1, device=contexts.device) if used is None else used.unsqueeze(-1).float()
        return self.out((aggregated * weight).sum(1) / weight.sum(1).clamp(min=1))


class CITIES(SequentialRecommender):
    def __init__(self, config: CITIESConfig, encoder: nn.Module, n_items: int, **common):
        super().__init__(encoder, n_items, **common)
        self.config = config
        self.inference = InferenceFunction(config, common["hidden_size"])


def item_contexts(sequences: Sequences, window: int, mask_token: int | None) -> tuple[np.ndarray, np.ndarray]:
    """(item of each occurrence in a training sequence, its context: (occurrences, 2 window +
    1) ids, the item itself -1, or the mask token where the backbone has one). Occurrences with
    no other item in their window are left out."""
    lengths = np.maximum(sequences.lengths - TRAIN_CUT, 0)
    starts = np.repeat(sequences.offsets[:-1], lengths)
    ends = starts + np.repeat(lengths, lengths)
    at = starts + np.arange(lengths.sum()) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    offsets = np.arange(-window, window + 1)
    where = at[:, None] + offsets[None, :]
    inside = (where >= starts[:, None]) & (where < ends[:, None])
    contexts = np.where(inside, sequences.items[np.clip(where, 0, len(sequences.items) - 1)], 0)
    contexts[:, window] = -1 if mask_token is None else mask_token
    keep = (contexts > 0).sum(1) - (mask_token is not None) > 0
    return sequences.items[at][keep], contexts[keep]


def fit(model: CITIES, sequences: Sequences, ts_item: int, options: dict, rng: np.random.Generator,
        device: torch.device, validate: Callable[[CITIES], dict]) -> tuple[dict, dict]:
    """The second stage on `model`, whose backbone holds the trained base weights. Returns
    (best state dict, history) as the training loop does."""
    config = model.config
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
    head_items, tail_items = distinct[head], distinct[~head]
    log.info("CITIES: %d head items train the inference function, %d tail items get inferred rows",
             len(head_items), len(tail_items), extra=CONSOLE)
    optimizer = torch.optim.Adam(model.inference.parameters(), lr=config.lr, eps=1e-6)
    warmup = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: min(1.0, (step + 1) / config.warmup_steps))
    first_of, count_of = dict(zip(distinct, first)), dict(zip(distinct, count))
    tail_first = torch.from_numpy(np.array([first_of[i] for i in tail_items], np.int64))
    tail_count = np.array([count_of[i] for i in tail_items], np.int64)

    def infer_tail() -> None:
        """Tail rows <- the inference function over all their contexts (padded to the most)."""
        if not len(tail_items):
            return
        model.inference.eval()
        with torch.no_grad():
            most = int(tail_count.max())
            slots = torch.arange(most)
            used = slots[None, :] < torch.from_numpy(tail_count)[:, None]
            picked = tail_first[:, None] + torch.where(used, slots[None, :], 0)
            for chunk in torch.arange(len(tail_items)).split(1024):
                vectors = model.inference(contexts[picked[chunk].to(device)], table, used[chunk].to(device))
                model.item_embedding.weight[torch.from_numpy(tail_items[chunk.numpy()]).to(device)] = vectors
        model.inference.train()

    best, best_state, waited, history = -1.0, None, 0, []
    steps = max(1, math.ceil(len(head_items) / config.items_per_step))
    for epoch in range(1, options["max_epochs"] + 1):
        started, total = time.perf_counter(), 0.0
        model.inference.train()
        for _ in range(steps):
            chosen = rng.integers(0, len(head_items), config.items_per_step)
            k = int(rng.integers(1, config.max_contexts + 1))
            picked = (np.array([first_of[i] for i in head_items[chosen]])[:, None]
                      + rng.integers(0, np.array([count_of[i] for i in head_items[chosen]])[:, None], (len(chosen), k)))
            inferred = model.inference(contexts[torch.from_numpy(picked).to(device)], table)
            loss = ((inferred - table[torch.from_numpy(head_items[chosen]).to(device)]) ** 2).mean()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            warmup.step()
            total += loss.item()
        infer_tail()  # part of the method's epoch, like its training steps
        train_seconds = time.perf_counter() - started
        started = time.perf_counter()
        scores = validate(model)
        eval_seconds = time.perf_counter() - started
        selected = scores.get("valid_full_NDCG@10", scores["valid_NDCG@10"]) if options.get("select_on") == "full" \
            else scores["valid_NDCG@10"]
        if selected > best:
            best, waited = selected, 0
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
            best_epoch = epoch
        else:
            waited += 1
        history.append({"epoch": epoch, "loss": total / steps, "inference_loss": total / steps, **scores,
                        "train_seconds": round(train_seconds, 3), "eval_seconds": round(eval_seconds, 3)})
        log.info("epoch %d/%d inference MSE %.5f valid NDCG@10 %.4f HR@10 %.4f | best %.4f @ %d | %.1fs + %.1fs eval",
                 epoch, options["max_epochs"], total / steps, scores["valid_NDCG@10"], scores["valid_HR@10"], best,
                 best_epoch, train_seconds, eval_seconds, extra=CONSOLE)
        if waited >= options["patience"]:
            log.info("early stop: no improvement for %d epochs", waited, extra=CONSOLE)
            break
    return best_state, {"epochs": history, "best_epoch": best_epoch, "best_valid_NDCG10": best,
                        "selected_on": options.get("select_on", "sampled"), "loss": "mse (inference function)",
                        "epochs_run": len(history), "stopped_early": len(history) < options["max_epochs"],
                        "train_seconds": round(sum(e["train_seconds"] for e in history), 3),
                        "mean_epoch_seconds": round(float(np.mean([e["train_seconds"] for e in history])), 3)}
