"""AlphaFuse (Hu et al., SIGIR 2025, "AlphaFuse: Learn ID Embeddings for Sequential
Recommendation in Null Space of Language Embeddings"), read from the paper's abstract and the
authors' code (Hugo-Chinn/AlphaFuse, its SASRec path).

The item table is not learned from scratch. The items' LLM embeddings are centred and
decomposed by the eigenvectors of their covariance (an SVD of it), and the first
`hidden_size` components are kept, each scaled to unit variance over the items (`whiten`):
a frozen semantic table. The last `null_dim` of those components, the weakest kept ones,
are the "null space": a trainable ID table of that width is added there, so an item's
vector is [semantic first hidden_size - null_dim components ; weaker components + ID]. No
adapter, no extra loss: the backbone reads these vectors and scores with them. The authors
train it with an InfoNCE over cosine similarities (`train.loss: infonce`, 64 negatives,
temperature 0.07: the `alphafuse` variant) and rank by dot product, as every model here does.

Two choices of ours: (1) the backbone's input scales item vectors by sqrt(hidden_size)
(transformers here), where the authors' code feeds them as they are, so the table is stored
divided by sqrt(hidden_size): the encoder sees the authors' values, and neither the cosine
loss nor a dot-product ranking changes with one global scale; (2) Bert4Rec's mask token gets
a trainable vector of full width, zero at first (the authors' code has no Bert4Rec); (3) the
switch `equal_norms` (off by default) gives every item's semantic vector the same length.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from ..options import option
from .method import BuildInputs, Method
from .recommender import SequentialRecommender

ID_INITS = ("zeros", "normal")


@dataclass(frozen=True)
class AlphaFuseConfig:
    null_dim: int = option(
        64, "Width of the ID table: the last null_dim of the hidden_size kept components (the authors' 64).", minimum=1
    )
    whiten: bool = option(True, "Scale each kept component to unit variance over the items (the authors' default).")
    id_init: Literal["zeros", "normal"] = option(
        "zeros", "ID table at start: zeros (the authors' choice for Yelp, Fashion and Beauty) or N(0, 1)."
    )
    equal_norms: bool = option(
        False,
        "Scale every item's semantic vector to the table's mean length (ours, not the authors'): an item "
        "keeps its direction, and one whose text sits near the centre of the catalogue's is no longer too "
        "short to reach any user's top K.",
    )

    def __post_init__(self):
        if self.id_init not in ID_INITS:
            raise ValueError(f"alphafuse.id_init must be one of {ID_INITS}, not {self.id_init!r}")


def semantic_table(llm_items: torch.Tensor, width: int, whiten: bool, equal_norms: bool = False) -> torch.Tensor:
    """(n_items, D) LLM embeddings -> (n_items, width): the centred embeddings in the first
    `width` eigenvectors of their covariance, each with unit variance over the items when
    `whiten` (components with no variance stay zero); with `equal_norms` every row then has
    the rows' mean length (a zero row stays zero)."""
    if llm_items.shape[1] < width:
        raise ValueError(
            f"AlphaFuse keeps hidden_size {width} components of {llm_items.shape[1]}-wide LLM embeddings: "
            "use a smaller model.hidden_size or a wider encoder"
        )
    centred = llm_items.double() - llm_items.double().mean(dim=0)
    covariance = centred.T @ centred / max(len(centred) - 1, 1)
    variances, vectors = torch.linalg.eigh(covariance)  # ascending
    variances, vectors = variances.flip(0)[:width], vectors.flip(1)[:, :width]
    # eigh's sign per vector is arbitrary: fix it (largest coordinate positive) so that a
    # table does not depend on the LAPACK build.
    vectors = vectors * torch.sign(vectors.gather(0, vectors.abs().argmax(dim=0, keepdim=True)))
    projected = centred @ vectors
    if whiten:
        scale = variances.clamp(min=0).sqrt()
        varies = scale > 1e-12 * scale.max()
        projected = torch.where(varies, projected / scale.where(varies, torch.ones_like(scale)), 0)
    if equal_norms:
        lengths = projected.norm(dim=1, keepdim=True)
        projected = projected * (lengths.mean() / lengths.where(lengths > 0, torch.ones_like(lengths)))
    return projected.float()


class AlphaFuse(SequentialRecommender):
    def __init__(self, config: AlphaFuseConfig, encoder: nn.Module, n_items: int, llm_items: torch.Tensor, **common):
        super().__init__(encoder, n_items, **common)
        width = common["hidden_size"]
        self.null_dim = config.null_dim
        # Row 0 is padding, row n_items + 1 Bert4Rec's mask: zero semantics.
        rows = self.item_embedding.num_embeddings
        semantic = torch.zeros(rows, width)
        table = semantic_table(llm_items, width, config.whiten, config.equal_norms)
        semantic[1 : n_items + 1] = table / math.sqrt(width)
        self.register_buffer("semantic", semantic)
        self.item_embedding = nn.Embedding(rows, config.null_dim, padding_idx=0)
        with torch.no_grad():
            if config.id_init == "zeros":
                self.item_embedding.weight.zero_()
            else:
                self.item_embedding.weight.normal_().div_(math.sqrt(width))  # N(0, 1) on the authors' scale
                self.item_embedding.weight[0].zero_()
        self.mask_vector = nn.Parameter(torch.zeros(width)) if self.mask_token is not None else None

    def item_vectors(self, items: torch.Tensor) -> torch.Tensor:
        """[semantic components ; weaker components + ID vector]."""
        ids = F.pad(self.item_embedding(items), (self.semantic.shape[1] - self.null_dim, 0))
        vectors = self.semantic[items] + ids
        if self.mask_vector is not None:
            vectors = torch.where((items == self.mask_token).unsqueeze(-1), self.mask_vector, vectors)
        return vectors

    def embed_items(self, seq: torch.Tensor) -> torch.Tensor:
        return self.item_vectors(seq)


def build(config: AlphaFuseConfig, inputs: BuildInputs) -> AlphaFuse:
    if inputs.llm_items is None:
        raise ValueError("AlphaFuse needs the item LLM embeddings")
    return AlphaFuse(config, inputs.encoder(), inputs.n_items, inputs.llm_items, **inputs.common)


def check(config: AlphaFuseConfig, model: dict) -> list[str]:
    if config.null_dim < model["hidden_size"]:
        return []
    return [
        f"model.alphafuse.null_dim {config.null_dim} must be smaller than model.hidden_size {model['hidden_size']}: "
        "the ID table fills the last null_dim of hidden_size components (the authors: 64 of 128)"
    ]


METHOD = Method(
    "alphafuse",
    "AlphaFuse",
    build,
    config=AlphaFuseConfig,
    description="AlphaFuse: a frozen whitened-PCA item table with trainable ID vectors in its weakest components.",
    needs=lambda config: {"llm_items"},
    check=check,
    group_analysis=True,
    order=60,
)
