"""A trained run's checkpoint (model.pt) loaded for scoring: the model rebuilt from the options it
records, and the data it scores. Shared by the stages that score users (evaluate, recommend)."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import torch

from .config import with_defaults
from .data import Sequences
from .device import resolve_device
from .io import load_torch
from .models import build_model


def load_run(checkpoint: Path, device: torch.device) -> tuple[torch.nn.Module, dict]:
    state = load_torch(checkpoint, "model checkpoint (model.pt)", map_location=device)
    # A checkpoint from before an option existed acts as that option's default (a new option's
    # default keeps the behaviour it was added to).
    state["model"] = with_defaults({"model": state["model"]})["model"]
    n_items, llm_dim, hidden = state["n_items"], state["llm_dim"], state["model"]["hidden_size"]
    # Tables from data are placeholders here: their values come with the state dict.
    placeholders = dict(
        llm_items=torch.zeros(n_items, max(llm_dim, 1)),
        pca_items=torch.zeros(n_items, hidden),
        log_popularity=torch.zeros(n_items + 1),
    )
    model = build_model(state["backbone"], state["model"], n_items, **placeholders)
    model.load_state_dict(state["state_dict"])
    return model.to(device), state


def load_for_scoring(checkpoint: Path, interactions: Path, items: Path, device: str, threads: int):
    """(model, checkpoint state, item table, sequences, device) for the scoring commands."""
    torch.set_num_threads(threads)
    resolved = resolve_device(device)
    model, state = load_run(checkpoint, resolved)
    item_table = pl.read_parquet(items)
    sequences = Sequences.from_interactions(pl.read_parquet(interactions), item_table.height)
    return model, state, item_table, sequences, resolved
