"""Stage `retrieve`: for each user, the most similar other users by cosine similarity of their
LLM embeddings (self excluded), for retrieval-augmented self-distillation.

Output: int32 array (users x k), row r = user r+1, values = 1-based user ids, most similar
first. `method: exact` is a blocked brute-force search (one matrix product per block of
users); `hnsw` builds an hnswlib index (single-threaded inserts, so the graph and the result
are deterministic); `auto` takes exact search up to `exact_max_users` users, where it is
faster on a CPU (see benchmarks/), and hnswlib above. Either way the recall of the result
against exact search is measured on a sample and logged.
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

import numpy as np
import torch

from .io import save_npy, write_json

log = logging.getLogger(__name__)


def _drop_self(labels: np.ndarray, k: int) -> np.ndarray:
    """Remove each row's own index (0-based row == label) and keep k; without it, keep the first k."""
    is_self = labels == np.arange(labels.shape[0])[:, None]
    order = np.argsort(is_self, axis=1, kind="stable")
    return np.take_along_axis(labels, order, axis=1)[:, :k]


def exact_neighbours(vectors: np.ndarray, k: int, rows: np.ndarray | None = None, block: int = 2048) -> np.ndarray:
    """0-based indices of the k most cosine-similar other rows, for `rows` (default: all)."""
    unit = torch.nn.functional.normalize(torch.from_numpy(vectors).float(), dim=1)
    rows = np.arange(len(vectors)) if rows is None else rows
    out = np.empty((len(rows), k), dtype=np.int64)
    for start in range(0, len(rows), block):
        chunk = torch.from_numpy(rows[start : start + block])
        sims = unit[chunk] @ unit.T
        sims[torch.arange(len(chunk)), chunk] = -torch.inf
        out[start : start + block] = sims.topk(k, dim=1).indices.numpy()
    return out


def hnsw_neighbours(
    vectors: np.ndarray,
    k: int,
    m: int,
    ef_construction: int,
    ef_search: int,
    seed: int,
    threads: int,
    deterministic: bool = True,
) -> np.ndarray:
    """The k nearest other rows from an hnswlib index. `deterministic`: the graph is built with
    one thread (inserts in a fixed order: the same graph and result every time); otherwise
    with `threads`, whose interleaving makes each build's graph, and so a few neighbours, differ."""
    import hnswlib

    index = hnswlib.Index(space="cosine", dim=vectors.shape[1])
    index.init_index(max_elements=len(vectors), ef_construction=ef_construction, M=m, random_seed=seed)
    index.add_items(vectors, np.arange(len(vectors)), num_threads=1 if deterministic else threads)
    index.set_ef(max(ef_search, k + 1))
    labels, _ = index.knn_query(vectors, k=k + 1, num_threads=threads)
    return _drop_self(labels.astype(np.int64), k)


def recall_against_exact(vectors: np.ndarray, found: np.ndarray, sample: int, seed: int) -> float:
    rows = np.random.default_rng(seed).choice(len(vectors), size=min(sample, len(vectors)), replace=False)
    truth = exact_neighbours(vectors, found.shape[1], rows)
    hits = sum(len(np.intersect1d(found[r], t)) for r, t in zip(rows, truth))
    return hits / truth.size


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="pipeline retrieve", description=__doc__)
    parser.add_argument("--embeddings", required=True, type=Path)
    parser.add_argument("--out-neighbours", required=True, type=Path)
    parser.add_argument("--out-report", required=True, type=Path)
    parser.add_argument("--k", type=int, required=True)
    parser.add_argument("--method", choices=["auto", "hnsw", "exact"], required=True)
    parser.add_argument("--exact-max-users", type=int, required=True)
    parser.add_argument("--hnsw-m", type=int, required=True)
    parser.add_argument("--hnsw-ef-construction", type=int, required=True)
    parser.add_argument("--hnsw-ef-search", type=int, required=True)
    parser.add_argument("--recall-sample", type=int, required=True)
    parser.add_argument(
        "--deterministic",
        choices=["true", "false"],
        required=True,
        help="hnsw: build the graph with one thread (repeatable) or with --threads",
    )
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)

    torch.set_num_threads(args.threads)
    vectors = np.load(args.embeddings)
    k = min(args.k, len(vectors) - 1)
    if k < 1:
        raise SystemExit("error: retrieval needs at least two users")
    method = args.method
    if method == "auto":
        method = "exact" if len(vectors) <= args.exact_max_users else "hnsw"
    started = time.perf_counter()
    if method == "exact":
        found = exact_neighbours(vectors, k)
    else:
        found = hnsw_neighbours(
            vectors,
            k,
            args.hnsw_m,
            args.hnsw_ef_construction,
            args.hnsw_ef_search,
            args.seed,
            args.threads,
            deterministic=args.deterministic == "true",
        )
    seconds = time.perf_counter() - started
    recall = recall_against_exact(vectors, found, args.recall_sample, args.seed)
    log.info(
        "%s search: top-%d neighbours for %d users in %.1f s; recall@%d against exact search on a sample: %.4f",
        method,
        k,
        len(vectors),
        seconds,
        k,
        recall,
    )
    save_npy((found + 1).astype(np.int32), args.out_neighbours)
    write_json(
        {
            "method": method,
            "deterministic": method == "exact" or args.deterministic == "true",
            "k": k,
            "users": len(vectors),
            "seconds": round(seconds, 3),
            "recall_vs_exact": round(recall, 6),
            "recall_sample": min(args.recall_sample, len(vectors)),
        },
        args.out_report,
    )
