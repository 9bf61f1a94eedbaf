"""Early stopping and the training history, shared by the training loop and the methods
trained in a stage of their own (CITIES), so that every run reports the same record."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch


@dataclass
class EarlyStopping:
    """The best epoch so far by a validation score, and whether `patience` epochs passed
    without improving it. `higher_is_better=False` for a loss. Plain fields only: the
    training loop saves it in its resume checkpoint."""

    patience: int
    higher_is_better: bool = True
    best: float = field(default=None)  # type: ignore[assignment]
    best_epoch: int = 0
    waited: int = 0
    best_state: dict | None = None

    def __post_init__(self):
        if self.best is None:
            self.best = -math.inf if self.higher_is_better else math.inf

    def update(self, epoch: int, score: float, model: torch.nn.Module) -> bool:
        """Counts `epoch` with its `score`; keeps a copy of the model's state when it is the
        best so far (strictly better). Returns whether it was."""
        improved = score > self.best if self.higher_is_better else score < self.best
        if improved:
            self.best, self.best_epoch, self.waited = score, epoch, 0
            self.best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        else:
            self.waited += 1
        return improved

    @property
    def stopped(self) -> bool:
        return self.waited >= self.patience


def training_history(
    epochs: list[dict], best_epoch: int, best_valid_ndcg: float, selected_on: str, loss: str, max_epochs: int
) -> dict:
    """The history a run writes (history.json): its epochs and a summary of them."""
    seconds = [epoch["train_seconds"] for epoch in epochs]
    return {
        "epochs": epochs,
        "best_epoch": best_epoch,
        "best_valid_NDCG10": best_valid_ndcg,
        "selected_on": selected_on,
        "loss": loss,
        "epochs_run": len(epochs),
        "stopped_early": len(epochs) < max_epochs,
        "train_seconds": round(sum(seconds), 3),
        "mean_epoch_seconds": round(float(np.mean(seconds)), 3),
    }
