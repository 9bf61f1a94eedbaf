"""Embedding backends on CPU: prompts per second of `embed.backend` torch (sentence-transformers
as it is), torch-bf16, onnx and onnx-int8 on the same prompts, and how close each one's vectors
are to torch's (cosine per prompt: mean and minimum; the largest absolute difference).

    python benchmarks/embed_backends.py --prompts results/beauty/prompts/users.parquet --count 2000
    python benchmarks/embed_backends.py --prompts ... --backends torch torch-bf16   # without `.[onnx]`
The prompts are a `prompts` stage artifact (here Beauty's user prompts, the long ones). Each
backend encodes the same sample `--rounds` times, backends interleaved round by round, so that
load from other processes falls on all of them alike; the table gives the best round's rate.
Prints a table and writes benchmarks/results/embed_backends.json.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import polars as pl
import torch

from pipeline.embed import BACKENDS, encode

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--prompts", required=True, type=Path)
    parser.add_argument("--count", type=int, default=2000, help="prompts sampled (seed 0); 0 = all")
    parser.add_argument("--model", default="default")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument(
        "--backends", nargs="+", choices=BACKENDS, default=list(BACKENDS), help="torch, the reference, always runs"
    )
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks/results/embed_backends.json")
    args = parser.parse_args()

    backends = ["torch", *(backend for backend in args.backends if backend != "torch")]
    torch.set_num_threads(args.threads)
    texts = pl.read_parquet(args.prompts)["text"].to_list()
    if args.count and args.count < len(texts):
        rows = np.sort(np.random.default_rng(0).choice(len(texts), args.count, replace=False))
        texts = [texts[row] for row in rows]
    seconds: dict[str, list[float]] = {backend: [] for backend in backends}
    vectors: dict[str, np.ndarray] = {}
    for round_ in range(args.rounds):
        for backend in backends:
            started = time.perf_counter()
            vectors[backend] = encode(texts, args.model, args.batch_size, "cpu", backend)
            seconds[backend].append(time.perf_counter() - started)
            print(f"round {round_ + 1}: {backend} {len(texts) / seconds[backend][-1]:.1f} prompts/s", flush=True)

    exact = vectors["torch"]
    rows = []
    for backend in backends:
        v = vectors[backend]
        cosine = (v * exact).sum(1) / np.linalg.norm(v, axis=1) / np.linalg.norm(exact, axis=1)
        best = min(seconds[backend])
        rows.append(
            {
                "backend": backend,
                "prompts_per_s": round(len(texts) / best, 2),
                "speedup": round(min(seconds["torch"]) / best, 3),
                "seconds": [round(s, 2) for s in seconds[backend]],
                "cosine_mean": float(cosine.mean()),
                "cosine_min": float(cosine.min()),
                "max_abs_diff": float(np.abs(v - exact).max()),
            }
        )
    print(f"\n{len(texts)} prompts from {args.prompts}, {args.threads} threads, best of {args.rounds} rounds")
    print("| backend | prompts/s | vs torch | cosine to torch: mean / min | max abs diff |")
    print("|---|---|---|---|---|")
    for row in rows:
        print(
            f"| {row['backend']} | {row['prompts_per_s']:.1f} | {row['speedup']:.2f}x | "
            f"{row['cosine_mean']:.5f} / {row['cosine_min']:.5f} | {row['max_abs_diff']:.1e} |"
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    record = {
        "prompts": str(args.prompts),
        "count": len(texts),
        "mean_chars": round(float(np.mean([len(t) for t in texts])), 1),
        "threads": args.threads,
        "batch_size": args.batch_size,
        "model": args.model,
        "rounds": args.rounds,
        "backends": rows,
    }
    args.out.write_text(json.dumps(record, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
