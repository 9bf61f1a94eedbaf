"""Model construction from configuration: a backbone encoder, used plain or inside LLM-ESR."""
from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, Callable

import torch
from torch import nn

from .llmesr import LLMESR, LLMESRConfig
from .recommender import SequentialRecommender
from .sasrec import SASRecConfig, SASRecEncoder


@dataclass(frozen=True)
class Backbone:
    config: type
    encoder: Callable[[Any], nn.Module]
    objective: str  # how the training loop builds targets: "next_item" at every position


BACKBONES: dict[str, Backbone] = {
    "sasrec": Backbone(SASRecConfig, SASRecEncoder, objective="next_item"),
}


def _dataclass_from(cls: type, values: dict) -> Any:
    names = {f.name for f in fields(cls)}
    return cls(**{k: v for k, v in values.items() if k in names})


def backbone_config(backbone: str, model: dict) -> Any:
    """The backbone's config dataclass from the shared model options and its own section."""
    return _dataclass_from(BACKBONES[backbone].config, {**model, **model.get(backbone, {})})


def llmesr_config(model: dict) -> LLMESRConfig:
    return _dataclass_from(LLMESRConfig, model["llmesr"])


def build_model(
    backbone: str,
    model: dict,
    n_items: int,
    llm_items: torch.Tensor | None = None,
    pca_items: torch.Tensor | None = None,
) -> nn.Module:
    """`model` is the resolved `model` config section of one variant. LLM-ESR is used when
    `model.llmesr.enabled`; it then needs the item LLM embeddings (and PCA vectors unless the
    ID table is randomly initialised)."""
    spec = BACKBONES[backbone]
    encoder = spec.encoder(backbone_config(backbone, model))
    common = dict(hidden_size=model["hidden_size"], max_len=model["max_len"], dropout=model["dropout"])
    if not model["llmesr"]["enabled"]:
        return SequentialRecommender(encoder, n_items, **common)
    if llm_items is None:
        raise ValueError("LLM-ESR needs the item LLM embeddings")
    return LLMESR(llmesr_config(model), encoder, llm_items, pca_items, causal=model["causal"], **common)
