"""The plain sequential recommender (the `base` variant): a trainable item ID table feeds a
backbone encoder; a user is the encoder's state at the last position; score = dot product
with the item's ID vector."""

from __future__ import annotations

import torch
from torch import nn

from .layers import InputEmbedding, init_weights, left_pad_to
from .method import BuildInputs, Method


class SequentialRecommender(nn.Module):
    def __init__(
        self,
        encoder: nn.Module,
        n_items: int,
        hidden_size: int,
        max_len: int,
        dropout: float,
        mask_token: bool = False,
        padding: str = "masked",
    ):
        """Item ids: 0 = padding, 1..n_items, and with `mask_token` n_items + 1 = the mask
        (Bert4Rec), whose row starts at zero. Under `padding: attended` the padding row keeps
        its random initialisation (frozen), as in the authors' code: GRU4Rec reads it there."""
        super().__init__()
        self.n_items = n_items
        self.mask_token = n_items + 1 if mask_token else None
        self.shifts_long_positions = encoder.shifted_scoring_positions
        self.item_embedding = nn.Embedding(n_items + 1 + mask_token, hidden_size, padding_idx=0)
        self.inputs = InputEmbedding(
            hidden_size,
            max_len,
            dropout,
            positional=encoder.uses_positions,
            extra_positions=int(self.shifts_long_positions),
        )
        self.encoder = encoder
        init_weights(self, zero_padding_rows=padding == "masked")
        if mask_token:
            with torch.no_grad():
                self.item_embedding.weight[self.mask_token].zero_()

    def sequence_states(self, seq: torch.Tensor, position_shift: torch.Tensor | None = None) -> torch.Tensor:
        """(B, L) item ids, 0 = padding -> (B, L, d). `position_shift` (B,) moves each row's positions."""
        width = seq.shape[1]
        seq = left_pad_to(seq, self.encoder.full_width)
        valid = seq > 0
        return self.encoder(self.inputs(self.embed_items(seq), valid, position_shift), valid)[:, -width:]

    def embed_items(self, seq: torch.Tensor) -> torch.Tensor:
        """The encoder's input vectors of item ids (a method may replace some: RLMRec-Gen's mask)."""
        return self.item_embedding(seq)

    def item_vectors(self, items: torch.Tensor) -> torch.Tensor:
        return self.item_embedding(items)


def build(config: None, inputs: BuildInputs) -> SequentialRecommender:
    return SequentialRecommender(inputs.encoder(), inputs.n_items, **inputs.common)


METHOD = Method("base", "base", build, role=None, order=0)
