"""The registry: backbones, and the methods found in this package's modules.

A backbone is a sequence encoder (sasrec.py, gru4rec.py, bert4rec.py). A method wraps a
backbone: the plain recommender (`base`), LLM-ESR, or one of the methods LLM-ESR's Table 1
compares against. Each method is one module here that defines `METHOD = Method(...)`
(models/method.py); `METHODS` collects them by importing every module of the package, so a
new method is one new file. `model.method` names the method; `llmesr` with `llmesr.enabled:
false` is the plain backbone."""

from __future__ import annotations

import importlib
import pkgutil
from typing import Any

import torch
from torch import nn

from ..options import typed
from ..schema import deep_merge, leaves, variant_parts
from .bert4rec import Bert4RecConfig, Bert4RecEncoder
from .gru4rec import GRU4RecConfig, GRU4RecEncoder
from .method import Backbone, BuildInputs, Method, divides
from .sasrec import SASRecConfig, SASRecEncoder

BACKBONES: dict[str, Backbone] = {
    "sasrec": Backbone(
        SASRecConfig, SASRecEncoder, "next_item", lambda m: divides(m, "sasrec.num_heads", m["sasrec"]["num_heads"])
    ),
    "gru4rec": Backbone(GRU4RecConfig, GRU4RecEncoder, "last_item"),
    "bert4rec": Backbone(
        Bert4RecConfig,
        Bert4RecEncoder,
        "masked",
        lambda m: divides(m, "bert4rec.num_heads", m["bert4rec"]["num_heads"]),
    ),
}

# What `model.paper_compat: true` sets: the authors' computation, every rule that makes ours
# differ (docs/method.md: "Where we differ from the authors' code"). Each is a switch of its
# own too; under paper_compat these values win over the keys' own.
PAPER_COMPAT = {
    "causal": False,
    "padding": "attended",
    "single_item_users": "keep",
    "bert4rec": {"scoring_positions": "shifted"},
    "llmesr": {"teacher": "batch", "student": "second_pass"},
}


def _discover() -> dict[str, Method]:
    """Every `METHOD` declared by a module of this package, by name (base first, then by order)."""
    found = {}
    for module in pkgutil.iter_modules(__path__):
        method = getattr(importlib.import_module(f"{__name__}.{module.name}"), "METHOD", None)
        if isinstance(method, Method):
            if method.name in found or method.name in BACKBONES:
                raise ValueError(f"two methods (or a method and a backbone) are named {method.name!r}")
            found[method.name] = method
    return dict(sorted(found.items(), key=lambda item: (item[1].order, item[0])))


METHODS: dict[str, Method] = _discover()


def effective_options(model: dict) -> dict:
    """The `model` options as they act: with `paper_compat` the preset's values applied."""
    return deep_merge(model, PAPER_COMPAT) if model["paper_compat"] else model


def backbone_config(backbone: str, model: dict) -> Any:
    """The backbone's typed config from the shared model options and its own section."""
    model = effective_options(model)
    return typed(BACKBONES[backbone].config, {**model, **model[backbone]})


def method_config(method: str, model: dict) -> Any:
    """The method's typed config from its section `model.<method>` (None for a method without one)."""
    config = METHODS[method].config
    return None if config is None else typed(config, effective_options(model)[method])


def method_of(model: dict) -> str:
    """`model.method`, or `base` where that method's options make it the plain backbone."""
    method = METHODS[model["method"]]
    plain = method.plain_when is not None and method.plain_when(method_config(method.name, model))
    return "base" if plain else method.name


def method_inputs(model: dict) -> set[str]:
    """The artifacts (models.method.ARTIFACTS) a model's training reads besides the interactions."""
    name = method_of(model)
    return METHODS[name].needs(method_config(name, model))


def option_errors(model: dict, backbones: list[str]) -> list[str]:
    """What would stop a model of these options from being built on these backbones, found
    before any job runs: constraints between keys (heads that must divide hidden_size)."""
    model = effective_options(model)
    name = method_of(model)
    problems = [problem for backbone in backbones for problem in BACKBONES[backbone].check(model)]
    return problems + METHODS[name].check(method_config(name, model), model)


def build_model(
    backbone: str,
    model: dict,
    n_items: int,
    llm_items: torch.Tensor | None = None,
    pca_items: torch.Tensor | None = None,
    thresholds: dict | None = None,
    log_popularity: torch.Tensor | None = None,
) -> nn.Module:
    """`model` is the resolved `model` config section of one variant; `model.method` picks
    what wraps the backbone, built by that method's `build` from the tables it needs: the
    item LLM embeddings, their PCA vectors, the head/tail `thresholds`, the items' training
    `log_popularity` (a loaded model takes their values from its state dict). With
    `model.paper_compat` the authors' computation."""
    model = effective_options(model)
    spec = BACKBONES[backbone]
    common = dict(
        hidden_size=model["hidden_size"],
        max_len=model["max_len"],
        dropout=model["dropout"],
        mask_token=spec.mask_token,
        padding=model["padding"],
    )
    inputs = BuildInputs(
        spec, backbone_config(backbone, model), model, n_items, common, llm_items, pca_items, thresholds, log_popularity
    )
    name = method_of(model)
    return METHODS[name].build(method_config(name, model), inputs)


def variant_role(override: dict, model: dict) -> str:
    """Where a variant's rows go (method.ROLES): its declared `role`; else the role of the method
    it switches `model.method` to; `training` when it has a `train` key; `authors` when it sets
    `paper_compat` or one of the authors' switches to theirs; else an `ablation`. `model` is
    the configured `model` section the variant overrides."""
    if "role" in override:
        return override["role"]
    changes, train = variant_parts(override)
    switched = changes.get("method", model["method"])
    if switched != model["method"] and METHODS[switched].role is not None:
        return METHODS[switched].role
    if train:
        return "training"
    changed = leaves(changes)
    authors = any(key in changed and changed[key] == value for key, value in leaves(PAPER_COMPAT).items())
    return "authors" if changes.get("paper_compat") or authors else "ablation"


def variant_title(name: str, override: dict, model: dict) -> str:
    """A variant's name in tables and plots: its `title`, else the title of the method it
    switches `model.method` to, else its name."""
    switched = variant_parts(override)[0].get("method", model["method"])
    return override.get("title") or (METHODS[switched].title if switched != model["method"] else name)
