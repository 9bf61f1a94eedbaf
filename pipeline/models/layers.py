"""Building blocks shared by the plain recommender and the LLM-ESR wrapper."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

PADDING_MODES = ("masked", "attended")


def attention_mask(valid: torch.Tensor, causal: bool) -> torch.Tensor:
    """(B, 1, L, L) boolean mask, True where query i may attend to key j: real keys only, and
    with `causal` only keys at or before i. A query with no such key (a padding query of a
    causal model, or of a row without items) attends to itself, so no row is empty; outputs
    of padding queries are zeroed or ignored downstream, except by GRU4Rec under
    `padding: attended`, which, like the authors' code, reads them over the real keys.
    Masking padding keys makes results independent of how much padding a batch carries,
    which is what lets batches be trimmed to their longest sequence."""
    length = valid.shape[1]
    allowed = valid[:, None, :].expand(-1, length, -1)
    if causal:
        allowed = allowed & torch.ones(length, length, dtype=torch.bool, device=valid.device).tril()
    alone = ~allowed.any(dim=-1, keepdim=True)
    allowed = allowed | (alone & torch.eye(length, dtype=torch.bool, device=valid.device))
    return allowed.unsqueeze(1)


def positions_of(valid: torch.Tensor) -> torch.Tensor:
    """1 for the oldest item shown, counting up; 0 on padding (the authors' convention)."""
    return valid.long().cumsum(dim=1) * valid


def left_pad_to(seq: torch.Tensor, width: int | None) -> torch.Tensor:
    """`seq` (B, L) with zero columns added on the left up to `width` (None: as it is)."""
    if width is None or seq.shape[1] >= width:
        return seq
    return F.pad(seq, (width - seq.shape[1], 0))


class InputEmbedding(nn.Module):
    """Item vectors -> encoder input. Transformers (SASRec, Bert4Rec): scale by sqrt(d), add a
    learned positional embedding, dropout. Recurrent encoders (GRU4Rec) take the vectors as they are.
    `extra_positions` rows beyond max_len serve the authors' shifted Bert4Rec scoring positions."""

    def __init__(self, hidden_size: int, max_len: int, dropout: float, positional: bool, extra_positions: int = 0):
        super().__init__()
        self.positional = positional
        self.scale = math.sqrt(hidden_size)
        if positional:
            self.position = nn.Embedding(max_len + 1 + extra_positions, hidden_size, padding_idx=0)
            self.dropout = Dropout(dropout)

    def forward(
        self, vectors: torch.Tensor, valid: torch.Tensor, position_shift: torch.Tensor | None = None
    ) -> torch.Tensor:
        """`position_shift` (B,): added to the positions of each row's items."""
        if not self.positional:
            return vectors
        positions = positions_of(valid)
        if position_shift is not None:
            positions = positions + position_shift.long()[:, None] * valid
        return self.dropout(vectors * self.scale + self.position(positions))


def init_weights(module: nn.Module, zero_padding_rows: bool = True) -> None:
    """Xavier-normal for every matrix (as the authors' models do), biases and norms as built,
    then each submodule's own `initialise_after_xavier` (attention that must start as torch's
    MultiheadAttention does). Padding rows of embeddings are zeroed unless `zero_padding_rows`
    is False (the authors Xavier-initialise them too; it matters only where padding is an
    input, GRU4Rec attended)."""
    for parameter in module.parameters():
        if parameter.dim() >= 2:
            nn.init.xavier_normal_(parameter)
    for sub in module.modules():
        if hasattr(sub, "initialise_after_xavier"):
            sub.initialise_after_xavier()
    if not zero_padding_rows:
        return
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

    @property
    def active(self) -> bool:
        return self.training and self.p > 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.active:
            return x
        if self.p == 1:
            return torch.zeros_like(x)
        return x * torch.empty_like(x).uniform_().ge_(self.p).mul_(1 / (1 - self.p))

    def of_copies(self, copies: torch.Tensor) -> torch.Tensor:
        """Dropout's factor for the sum of `copies` equal terms, each dropped on its own: the
        number kept (binomial) over copies * (1 - p). Same distribution as dropping each copy."""
        if not self.active:
            return torch.ones_like(copies)
        if self.p == 1:
            return torch.zeros_like(copies)
        kept = torch.binomial(copies, torch.full_like(copies, 1 - self.p))
        return kept / (copies.clamp(min=1) * (1 - self.p))


def attend(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    allowed: torch.Tensor,
    dropout: Dropout | None = None,
    last_key_copies: torch.Tensor | None = None,
) -> torch.Tensor:
    """Scaled dot-product attention over (B, H, L, d_head) with a boolean mask over the keys.
    With `last_key_copies` (B,), k and v carry one more key than `allowed` covers, which
    stands for that many identical keys (0 = none): the authors' padding keys, all alike,
    as one key whose softmax weight counts `copies` times, and whose dropout keeps a binomial
    share of them. Without dropout this is the fused kernel; with dropout on the attention
    weights it is spelled out, because the fused kernel's dropout path is slower on CPU."""
    mask = allowed
    if last_key_copies is not None:
        copies = last_key_copies.to(q.dtype).view(-1, 1, 1, 1)
        columns = torch.zeros(allowed.shape, dtype=q.dtype, device=q.device).masked_fill_(~allowed, -math.inf)
        mask = torch.cat([columns, copies.log().expand(-1, 1, allowed.shape[2], 1)], dim=-1)  # log 0 = -inf
    if dropout is None or not dropout.active:
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    weights = (q @ k.transpose(-1, -2)) * q.shape[-1] ** -0.5
    weights = (weights + mask if mask.dtype != torch.bool else weights.masked_fill(~mask, -math.inf)).softmax(dim=-1)
    if last_key_copies is None:
        return dropout(weights) @ v
    shared = dropout.of_copies(copies.expand(-1, q.shape[1], q.shape[2], 1))
    return torch.cat([dropout(weights[..., :-1]), weights[..., -1:] * shared], dim=-1) @ v
