"""Model construction from configuration: a backbone encoder, used plain or inside LLM-ESR."""
from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, Callable

import torch
from torch import nn

from ..schema import deep_merge
from .bert4rec import Bert4RecConfig, Bert4RecEncoder
from .gru4rec import GRU4RecConfig, GRU4RecEncoder
from .llmesr import LLMESR, LLMESRConfig
from .recommender import SequentialRecommender
from .sasrec import SASRecConfig, SASRecEncoder


@dataclass(frozen=True)
class Backbone:
    config: type
    encoder: Callable[[Any], nn.Module]
    # How the training loop builds targets: "next_item" at every position (SASRec), the
    # "last_item" only (GRU4Rec), or "masked" items (Bert4Rec, which needs a mask token).
    objective: str

    @property
    def mask_token(self) -> bool:
        return self.objective == "masked"

    @property
    def predicts_every_position(self) -> bool:
        """Only a next-item-at-every-position objective needs causal masks: a later item is
        an earlier position's target."""
        return self.objective == "next_item"


BACKBONES: dict[str, Backbone] = {
    "sasrec": Backbone(SASRecConfig, SASRecEncoder, objective="next_item"),
    "gru4rec": Backbone(GRU4RecConfig, GRU4RecEncoder, objective="last_item"),
    "bert4rec": Backbone(Bert4RecConfig, Bert4RecEncoder, objective="masked"),
}

# What `model.paper_compat: true` sets: the authors' computation, every rule that makes ours
# differ (README: "Where we differ from the authors' code"). Each is a switch of its own too;
# under paper_compat these values win over the keys' own.
PAPER_COMPAT = {
    "causal": False,
    "padding": "attended",
    "single_item_users": "keep",
    "bert4rec": {"scoring_positions": "shifted"},
    "llmesr": {"teacher": "batch", "student": "second_pass"},
}


def effective_options(model: dict) -> dict:
    """The `model` options as they act: with `paper_compat` the preset's values applied."""
    return deep_merge(model, PAPER_COMPAT) if model.get("paper_compat") else model


def _dataclass_from(cls: type, values: dict) -> Any:
    names = {f.name for f in fields(cls)}
    return cls(**{k: v for k, v in values.items() if k in names})


def backbone_config(backbone: str, model: dict) -> Any:
    """The backbone's config dataclass from the shared model options and its own section."""
    model = effective_options(model)
    return _dataclass_from(BACKBONES[backbone].config, {**model, **model.get(backbone, {})})


def llmesr_config(model: dict) -> LLMESRConfig:
    return _dataclass_from(LLMESRConfig, effective_options(model)["llmesr"])


def build_model(
    backbone: str,
    model: dict,
    n_items: int,
    llm_items: torch.Tensor | None = None,
    pca_items: torch.Tensor | None = None,
) -> nn.Module:
    """`model` is the resolved `model` config section of one variant. LLM-ESR is used when
    `model.llmesr.enabled`; it then needs the item LLM embeddings for the semantic view and
    their PCA vectors to initialise the ID table (unless those parts are switched off).
    With `model.paper_compat` the model computes what the authors' code computes."""
    model = effective_options(model)
    spec = BACKBONES[backbone]
    config = backbone_config(backbone, model)
    common = dict(hidden_size=model["hidden_size"], max_len=model["max_len"], dropout=model["dropout"],
                  mask_token=spec.mask_token, padding=model.get("padding", "masked"))
    if not model["llmesr"]["enabled"]:
        return SequentialRecommender(spec.encoder(config), n_items, **common)
    options = llmesr_config(model)
    if options.semantic_view and llm_items is None:
        raise ValueError("LLM-ESR's semantic view needs the item LLM embeddings")
    if options.uses_pca and pca_items is None:
        raise ValueError("id_init 'pca' needs the PCA vectors of the item embeddings")
    causal_cross_attention = model.get("causal", True) and spec.predicts_every_position
    return LLMESR(options, lambda: spec.encoder(config), n_items, llm_items, pca_items, causal=causal_cross_attention,
                  **common)
