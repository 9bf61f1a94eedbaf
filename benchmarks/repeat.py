"""Do two CPU trainings with the same inputs, config, seed and thread count repeat bit for bit?

    python benchmarks/repeat.py                       # Beauty sequences, LLM-ESR-SASRec, 2 epochs
    python benchmarks/repeat.py --load 1 --epochs 3   # the second run beside a busy process

Each run is its own process (as a pipeline job is). The inputs are the Beauty sequences of
../shared/data/ready/beauty with seeded random stand-ins for the LLM tables and similar users
(the same operations as the real ones; no embedding step needed). `--load N` runs the second
training while N other processes keep the cores busy with matrix products, as a second job or
a test run would. Then the default encoder embeds the same 400 item texts in two processes.
Prints a table and writes benchmarks/results/repeat.json: the sha256 of every input, each
run's per-epoch validation figures, the first parameters that differ, and the embedding check.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import multiprocessing
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data" / "ready" / "beauty" / "sequences.txt"
sys.path.insert(0, str(REPO))


def inputs(folder: Path) -> dict[str, str]:
    """Writes the training inputs once; returns their sha256 by name."""
    import polars as pl

    rows = [line.split() for line in SHARED.read_text().splitlines() if line.strip()]
    users = np.repeat(np.arange(1, len(rows) + 1), [len(r) - 1 for r in rows]).astype(np.int32)
    items = np.array([int(i) for r in rows for i in r[1:]], dtype=np.int32)
    n_items = int(items.max())
    pl.DataFrame({"user": users, "item": items}).write_parquet(folder / "interactions.parquet")
    pl.DataFrame({"item": np.arange(1, n_items + 1, dtype=np.int32)}).write_parquet(folder / "items.parquet")
    rng = np.random.default_rng(0)
    llm = rng.normal(size=(n_items, 384))
    np.save(
        folder / "llm.npy", (llm / np.linalg.norm(llm, axis=1, keepdims=True)).astype(np.float32)
    )  # unit rows, as MiniLM's
    np.save(folder / "pca.npy", (0.1 * rng.normal(size=(n_items, 64))).astype(np.float32))
    np.save(folder / "neighbours.npy", rng.integers(1, len(rows) + 1, (len(rows), 100)).astype(np.int32))
    lengths = np.bincount(users)[1:]
    ends = np.cumsum(lengths)
    valid = np.concatenate([items[ends - 2][:, None], rng.integers(1, n_items + 1, (len(rows), 100))], axis=1)
    np.savez(folder / "candidates.npz", valid=valid.astype(np.int32), test=valid.astype(np.int32))
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir()) if p.is_file()}


def one_run(folder: Path, epochs: int, threads: int, out: Path) -> None:
    """The train stage's own command, as a pipeline job runs it."""
    from pipeline.config import default_config

    config = default_config()
    options = {k: v for k, v in config["train"].items() if k not in ("seed", "seeds")}
    options.update(seed=42, max_epochs=epochs, patience=epochs, device="cpu")
    out.mkdir(parents=True, exist_ok=True)
    command = [
        sys.executable,
        "-m",
        "pipeline",
        "train",
        "--interactions",
        str(folder / "interactions.parquet"),
        "--item-table",
        str(folder / "items.parquet"),
        "--candidates",
        str(folder / "candidates.npz"),
        "--backbone",
        "sasrec",
        "--model",
        json.dumps(config["model"]),
        "--train",
        json.dumps(options),
        "--llm-items",
        str(folder / "llm.npy"),
        "--pca-items",
        str(folder / "pca.npy"),
        "--neighbours",
        str(folder / "neighbours.npy"),
        "--out-checkpoint",
        str(out / "model.pt"),
        "--out-history",
        str(out / "history.json"),
        "--threads",
        str(threads),
    ]
    subprocess.run(command, check=True, env=dict(os.environ, PYTHONPATH=str(REPO)), capture_output=True)


def busy(stop_at: float) -> None:
    import torch

    torch.set_num_threads(1)
    a = torch.randn(512, 512)
    while time.time() < stop_at:
        a = (a @ a).tanh()


def embed_twice(folder: Path, threads: int, count: int = 400) -> dict:
    """The default encoder over the same item texts in two processes: equal bit for bit?"""
    import polars as pl

    titles = pl.read_csv(SHARED.parent / "items.tsv", separator="\t", quote_char=None, infer_schema=False)["title"]
    texts = [f"The beauty item has following attributes: \n name is {t}." for t in titles.head(count).fill_null("")]
    (folder / "texts.json").write_text(json.dumps(texts))
    code = (
        "import json, sys, numpy as np, torch; torch.set_num_threads(int(sys.argv[3])); "
        "from pipeline.embed import encode; "
        "np.save(sys.argv[2], encode(json.loads(open(sys.argv[1]).read()), 'default', 64, 'cpu'))"
    )
    outputs = [folder / f"vectors_{run}.npy" for run in ("first", "second")]
    for out in outputs:
        subprocess.run(
            [sys.executable, "-c", code, str(folder / "texts.json"), str(out), str(threads)],
            check=True,
            env=dict(os.environ, PYTHONPATH=str(REPO)),
            capture_output=True,
        )
    first, second = (np.load(out) for out in outputs)
    return {
        "texts": len(texts),
        "identical": bool(np.array_equal(first, second)),
        "largest_difference": float(np.abs(first - second).max()),
    }


def compare(first: Path, second: Path) -> dict:
    import torch

    ours = torch.load(first / "model.pt", weights_only=True)["state_dict"]
    theirs = torch.load(second / "model.pt", weights_only=True)["state_dict"]
    differing = [name for name in ours if not torch.equal(ours[name], theirs[name])]
    largest = max((float((ours[n] - theirs[n]).abs().max()) for n in differing), default=0.0)
    histories = [json.loads((run / "history.json").read_text())["epochs"] for run in (first, second)]
    figures = [[(e["loss"], e["valid_NDCG@10"]) for e in h] for h in histories]
    return {
        "identical": not differing,
        "differing_parameters": differing[:10],
        "n_differing": len(differing),
        "largest_difference": largest,
        "epochs": figures,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--load", type=int, default=0, help="busy processes beside the second run")
    parser.add_argument("--workdir", type=Path, default=REPO / "benchmarks" / "results" / "work-repeat")
    args = parser.parse_args()

    args.workdir.mkdir(parents=True, exist_ok=True)
    data = args.workdir / "inputs"
    data.mkdir(exist_ok=True)
    hashes = inputs(data)
    one_run(data, args.epochs, args.threads, args.workdir / "first")
    loaders = []
    if args.load:
        stop_at = time.time() + 3600
        loaders = [multiprocessing.Process(target=busy, args=(stop_at,), daemon=True) for _ in range(args.load)]
        for process in loaders:
            process.start()
    try:
        one_run(data, args.epochs, args.threads, args.workdir / "second")
    finally:
        for process in loaders:
            process.terminate()
    result = {
        "epochs": args.epochs,
        "threads": args.threads,
        "load_beside_second": args.load,
        "inputs_sha256": hashes,
        **compare(args.workdir / "first", args.workdir / "second"),
        "embedding": embed_twice(data, args.threads),
    }
    out = REPO / "benchmarks" / "results" / "repeat.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(
        f"LLM-ESR-SASRec on the Beauty sequences, {args.epochs} epochs, {args.threads} threads, "
        f"{args.load} busy processes beside the second run"
    )
    print(f"{'epoch':<6}{'loss first':>14}{'loss second':>14}{'NDCG first':>12}{'NDCG second':>13}")
    for epoch, ((loss_a, ndcg_a), (loss_b, ndcg_b)) in enumerate(zip(*result["epochs"]), start=1):
        print(f"{epoch:<6}{loss_a:>14.8f}{loss_b:>14.8f}{ndcg_a:>12.6f}{ndcg_b:>13.6f}")
    print(
        f"state dicts identical: {result['identical']} ({result['n_differing']} parameters differ, "
        f"largest difference {result['largest_difference']:.3g})"
    )
    embedding = result["embedding"]
    print(
        f"embedding {embedding['texts']} texts twice (separate processes): identical {embedding['identical']} "
        f"(largest difference {embedding['largest_difference']:.3g})"
    )
    print(f"written to {out}")


if __name__ == "__main__":
    main()
