"""Building blocks shared by the plain recommender and the LLM-ESR wrapper."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def attention_mask(valid: torch.Tensor, causal: bool) -> torch.Tensor:
    """(B, 1, L, L) boolean mask, True where query i may attend to key j: real keys only, and
    with `causal` only keys at or before i. Every position may attend to itself, so rows of
    padding queries are never empty (their outputs are zeroed or ignored downstream).
    Masking padding keys makes results independent of how much padding a batch carries,
    which is what lets batches be trimmed to their longest sequence."""
    length = valid.shape[1]
    allowed = valid[:, None, :].expand(-1, length, -1)
    if causal:
        allowed = allowed & torch.ones(length, length, dtype=torch.bool, device=valid.device).tril()
    allowed = allowed | torch.eye(length, dtype=torch.bool, device=valid.device)
    return allowed.unsqueeze(1)


def positions_of(valid: torch.Tensor) -> torch.Tensor:
    """1 for the oldest item shown, counting up; 0 on padding (the authors' convention)."""
    return valid.long().cumsum(dim=1) * valid


class InputEmbedding(nn.Module):
    """Item vectors -> encoder input. Transformers (SASRec, Bert4Rec): scale by sqrt(d), add a
    learned positional embedding, dropout. Recurrent encoders (GRU4Rec) take the vectors as they are."""

    def __init__(self, hidden_size: int, max_len: int, dropout: float, positional: bool):
        super().__init__()
        self.positional = positional
        self.scale = math.sqrt(hidden_size)
        if positional:
            self.position = nn.Embedding(max_len + 1, hidden_size, padding_idx=0)
            self.dropout = Dropout(dropout)

    def forward(self, vectors: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        if not self.positional:
            return vectors
        return self.dropout(vectors * self.scale + self.position(positions_of(valid)))


def init_weights(module: nn.Module) -> None:
    """Xavier-normal for every matrix (as the authors' models do), biases and norms as built.
    Padding rows of embeddings are zeroed."""
    for parameter in module.parameters():
        if parameter.dim() >= 2:
            nn.init.xavier_normal_(parameter)
    for sub in module.modules():
        if isinstance(sub, nn.Embedding) and sub.padding_idx is not None:
            with torch.no_grad():
                sub.weight[sub.padding_idx].zero_()


class Dropout(nn.Module):
    """Inverted dropout like nn.Dropout, with the mask drawn by `uniform_` instead of
    `bernoulli_`, which is several times faster on CPU (dropout dominated CPU training time)."""

    def __init__(self, p: float):
        super().__init__()
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0:
            return x
        if self.p == 1:
            return torch.zeros_like(x)
        return x * torch.empty_like(x).uniform_().ge_(self.p).mul_(1 / (1 - self.p))


def attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, allowed: torch.Tensor, dropout: Dropout | None = None) -> torch.Tensor:
    """Scaled dot-product attention over (B, H, L, d_head) with a boolean mask. Without
    dropout this is the fused kernel; with dropout on the attention weights it is spelled out,
    because the fused kernel's dropout path is slower on CPU than this."""
    if dropout is None or not dropout.training or dropout.p == 0:
        return F.scaled_dot_product_attention(q, k, v, attn_mask=allowed)
    weights = (q @ k.transpose(-1, -2)) * q.shape[-1] ** -0.5
    weights = weights.masked_fill(~allowed, float("-inf")).softmax(dim=-1)
    return dropout(weights) @ v
