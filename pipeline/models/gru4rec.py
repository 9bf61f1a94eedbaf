"""GRU4Rec (Hidasi et al., ICLR 2016) as a sequence encoder, as in the LLM-ESR authors' code:
one bias-free GRU layer of size d over the item vectors (no positional embedding, no scaling,
no dropout), trained on the last position of each user's sequence only.

`padding="masked"` (default): padding inputs are zeroed; with a bias-free GRU a zero input
keeps the zero state, so left padding is exactly neutral and batches can be trimmed to their
longest sequence. `padding="attended"` is the authors' computation: the GRU runs over every
padding step up to `max_len` with whatever the padding positions carry (ID row 0, and under
LLM-ESR the adapter's bias and the cross-attention outputs of padding queries), so the state
before the first item is not zero. Inputs are then widened to `max_len` (`full_width`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .layers import PADDING_MODES


@dataclass(frozen=True)
class GRU4RecConfig:
    hidden_size: int
    num_layers: int
    padding: str  # "masked" or "attended" (the authors')
    max_len: int

    def __post_init__(self):
        if self.padding not in PADDING_MODES:
            raise ValueError(f"padding must be one of {PADDING_MODES}, not {self.padding!r}")


class GRU4RecEncoder(nn.Module):
    """(embedded sequence (B, L, d), valid (B, L)) -> hidden states (B, L, d)."""

    uses_positions = False
    shifted_scoring_positions = False

    def __init__(self, config: GRU4RecConfig):
        super().__init__()
        self.config = config
        # The width inputs must have: every padding step is computed under "attended".
        self.full_width = config.max_len if config.padding == "attended" else None
        self.gru = nn.GRU(
            config.hidden_size, config.hidden_size, num_layers=config.num_layers, bias=False, batch_first=True
        )

    def forward(self, x: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        if self.config.padding == "masked":
            x = x * valid.unsqueeze(-1).to(x.dtype)
        states, _ = self.gru(x)
        return states
