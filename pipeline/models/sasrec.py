"""SASRec (Kang & McAuley, ICDM 2018) as a sequence encoder, shaped like the widely used
SASRec.pytorch port that LLM-ESR builds on: pre-LayerNorm blocks whose attention residual adds
the layer-normed input, a position-wise feed-forward with its own residual, padding zeroed
after every block, and a final LayerNorm.

`causal=True` (default) lets each position attend only to itself and earlier items, as a
next-item model must. `causal=False` reproduces the LLM-ESR authors' code, which passes no
causal mask (every position also sees later items; they kept it because it scored higher).

`padding="masked"` (default) hides padding keys, so a user's representation does not depend
on how much padding its batch carries. `padding="attended"` computes what the authors' code
computes on sequences padded to `max_len`: their attention has no key mask, and a padding
position's input is zero, so its key and value are the projections' biases and it takes
softmax weight. The max_len - n padding keys of a row are all alike, so they are computed as
one key whose weight counts max_len - n times: the same result without the padded compute.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .layers import PADDING_MODES, Dropout, attend, attention_mask


@dataclass(frozen=True)
class SASRecConfig:
    hidden_size: int
    num_blocks: int
    num_heads: int
    dropout: float
    causal: bool
    padding: str  # "masked" or "attended" (the authors')
    max_len: int  # the padded length under padding="attended"

    def __post_init__(self):
        if self.padding not in PADDING_MODES:
            raise ValueError(f"padding must be one of {PADDING_MODES}, not {self.padding!r}")


class SelfAttention(nn.Module):
    """Multi-head attention with biased projections and dropout on the attention weights
    (what torch.nn.MultiheadAttention computes), on the fused scaled-dot-product kernel, and
    initialised as the authors' MultiheadAttention is (see `initialise_after_xavier`)."""

    def __init__(self, hidden_size: int, num_heads: int, dropout: float):
        super().__init__()
        if hidden_size % num_heads:
            raise ValueError(f"hidden_size {hidden_size} is not divisible by num_heads {num_heads}")
        self.num_heads = num_heads
        self.dropout = Dropout(dropout)
        self.query = nn.Linear(hidden_size, hidden_size)
        self.key_value = nn.Linear(hidden_size, 2 * hidden_size)
        self.out = nn.Linear(hidden_size, hidden_size)

    def initialise_after_xavier(self) -> None:
        """torch's MultiheadAttention starts with zero biases and the authors' Xavier pass draws
        its input projection as one (3d, d) matrix (a smaller scale than three (d, d) draws).
        Under padding="attended" the biases are the padding keys and values, so this matters."""
        d = self.out.in_features
        stacked = nn.init.xavier_normal_(torch.empty(3 * d, d))
        with torch.no_grad():
            self.query.weight.copy_(stacked[:d])
            self.key_value.weight.copy_(stacked[d:])
            for projection in (self.query, self.key_value, self.out):
                projection.bias.zero_()

    def forward(
        self, queries: torch.Tensor, keys: torch.Tensor, allowed: torch.Tensor, padding_keys: torch.Tensor | None = None
    ) -> torch.Tensor:
        """`padding_keys` (B,): how many zero-input padding keys each row attends to besides
        the keys `allowed` admits (padding="attended"); None: none."""
        batch, length, hidden = queries.shape
        heads, head_size = self.num_heads, hidden // self.num_heads
        q = self.query(queries).view(batch, length, heads, head_size).transpose(1, 2)
        k, v = self.key_value(keys).view(batch, length, 2, heads, head_size).permute(2, 0, 3, 1, 4)
        if padding_keys is not None:  # a zero input's key and value are the biases
            bias_k, bias_v = self.key_value.bias.view(2, heads, 1, head_size)
            k = torch.cat([k, bias_k.expand(batch, -1, -1, -1)], dim=2)
            v = torch.cat([v, bias_v.expand(batch, -1, -1, -1)], dim=2)
        mixed = attend(q, k, v, allowed, self.dropout, last_key_copies=padding_keys)
        return self.out(mixed.transpose(1, 2).reshape(batch, length, hidden))


class FeedForward(nn.Module):
    """Position-wise two-layer network with ReLU, dropout and a residual connection."""

    def __init__(self, hidden_size: int, dropout: float):
        super().__init__()
        self.inner = nn.Linear(hidden_size, hidden_size)
        self.outer = nn.Linear(hidden_size, hidden_size)
        self.dropout = Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.dropout(self.outer(self.dropout(torch.relu(self.inner(x)))))


class SASRecEncoder(nn.Module):
    """(embedded sequence (B, L, d), valid (B, L)) -> hidden states (B, L, d)."""

    uses_positions = True
    full_width = None  # attention handles padding it is not shown (padding="attended")
    shifted_scoring_positions = False  # Bert4Rec's quirk

    def __init__(self, config: SASRecConfig):
        super().__init__()
        self.config = config
        d, eps = config.hidden_size, 1e-8
        self.attention_norms = nn.ModuleList(nn.LayerNorm(d, eps=eps) for _ in range(config.num_blocks))
        self.attentions = nn.ModuleList(
            SelfAttention(d, config.num_heads, config.dropout) for _ in range(config.num_blocks)
        )
        self.forward_norms = nn.ModuleList(nn.LayerNorm(d, eps=eps) for _ in range(config.num_blocks))
        self.forwards = nn.ModuleList(FeedForward(d, config.dropout) for _ in range(config.num_blocks))
        self.final_norm = nn.LayerNorm(d, eps=eps)

    def forward(self, x: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        keep = valid.unsqueeze(-1).to(x.dtype)
        allowed = attention_mask(valid, self.config.causal)
        # Under "attended" every row also sees its padding up to max_len; the padding of a trimmed
        # batch is masked above and counted here instead. Left padding precedes every item, so a
        # causal query sees all of it too.
        padding_keys = (
            (self.config.max_len - valid.sum(dim=1)).clamp(min=0) if self.config.padding == "attended" else None
        )
        x = x * keep
        for attention_norm, attention, forward_norm, feed_forward in zip(
            self.attention_norms, self.attentions, self.forward_norms, self.forwards
        ):
            queries = attention_norm(x)
            x = queries + attention(queries, x, allowed, padding_keys)
            x = feed_forward(forward_norm(x)) * keep
        return self.final_norm(x)
