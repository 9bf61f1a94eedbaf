"""GRU4Rec (Hidasi et al., ICLR 2016) as a sequence encoder, as in the LLM-ESR authors' code:
one bias-free GRU layer of size d over the item vectors (no positional embedding, no scaling,
no dropout), trained on the last position of each user's sequence only.

Padding inputs are zeroed: with a bias-free GRU a zero input keeps the zero state, so left
padding is exactly neutral and batches can be trimmed to their longest sequence.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn


@dataclass
class GRU4RecConfig:
    hidden_size: int = 64
    num_layers: int = 1


class GRU4RecEncoder(nn.Module):
    """(embedded sequence (B, L, d), valid (B, L)) -> hidden states (B, L, d)."""

    uses_positions = False

    def __init__(self, config: GRU4RecConfig):
        super().__init__()
        self.config = config
        self.gru = nn.GRU(config.hidden_size, config.hidden_size, num_layers=config.num_layers, bias=False, batch_first=True)

    def forward(self, x: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        states, _ = self.gru(x * valid.unsqueeze(-1).to(x.dtype))
        return states
