"""Stage `retrieve`: for each user, the most similar other users by cosine similarity of their
LLM embeddings (self excluded), for retrieval-augmented self-distillation.

Output: int32 array (users x k), row r = user r+1, values = 1-based user ids, most similar
first. `method: exact` is a blocked brute-force search (one matrix product per block of
users); `hnsw` builds an hnswlib index (single-threaded inserts, so the graph and the result
are deterministic); `auto` takes exact search up to `exact_max_users` users, where it is
faster on a CPU (see benchmarks/), and hnswlib above. Either way the recall of the result
against exact search is measured on a sample and logged.

With `retrieve.shards` > 1 the work is split for a cluster: `retrieve-index` decides the method
and builds the hnswlib index once, `retrieve-shard` answers the queries of one contiguous slice
of the users, and `retrieve-merge` joins the slices in order; the result equals the unsharded
one (slices start on the exact search's block boundaries, and each hnswlib query is answered
alone).
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

import numpy as np
import torch

from .console import ProgressLog
from .data import shard_bounds
from .io import atomic_path, read_json, save_npy, write_json

log = logging.getLogger(__name__)


def _drop_self(labels: np.ndarray, k: int) -> np.ndarray:
    """Remove each row's own index (0-based row == label) and keep k; without it, keep the first k."""
    is_self = labels == np.arange(labels.shape[0])[:, None]
    order = np.argsort(is_self, axis=1, kind="stable")
    return np.take_along_axis(labels, order, axis=1)[:, :k]


BLOCK = 2048  # users per matrix product of the exact search
HNSW_BLOCK = 50_000  # users per hnswlib call (progress is logged between calls)
TIE_TOLERANCE = 1e-6  # cosine similarities closer than this are ties (float32 rounding)


def exact_neighbours(vectors: np.ndarray, k: int, rows: np.ndarray | None = None, block: int = BLOCK) -> np.ndarray:
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


def hnsw_index(vectors: np.ndarray, m: int, ef_construction: int, seed: int, threads: int, deterministic: bool):
    """An hnswlib index of the rows. `deterministic`: the graph is built with one thread
    (inserts in a fixed order: the same graph and result every time); otherwise with
    `threads`, whose interleaving makes each build's graph, and so a few neighbours, differ."""
    import hnswlib

    index = hnswlib.Index(space="cosine", dim=vectors.shape[1])
    index.init_index(max_elements=len(vectors), ef_construction=ef_construction, M=m, random_seed=seed)
    # In blocks, for progress: one thread inserts in the same order either way, the same graph.
    progress = ProgressLog(log, "hnsw index, users added", len(vectors))
    for start in range(0, len(vectors), HNSW_BLOCK):
        progress.update(start)
        block = vectors[start : start + HNSW_BLOCK]
        index.add_items(block, np.arange(start, start + len(block)), num_threads=1 if deterministic else threads)
    return index


def hnsw_query(index, vectors: np.ndarray, k: int, ef_search: int, threads: int, first_row: int = 0) -> np.ndarray:
    """The k nearest other rows of each of `vectors` (rows first_row, first_row + 1, ... of the
    index); each query is answered on its own, so any slice gives the rows of the whole."""
    index.set_ef(max(ef_search, k + 1))
    out = np.empty((len(vectors), k), dtype=np.int64)
    progress = ProgressLog(log, "hnsw queries, users", len(vectors))
    for start in range(0, len(vectors), HNSW_BLOCK):
        progress.update(start)
        labels, _ = index.knn_query(vectors[start : start + HNSW_BLOCK], k=k + 1, num_threads=threads)
        first = first_row + start
        out[start : start + HNSW_BLOCK] = _drop_self(labels.astype(np.int64) - first, k) + first
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
    """The k nearest other rows from an hnswlib index (see hnsw_index)."""
    index = hnsw_index(vectors, m, ef_construction, seed, threads, deterministic)
    return hnsw_query(index, vectors, k, ef_search, threads)


def recall_against_exact(vectors: np.ndarray, found: np.ndarray, sample: int, seed: int) -> float:
    """Share of the found neighbours, over a seeded sample of users, that are among the exact k
    nearest. A neighbour as similar as the k-th exact one counts as found: users with the same
    vector are interchangeable, and exact search picks among such ties arbitrarily."""
    rows = np.random.default_rng(seed).choice(len(vectors), size=min(sample, len(vectors)), replace=False)
    truth = exact_neighbours(vectors, found.shape[1], rows)
    unit = torch.nn.functional.normalize(torch.from_numpy(vectors).float(), dim=1)
    query = unit[torch.from_numpy(rows)]
    kth = (query * unit[torch.from_numpy(truth[:, -1])]).sum(dim=1)
    similarity = torch.einsum("rd,rkd->rk", query, unit[torch.from_numpy(found[rows])])
    return (similarity >= kth[:, None] - TIE_TOLERANCE).sum().item() / truth.size


def search_options(parser: argparse.ArgumentParser) -> None:
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


def load(args: argparse.Namespace) -> tuple[np.ndarray, int, str]:
    """The user vectors, the k searched (at most the other users) and the method."""
    torch.set_num_threads(args.threads)
    vectors = np.load(args.embeddings)
    k = min(args.k, len(vectors) - 1)
    if k < 1:
        raise SystemExit("error: retrieval needs at least two users")
    method = args.method
    if method == "auto":
        method = "exact" if len(vectors) <= args.exact_max_users else "hnsw"
    return vectors, k, method


def finish(vectors: np.ndarray, found: np.ndarray, method: str, seconds: float, args, out: Path, report: Path, **extra):
    """Measures the recall on a sample, logs it, writes the 1-based neighbours and the report."""
    recall = recall_against_exact(vectors, found, args.recall_sample, args.seed)
    k = found.shape[1]
    log.info(
        "%s search: top-%d neighbours for %d users in %.1f s; recall@%d against exact search on a sample: %.4f",
        method,
        k,
        len(vectors),
        seconds,
        k,
        recall,
    )
    save_npy((found + 1).astype(np.int32), out)
    write_json(
        {
            "method": method,
            "deterministic": method == "exact" or args.deterministic == "true",
            "k": k,
            "users": len(vectors),
            "seconds": round(seconds, 3),
            "recall_vs_exact": round(recall, 6),
            "recall_sample": min(args.recall_sample, len(vectors)),
            **extra,
        },
        report,
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="pipeline retrieve", description=__doc__)
    parser.add_argument("--embeddings", required=True, type=Path)
    parser.add_argument("--out-neighbours", required=True, type=Path)
    parser.add_argument("--out-report", required=True, type=Path)
    search_options(parser)
    args = parser.parse_args(argv)
    vectors, k, method = load(args)
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
    finish(vectors, found, method, time.perf_counter() - started, args, args.out_neighbours, args.out_report)


def index_main(argv: list[str] | None = None) -> None:
    """`pipeline retrieve-index`: the method, and for hnsw the index (empty for exact search)."""
    parser = argparse.ArgumentParser(prog="pipeline retrieve-index", description=index_main.__doc__)
    parser.add_argument("--embeddings", required=True, type=Path)
    parser.add_argument("--out-index", required=True, type=Path)
    parser.add_argument("--out-plan", required=True, type=Path)
    search_options(parser)
    args = parser.parse_args(argv)
    vectors, k, method = load(args)
    started = time.perf_counter()
    with atomic_path(args.out_index) as tmp:
        if method == "hnsw":
            index = hnsw_index(
                vectors, args.hnsw_m, args.hnsw_ef_construction, args.seed, args.threads, args.deterministic == "true"
            )
            index.save_index(str(tmp))
        else:
            tmp.write_bytes(b"")
    seconds = time.perf_counter() - started
    log.info("%s search over %d users; index built in %.1f s", method, len(vectors), seconds)
    write_json({"method": method, "k": k, "users": len(vectors), "seconds": round(seconds, 3)}, args.out_plan)


def shard_main(argv: list[str] | None = None) -> None:
    """`pipeline retrieve-shard`: the neighbours of one slice of the users (0-based, as npy)."""
    parser = argparse.ArgumentParser(prog="pipeline retrieve-shard", description=shard_main.__doc__)
    parser.add_argument("--embeddings", required=True, type=Path)
    parser.add_argument("--index", required=True, type=Path)
    parser.add_argument("--plan", required=True, type=Path)
    parser.add_argument("--out-neighbours", required=True, type=Path)
    parser.add_argument("--shard", type=int, required=True)
    parser.add_argument("--shards", type=int, required=True)
    parser.add_argument("--hnsw-ef-search", type=int, required=True)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    plan, vectors = read_json(args.plan), np.load(args.embeddings)
    start, stop = shard_bounds(len(vectors), args.shard, args.shards, BLOCK)
    started = time.perf_counter()
    if start == stop:  # fewer blocks of users than shards
        found = np.empty((0, plan["k"]), np.int64)
    elif plan["method"] == "exact":
        found = exact_neighbours(vectors, plan["k"], np.arange(start, stop))
    else:
        import hnswlib

        index = hnswlib.Index(space="cosine", dim=vectors.shape[1])
        index.load_index(str(args.index), max_elements=len(vectors))
        found = hnsw_query(index, vectors[start:stop], plan["k"], args.hnsw_ef_search, args.threads, start)
    seconds = time.perf_counter() - started
    log.info("shard %d of %d: users %d..%d in %.1f s", args.shard, args.shards, start + 1, stop, seconds)
    save_npy(found.astype(np.int64), args.out_neighbours)
    write_json({"rows": [start, stop], "seconds": round(seconds, 3)}, args.out_neighbours.with_suffix(".json"))


def merge_main(argv: list[str] | None = None) -> None:
    """`pipeline retrieve-merge`: the shards' neighbours in order, with the unsharded outputs."""
    parser = argparse.ArgumentParser(prog="pipeline retrieve-merge", description=merge_main.__doc__)
    parser.add_argument("shards", nargs="+", type=Path)
    parser.add_argument("--embeddings", required=True, type=Path)
    parser.add_argument("--plan", required=True, type=Path)
    parser.add_argument("--out-neighbours", required=True, type=Path)
    parser.add_argument("--out-report", required=True, type=Path)
    search_options(parser)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    plan, vectors = read_json(args.plan), np.load(args.embeddings)
    found = np.concatenate([np.load(path) for path in args.shards])
    if len(found) != len(vectors):
        raise SystemExit(f"error: the shards hold {len(found)} users, the embeddings {len(vectors)}")
    seconds = plan["seconds"] + sum(read_json(path.with_suffix(".json"))["seconds"] for path in args.shards)
    finish(vectors, found, plan["method"], seconds, args, args.out_neighbours, args.out_report, shards=len(args.shards))
