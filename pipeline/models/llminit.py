"""LLMInit: the plain backbone whose item ID table starts from the items' LLM embeddings reduced
to the hidden size, then trains as usual (same loss and protocol; no semantic view, no
distillation). The reduction is the one LLM-ESR initialises its collaborative view with (the
PCA stage), so LLMInit differs from LLM-ESR's `nosemview` ablation only by the missing
self-distillation. Closest published form: Harte et al., "Leveraging Large Language Models
for Sequential Recommendation", RecSys 2023 (LLM embeddings as SASRec/BERT4Rec's item table).
"""

from __future__ import annotations

import torch

from .method import BuildInputs, Method
from .recommender import SequentialRecommender


def initialise_from_llm(model: SequentialRecommender, pca_items: torch.Tensor) -> SequentialRecommender:
    """Rows 1..n_items of the ID table <- `pca_items` (row i = item i + 1); the padding row and
    a mask token's row (Bert4Rec) keep their initialisation."""
    if pca_items.shape != (model.n_items, model.item_embedding.embedding_dim):
        raise ValueError(
            f"LLMInit needs ({model.n_items}, {model.item_embedding.embedding_dim}) PCA vectors, "
            f"not {tuple(pca_items.shape)}"
        )
    with torch.no_grad():
        model.item_embedding.weight[1 : model.n_items + 1] = pca_items.float()
    return model


def build(config: None, inputs: BuildInputs) -> SequentialRecommender:
    if inputs.pca_items is None:
        raise ValueError("LLMInit needs the PCA vectors of the item embeddings")
    return initialise_from_llm(
        SequentialRecommender(inputs.encoder(), inputs.n_items, **inputs.common), inputs.pca_items
    )


METHOD = Method("llminit", "LLMInit", build, needs=lambda config: {"pca_items"}, group_analysis=True, order=40)
