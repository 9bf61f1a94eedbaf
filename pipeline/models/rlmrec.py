"""RLMRec (Ren et al., WWW 2024, "Representation Learning with Large Language Models for
Recommendation") ported from graph CF to sequential backbones, read from the authors' code
(HKUDS/RLMRec). The recommender is the plain backbone; RLMRec adds a term that aligns its
representations with semantic ones. The semantic vectors here are the pipeline's item and
user prompt embeddings (RLMRec embeds LLM-written profiles with ada-002).

- `contrastive` (RLMRec-Con, the default): one MLP shared by users and items, D -> (D + d) / 2
  -> LeakyReLU -> d, maps each semantic vector into the recommender's space; a cosine InfoNCE
  with temperature `temperature` pulls each representation toward its own mapped vector and
  away from the others in the batch. Anchors: the batch's users (their representation of the
  training input; negatives: the batch's other users, where RLMRec takes all users), the
  target items and the sampled negative items (ID vectors; negatives: the batch's other
  target, resp. negative, items). Term = weight * (L_user + L_target + L_negative), each a
  mean over its anchors.
- `generative` (RLMRec-Gen): a `mask_ratio` share of the batch's distinct input items is
  replaced in the input by a learned mask vector (zero at first) for the whole forward, the
  recommendation loss included, as RLMRec masks nodes before propagation; an MLP d -> (D + d)
  / 2 -> LeakyReLU -> D maps the state at each masked position back into the semantic space,
  and an InfoNCE (the micro-batch's other masked items as negatives) scores it against the
  masked item's semantic vector.
At inference neither MLP is used: the model scores as the plain backbone does.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..options import option
from .method import BuildInputs, Method
from .recommender import SequentialRecommender
from .terms import Batch, MicroBatch, TrainingData, TrainingTerm, user_states

OBJECTIVES = ("contrastive", "generative")


@dataclass(frozen=True)
class RLMRecConfig:
    objective: Literal["contrastive", "generative"] = option(
        "contrastive", "contrastive = RLMRec-Con, generative = RLMRec-Gen."
    )
    weight: float = option(
        0.01, "Weight of the term (RLMRec-Con's kd_weight 0.01; RLMRec-Gen's recon_weight is 0.1).", minimum=0
    )
    temperature: float = option(
        0.2, "Temperature of the InfoNCE (kd_temperature / re_temperature).", exclusiveMinimum=0
    )
    mask_ratio: float = option(
        0.1, "generative: share of the batch's distinct input items masked.", exclusiveMinimum=0, exclusiveMaximum=1
    )

    def __post_init__(self):
        if self.objective not in OBJECTIVES:
            raise ValueError(f"rlmrec.objective must be one of {OBJECTIVES}, not {self.objective!r}")


def mlp(widths: list[int]) -> nn.Sequential:
    first, second = nn.Linear(widths[0], widths[1]), nn.Linear(widths[1], widths[2])
    for layer in (first, second):
        nn.init.xavier_uniform_(layer.weight)
    return nn.Sequential(first, nn.LeakyReLU(), second)


class RLMRec(SequentialRecommender):
    def __init__(self, config: RLMRecConfig, encoder: nn.Module, n_items: int, semantic_dim: int, **common):
        super().__init__(encoder, n_items, **common)
        self.config = config
        d, middle = common["hidden_size"], (semantic_dim + common["hidden_size"]) // 2
        if config.objective == "contrastive":
            self.semantic_to_model = mlp([semantic_dim, middle, d])
        else:
            self.model_to_semantic = mlp([d, middle, semantic_dim])
            self.mask_vector = nn.Parameter(torch.zeros(d))
        self.masked = None  # (n_items + 2,) bool: the ids masked in this batch's inputs (generative)

    def embed_items(self, seq: torch.Tensor) -> torch.Tensor:
        vectors = super().embed_items(seq)
        if self.masked is None or not self.training:
            return vectors
        return torch.where(self.masked[seq].unsqueeze(-1), self.mask_vector, vectors)


def info_nce(
    anchors: torch.Tensor, candidates: torch.Tensor, positive: torch.Tensor, temperature: float
) -> torch.Tensor:
    """Sum over anchors of -log softmax(cos(anchor, candidates) / t)[positive]."""
    logits = F.normalize(anchors, dim=-1) @ F.normalize(candidates, dim=-1).T / temperature
    return F.cross_entropy(logits, positive, reduction="sum")


class Alignment(TrainingTerm):
    """RLMRec-Con's term."""

    name = "align"

    def __init__(self, config: RLMRecConfig, data: TrainingData):
        self.weight, self.temperature, self.max_len = config.weight, config.temperature, data.max_len
        zero = np.zeros((1, data.llm_items.shape[1]), np.float32)
        # Row i = item id i (0: padding, never an anchor).
        self.items = torch.from_numpy(np.concatenate([zero, data.llm_items.astype(np.float32)])).to(data.device)
        self.users = torch.from_numpy(data.llm_users.astype(np.float32)).to(data.device)

    def prepare(self, model: RLMRec, batch: Batch) -> dict:
        """The batch's candidate sets (distinct ids) and anchor counts."""
        prepared = {"rows": torch.from_numpy(batch.rows).to(self.users.device), "n_users": len(batch.rows)}
        for kind, ids in (("target", batch.targets), ("negative", batch.negatives)):
            ids = np.zeros(0, np.int64) if ids is None else ids[ids > 0]
            prepared[kind] = torch.from_numpy(np.unique(ids)).to(self.users.device)
            prepared[f"n_{kind}"] = len(ids)
        return prepared

    def loss(self, model: RLMRec, micro: MicroBatch, prepared: dict) -> torch.Tensor:
        project = model.semantic_to_model
        total = (
            info_nce(
                user_states(model, micro, self.max_len),
                project(self.users[prepared["rows"]]),
                micro.where,
                self.temperature,
            )
            / prepared["n_users"]
        )
        per_row = micro.negatives is not None and micro.negatives.shape[0] == micro.inputs.shape[0]
        for kind, ids in (("target", micro.targets), ("negative", micro.negatives if per_row else None)):
            if ids is None or not prepared[f"n_{kind}"]:
                continue
            ids = ids[ids > 0]
            candidates = prepared[kind]
            positive = torch.searchsorted(candidates, ids)
            total = (
                total
                + info_nce(model.item_vectors(ids), project(self.items[candidates]), positive, self.temperature)
                / prepared[f"n_{kind}"]
            )
        return total


class Reconstruction(TrainingTerm):
    """RLMRec-Gen's term; `prepare` also chooses the batch's masked items."""

    name = "reconstruct"

    def __init__(self, config: RLMRecConfig, data: TrainingData):
        self.weight, self.temperature, self.ratio = config.weight, config.temperature, config.mask_ratio
        zero = np.zeros((1, data.llm_items.shape[1]), np.float32)
        self.items = torch.from_numpy(np.concatenate([zero, data.llm_items.astype(np.float32), zero])).to(data.device)
        self.n_ids = data.sequences.n_items + 2

    def prepare(self, model: RLMRec, batch: Batch) -> int:
        distinct = torch.unique(torch.from_numpy(batch.inputs[batch.inputs > 0]))
        if model.mask_token is not None:
            distinct = distinct[distinct != model.mask_token]
        chosen = distinct[torch.randperm(len(distinct))[: int(self.ratio * len(distinct))]]
        model.masked = torch.zeros(self.n_ids, dtype=torch.bool, device=self.items.device)
        model.masked[chosen.to(self.items.device)] = True
        return int(model.masked.cpu().numpy()[batch.inputs].sum())

    def loss(self, model: RLMRec, micro: MicroBatch, n_masked: int) -> torch.Tensor:
        at = model.masked[micro.inputs]
        if not at.any():
            return micro.states.new_zeros(())
        ids = micro.inputs[at]
        candidates = torch.unique(ids)
        return (
            info_nce(
                model.model_to_semantic(micro.states[at]),
                self.items[candidates],
                torch.searchsorted(candidates, ids),
                self.temperature,
            )
            / n_masked
        )


def rlmrec_terms(config: RLMRecConfig, data: TrainingData) -> list[TrainingTerm]:
    return [Alignment(config, data) if config.objective == "contrastive" else Reconstruction(config, data)]


def build(config: RLMRecConfig, inputs: BuildInputs) -> RLMRec:
    if inputs.llm_items is None:
        raise ValueError("RLMRec needs the item LLM embeddings")
    return RLMRec(config, inputs.encoder(), inputs.n_items, inputs.llm_items.shape[1], **inputs.common)


METHOD = Method(
    "rlmrec",
    "RLMRec",
    build,
    RLMRecConfig,
    "RLMRec-Con's defaults (HKUDS/RLMRec, Amazon/Yelp).",
    needs=lambda config: {"llm_items", "llm_users"},
    terms=rlmrec_terms,
    order=30,
)
