"""Model construction from configuration: a backbone encoder, used plain, inside LLM-ESR, or
with one of the methods LLM-ESR's Table 1 compares against (`model.method`).

Every method is a row of `METHODS`: how its model is built, which training terms it adds to
the loop (models/terms.py), whether it is a stage of its own on a trained base model
(CITIES), and which pipeline artifacts it reads."""
from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, Callable

import torch
from torch import nn

from ..schema import deep_merge
from . import cities
from .bert4rec import Bert4RecConfig, Bert4RecEncoder
from .cities import CITIES, CITIESConfig
from .gru4rec import GRU4RecConfig, GRU4RecEncoder
from .llminit import initialise_from_llm
from .llmesr import LLMESR, LLMESRConfig, self_distillation
from .melt import MELT, MELTConfig, melt_terms
from .recommender import SequentialRecommender
from .rlmrec import RLMRec, RLMRecConfig, rlmrec_terms
from .sasrec import SASRecConfig, SASRecEncoder
from .terms import TrainingData, TrainingTerm


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


def method_of(model: dict) -> str:
    """`model.method`, where `llmesr` with `llmesr.enabled: false` is the plain backbone."""
    method = model.get("method", "llmesr")
    return "base" if method == "llmesr" and not model["llmesr"]["enabled"] else method


def method_config(method: str, model: dict) -> Any:
    """The method's typed config from its section of `model` (None for base and LLMInit)."""
    configs = {"llmesr": LLMESRConfig, "melt": MELTConfig, "rlmrec": RLMRecConfig, "cities": CITIESConfig}
    if method not in configs:
        return None
    return _dataclass_from(configs[method], effective_options(model).get(method, {}))


def _llmesr_needs(model: dict) -> set[str]:
    options = llmesr_config(model)
    return ({"llm_items"} if options.semantic_view else set()) | ({"pca_items"} if options.uses_pca else set()) \
        | ({"neighbours"} if options.alpha > 0 else set())


@dataclass(frozen=True)
class Method:
    label: str
    # (model options) -> the artifacts training reads besides the interactions: llm_items,
    # pca_items, neighbours, llm_users (prompt embeddings), stats (head/tail cuts), base (the
    # plain backbone's checkpoint of the same dataset and seed).
    needs: Callable[[dict], set[str]]
    # (method config, data) -> what the method adds to the training loop.
    terms: Callable[[Any, TrainingData], list[TrainingTerm]] = lambda config, data: []
    # A stage of its own on the trained base model instead of the loop (CITIES).
    stage: Callable | None = None


# The config sections of the methods (`model.<name>`); a run's options keep only its own.
METHOD_SECTIONS = ("llmesr", "cities", "melt", "rlmrec")

METHODS: dict[str, Method] = {
    "base": Method("base", lambda model: set()),
    "llmesr": Method("LLM-ESR", _llmesr_needs,
                     lambda config, data: [] if config.alpha == 0 else [self_distillation(
                         config, data.sequences, data.neighbours, data.max_len, data.device,
                         data.keep_single_item_users)]),
    "llminit": Method("LLMInit", lambda model: {"pca_items"}),
    "cities": Method("CITIES", lambda model: {"stats", "base"}, stage=cities.fit),
    "melt": Method("MELT", lambda model: {"stats"}, melt_terms),
    "rlmrec": Method("RLMRec", lambda model: {"llm_items", "llm_users"}, rlmrec_terms),
}


def method_inputs(model: dict) -> set[str]:
    return METHODS[method_of(model)].needs(effective_options(model))


def build_model(
    backbone: str,
    model: dict,
    n_items: int,
    llm_items: torch.Tensor | None = None,
    pca_items: torch.Tensor | None = None,
    thresholds: dict | None = None,
) -> nn.Module:
    """`model` is the resolved `model` config section of one variant; `model.method` picks
    what wraps the backbone. LLM-ESR needs the item LLM embeddings for the semantic view and
    their PCA vectors to initialise the ID table (unless those parts are switched off);
    LLMInit the PCA vectors; RLMRec the embeddings' width; MELT the head/tail `thresholds`
    (a loaded model takes them from its state dict). With `model.paper_compat` LLM-ESR
    computes what the authors' code computes."""
    model = effective_options(model)
    spec = BACKBONES[backbone]
    config = backbone_config(backbone, model)
    method = method_of(model)
    common = dict(hidden_size=model["hidden_size"], max_len=model["max_len"], dropout=model["dropout"],
                  mask_token=spec.mask_token, padding=model.get("padding", "masked"))
    if method == "base":
        return SequentialRecommender(spec.encoder(config), n_items, **common)
    if method == "llminit":
        if pca_items is None:
            raise ValueError("LLMInit needs the PCA vectors of the item embeddings")
        return initialise_from_llm(SequentialRecommender(spec.encoder(config), n_items, **common), pca_items)
    if method == "melt":
        ts_user = (thresholds or {}).get("ts_user", 0)
        return MELT(method_config(method, model), spec.encoder(config), n_items, ts_user, **common)
    if method == "rlmrec":
        if llm_items is None:
            raise ValueError("RLMRec needs the item LLM embeddings")
        return RLMRec(method_config(method, model), spec.encoder(config), n_items, llm_items.shape[1], **common)
    if method == "cities":
        return CITIES(method_config(method, model), spec.encoder(config), n_items, **common)
    options = llmesr_config(model)
    if options.semantic_view and llm_items is None:
        raise ValueError("LLM-ESR's semantic view needs the item LLM embeddings")
    if options.uses_pca and pca_items is None:
        raise ValueError("id_init 'pca' needs the PCA vectors of the item embeddings")
    causal_cross_attention = model.get("causal", True) and spec.predicts_every_position
    return LLMESR(options, lambda: spec.encoder(config), n_items, llm_items, pca_items, causal=causal_cross_attention,
                  **common)
