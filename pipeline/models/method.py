"""What a backbone and a method declare to the registry (pipeline/models/__init__.py).

A method is one module of this package that defines `METHOD = Method(...)`: the registry
finds it there, and everything else derives from that one declaration: the choices of
`model.method` and its schema section `model.<name>` (from `config`, an `option`
dataclass), the model the training job builds, the artifacts its rule reads, the training
terms it adds to the loop, and its role and title in the tables."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, Callable, Protocol

import numpy as np
import torch
from torch import nn

from .terms import TrainingData, TrainingTerm

# Where a variant's rows go: Table 1's competitors, Table 2's ablations, the ranking table's
# training variants, and the authors' computation beside Table 1.
ROLES = ("competitor", "ablation", "training", "authors")


class Encoder(Protocol):
    """A backbone: (embedded sequence (B, L, d), valid (B, L)) -> hidden states (B, L, d)."""

    uses_positions: bool  # takes a positional embedding (transformers) or not (GRU4Rec)
    full_width: int | None  # the width every input must have (GRU4Rec under padding "attended")
    shifted_scoring_positions: bool  # the authors' Bert4Rec quirk

    def __call__(self, x: torch.Tensor, valid: torch.Tensor) -> torch.Tensor: ...


class Recommender(Protocol):
    """What training, scoring and evaluation use of any model a method builds."""

    n_items: int
    mask_token: int | None  # the mask item id (Bert4Rec), else None
    encoder: Encoder

    def sequence_states(self, seq: torch.Tensor, position_shift: torch.Tensor | None = None) -> torch.Tensor: ...

    def item_vectors(self, items: torch.Tensor) -> torch.Tensor: ...


def divides(model: dict, key: str, heads: int) -> list[str]:
    """A problem when `heads` attention heads (the option `key`) do not divide hidden_size."""
    width = model["hidden_size"]
    if width % heads == 0:
        return []
    valid = ", ".join(str(n) for n in range(1, min(width, 16) + 1) if width % n == 0)
    return [
        f"{key} is {heads}, which does not divide model.hidden_size {width}: use one of {valid} (or another "
        "hidden_size)"
    ]


@dataclass(frozen=True)
class Backbone:
    config: type
    encoder: Callable[[Any], Encoder]
    # How the training loop builds targets: "next_item" at every position (SASRec), the
    # "last_item" only (GRU4Rec), or "masked" items (Bert4Rec, which needs a mask token).
    objective: str
    # (model options) -> problems between its options that a schema cannot state.
    check: Callable[[dict], list[str]] = lambda model: []

    @property
    def mask_token(self) -> bool:
        return self.objective == "masked"

    @property
    def predicts_every_position(self) -> bool:
        """Only a next-item-at-every-position objective needs causal masks: a later item is
        an earlier position's target."""
        return self.objective == "next_item"


@dataclass(frozen=True)
class Artifacts:
    """What a method may read besides the interactions (`Method.needs` names them; the train
    rule and CLI take each by its field name)."""

    llm_items: np.ndarray | None = None  # (n_items, D) item prompt embeddings, row i = item i + 1
    pca_items: np.ndarray | None = None  # (n_items, hidden_size) their PCA
    neighbours: np.ndarray | None = None  # (n_users, k) 1-based similar users, most similar first
    llm_users: np.ndarray | None = None  # (n_users, D) user prompt embeddings
    stats: dict | None = None  # the dataset's head/tail cuts {"ts_user", "ts_item"}
    base: dict | None = None  # the plain backbone's trained state dict (same dataset and seed)


ARTIFACTS = tuple(field.name for field in fields(Artifacts))


@dataclass(frozen=True)
class BuildInputs:
    """What a method's `build` gets: the backbone, its typed config, the model options as they
    act, and the tables from data (placeholders when a checkpoint's state dict follows)."""

    backbone: Backbone
    encoder_config: Any
    model: dict
    n_items: int
    common: dict  # hidden_size, max_len, dropout, mask_token, padding: every recommender's arguments
    llm_items: torch.Tensor | None = None
    pca_items: torch.Tensor | None = None
    thresholds: dict | None = None
    log_popularity: torch.Tensor | None = None  # (n_items + 1,) log(1 + training count), index 0 unused

    def encoder(self) -> Encoder:
        return self.backbone.encoder(self.encoder_config)


@dataclass(frozen=True)
class StageInputs:
    """What a method trained in a stage of its own (CITIES) gets instead of the loop."""

    data: TrainingData
    rng: np.random.Generator
    max_epochs: int
    validate: Callable[[nn.Module], dict]  # the validation scores of a model


@dataclass(frozen=True)
class Method:
    name: str  # the value of `model.method`, and of its config section `model.<name>`
    title: str  # its row in the tables
    build: Callable[[Any, BuildInputs], Recommender]  # (typed config or None, inputs) -> the model
    config: type | None = None  # an `option` dataclass: typed config and schema section at once
    description: str = ""  # of its schema section
    needs: Callable[[Any], set[str]] = lambda config: set()  # (typed config) -> ARTIFACTS it reads
    terms: Callable[[Any, TrainingData], list[TrainingTerm]] = lambda config, data: []
    # A stage of its own on the trained plain backbone instead of the loop: (model holding the
    # base weights, config, inputs) -> (state dict, history).
    stage: Callable[[nn.Module, Any, StageInputs], tuple[dict, dict]] | None = None
    role: str | None = "competitor"  # the role of a variant that switches `model.method` to it
    plain_when: Callable[[Any], bool] | None = None  # the options under which it is the plain backbone
    group_analysis: bool = False  # a curve of the paper's Fig. 4 (group analysis plot)
    # (typed config, model options) -> problems between its options and the model's that a
    # schema cannot state (checked at start-up).
    check: Callable[[Any, dict], list[str]] = lambda config, model: []
    order: int = 50  # position among Table 1's rows (base 0, LLM-ESR 90)

    def __post_init__(self):
        if self.role is not None and self.role not in ROLES:
            raise ValueError(f"method {self.name}: role {self.role!r} is not one of {ROLES}")
