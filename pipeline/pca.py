"""Stage `pca`: item LLM embeddings -> `hidden_size` principal components, which initialise
LLM-ESR's collaborative-view item ID table (the paper: 1,536 -> 64 dims)."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import numpy as np
from sklearn.decomposition import PCA

from .errors import DataError
from .io import save_npy

log = logging.getLogger(__name__)


def pca_reduce(vectors: np.ndarray, dims: int) -> np.ndarray:
    if dims > min(vectors.shape):
        raise DataError(
            f"PCA to {dims} dims needs at least {dims} items and an embedding of at least {dims} "
            f"dims; got {vectors.shape[0]} items x {vectors.shape[1]} dims (lower model.hidden_size "
            "or use a larger encoder)"
        )
    if not np.isfinite(vectors).all():
        raise DataError("the item embeddings hold NaN or infinite values: embed them again (delete results/*/embed)")
    if len(vectors) > 1 and (vectors == vectors[0]).all():
        raise DataError(
            f"all {len(vectors)} item embeddings are identical, so they have no principal components: the item "
            "prompts are probably all alike (see items_without_text_row in the dataset's ingest report)"
        )
    pca = PCA(n_components=dims, svd_solver="full")
    reduced = pca.fit_transform(vectors.astype(np.float64))
    log.info(
        "PCA %d -> %d dims keeps %.1f%% of the variance",
        vectors.shape[1],
        dims,
        100 * pca.explained_variance_ratio_.sum(),
    )
    return reduced.astype(np.float32)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="pipeline pca", description=__doc__)
    parser.add_argument("--embeddings", required=True, type=Path)
    parser.add_argument("--out-pca", required=True, type=Path)
    parser.add_argument("--dims", required=True, type=int)
    args = parser.parse_args(argv)
    save_npy(pca_reduce(np.load(args.embeddings), args.dims), args.out_pca)
