"""LLM-ESR (Liu et al., NeurIPS 2024): one wrapper that enhances any backbone encoder.

Two views of the same item sequence:
- collaborative: a trainable item ID table initialised from the PCA of the items' LLM
  embeddings (`id_init: random` is the paper's ablation);
- semantic: the items' LLM embeddings, FROZEN (a buffer, never trained), through an adapter
  of two linear layers (LLM dim -> LLM dim / 2 -> d; no activation, no dropout).
Each view is embedded as the backbone expects, optionally mixed by cross-attention (queries
from one view, keys and values from the other), then run through ONE shared encoder. The
user is concat(collaborative state, semantic state) at the last position, the item is
concat(ID vector, adapted LLM vector), and the score is their dot product.

Retrieval-augmented self-distillation lives in the training loop (pipeline/train.py): the
teacher is the mean of the model's own (detached) representations of the user's most
similar users, pulled towards by an MSE term weighted by `alpha`.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .layers import InputEmbedding, attend, attention_mask, init_weights


@dataclass
class LLMESRConfig:
    adapter_layers: int = 2  # 1 is the paper's one-layer-adapter ablation
    cross_attention: bool = True
    cross_attention_heads: int = 2
    id_init: str = "pca"  # "pca" or "random"
    alpha: float = 0.1  # weight of the self-distillation term
    num_similar_users: int = 10


class CrossAttention(nn.Module):
    """Multi-head attention from one view (queries) to the other (keys, values): bias-free
    Q/K/V projections and an output projection; no residual, no LayerNorm, no dropout."""

    def __init__(self, hidden_size: int, num_heads: int):
        super().__init__()
        if hidden_size % num_heads:
            raise ValueError(f"hidden_size {hidden_size} is not divisible by {num_heads} cross-attention heads")
        self.num_heads = num_heads
        self.query = nn.Linear(hidden_size, hidden_size, bias=False)
        self.key = nn.Linear(hidden_size, hidden_size, bias=False)
        self.value = nn.Linear(hidden_size, hidden_size, bias=False)
        self.out = nn.Linear(hidden_size, hidden_size)

    def forward(self, queries: torch.Tensor, keys: torch.Tensor, allowed: torch.Tensor) -> torch.Tensor:
        batch, length, hidden = queries.shape
        heads = self.num_heads

        def split(x: torch.Tensor) -> torch.Tensor:
            return x.view(batch, length, heads, hidden // heads).transpose(1, 2)

        mixed = attend(split(self.query(queries)), split(self.key(keys)), split(self.value(keys)), allowed)
        return self.out(mixed.transpose(1, 2).reshape(batch, length, hidden))


class LLMESR(nn.Module):
    def __init__(
        self,
        config: LLMESRConfig,
        encoder: nn.Module,
        llm_items: torch.Tensor,
        pca_items: torch.Tensor | None,
        hidden_size: int,
        max_len: int,
        dropout: float,
        causal: bool,
        extra_rows: int = 0,
    ):
        """`llm_items` (n_items, D) and `pca_items` (n_items, hidden_size): row i = item i+1."""
        super().__init__()
        self.config = config
        self.causal = causal
        self.n_items, llm_dim = llm_items.shape

        def with_special_rows(table: torch.Tensor) -> torch.Tensor:
            # Row 0 = padding and the rows after the items (e.g. a mask token) start at zero.
            zero = table.new_zeros(1, table.shape[1])
            return torch.cat([zero, table] + [zero] * extra_rows)

        self.register_buffer("llm_items", with_special_rows(llm_items.float()))
        if config.adapter_layers == 2:
            self.adapter = nn.Sequential(nn.Linear(llm_dim, llm_dim // 2), nn.Linear(llm_dim // 2, hidden_size))
        elif config.adapter_layers == 1:
            self.adapter = nn.Sequential(nn.Linear(llm_dim, hidden_size))
        else:
            raise ValueError(f"adapter_layers must be 1 or 2, not {config.adapter_layers}")
        self.id_embedding = nn.Embedding(self.n_items + 1 + extra_rows, hidden_size, padding_idx=0)
        self.inputs = InputEmbedding(hidden_size, max_len, dropout, positional=encoder.uses_positions)
        if config.cross_attention:
            self.id_from_semantic = CrossAttention(hidden_size, config.cross_attention_heads)
            self.semantic_from_id = CrossAttention(hidden_size, config.cross_attention_heads)
        self.encoder = encoder

        init_weights(self)
        if config.id_init == "pca":
            if pca_items is None:
                raise ValueError("id_init 'pca' needs the PCA vectors of the item embeddings")
            with torch.no_grad():
                self.id_embedding.weight.copy_(with_special_rows(pca_items.float()))
        elif config.id_init != "random":
            raise ValueError(f"id_init must be 'pca' or 'random', not {config.id_init!r}")

    def semantic_vectors(self, items: torch.Tensor) -> torch.Tensor:
        """adapter(LLM embedding), computed once per distinct item in `items`."""
        distinct, where = torch.unique(items, return_inverse=True)
        return self.adapter(self.llm_items[distinct])[where]

    def sequence_states(self, seq: torch.Tensor) -> torch.Tensor:
        """(B, L) item ids, 0 = padding -> (B, L, 2d): collaborative and semantic states."""
        valid = seq > 0
        id_view = self.inputs(self.id_embedding(seq), valid)
        semantic_view = self.inputs(self.semantic_vectors(seq), valid)
        if self.config.cross_attention:
            allowed = attention_mask(valid, self.causal)
            id_view, semantic_view = (
                self.id_from_semantic(semantic_view, id_view, allowed),
                self.semantic_from_id(id_view, semantic_view, allowed),
            )
        # One call of the shared encoder over both views stacked along the batch.
        states = self.encoder(torch.cat([id_view, semantic_view]), valid.repeat(2, 1))
        return torch.cat(states.chunk(2), dim=-1)

    def item_vectors(self, items: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.id_embedding(items), self.semantic_vectors(items)], dim=-1)
