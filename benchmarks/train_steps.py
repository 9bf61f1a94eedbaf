"""What a training step costs as the catalogue grows, with and without `train.sparse_embeddings`.

    python benchmarks/train_steps.py --users 20000 200000 1000000 --threads 1

On scale.py's synthetic data (Beauty's shape: about 0.19 items per user, so 191k items at 1M
users), SASRec plain (`base`) and LLM-ESR, each trained for `--epochs` epochs cut to `--batches`
batches (`train.batches_per_epoch`) with Adam (dense) and with `train.sparse_embeddings`
(LazyAdam), one after the other in this process; the last epoch is timed (LazyAdam's catch-up
costs more once rows have moments; its once-per-epoch flush of the whole table is included,
spread over `--batches` batches rather than a whole epoch's, so the figure is an upper bound).
The LLM tables, PCA and neighbours are random (a step's cost does not depend on their
values). Reports seconds per batch (without the once-per-epoch work, e.g. LLM-ESR's teacher
cache), an epoch extrapolated as batches x seconds per batch, and the growth exponent of that
epoch between sizes. Prints a table and writes JSON.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import numpy as np
import polars as pl
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.scale import BATCH_SIZE, synthetic_sequences  # noqa: E402
from pipeline.config import default_config  # noqa: E402
from pipeline.data import Sequences  # noqa: E402
from pipeline.models.method import Artifacts  # noqa: E402
from pipeline.train import TrainOptions, train  # noqa: E402

LLM_DIM, NEIGHBOURS = 384, 10  # MiniLM's width; retrieve.k


def step_seconds(users: int, variant: str, sparse: bool, epochs: int, batches: int, seed: int) -> dict:
    """`epochs` cut epochs of `variant` at `users` users: the last one's seconds per batch and start work."""
    rng = np.random.default_rng(seed)
    lengths, picks, n_items = synthetic_sequences(users, rng)
    frame = pl.DataFrame({"user": np.repeat(np.arange(1, users + 1), lengths), "item": picks})
    sequences = Sequences.from_interactions(frame, n_items)
    config = default_config()
    model = {**config["model"], "llmesr": {**config["model"]["llmesr"], "enabled": variant == "llmesr"}}
    options = {k: v for k, v in config["train"].items() if k != "seeds"}
    options.update(seed=42, max_epochs=epochs, patience=epochs, batches_per_epoch=batches, device="cpu")
    options.update(sparse_embeddings=sparse)
    options.update(valid_users=1000)  # validation is not what is timed
    hidden = model["hidden_size"]
    artifacts = Artifacts(
        rng.normal(size=(n_items, LLM_DIM)).astype(np.float32),
        rng.normal(size=(n_items, hidden)).astype(np.float32),
        rng.integers(1, users + 1, size=(users, NEIGHBOURS)),
        stats={"ts_user": 9, "ts_item": 20},
    )
    candidates = rng.integers(1, n_items + 1, size=(users, 101)).astype(np.int32)
    _, history = train("sasrec", model, TrainOptions.of(options), sequences, candidates, torch.device("cpu"), artifacts)
    epoch = history["epochs"][-1]
    per_batch = (epoch["train_seconds"] - epoch["epoch_start_seconds"]) / epoch["steps"]
    return {
        "items": n_items,
        "seconds_per_batch": round(per_batch, 4),
        "epoch_start_seconds": epoch["epoch_start_seconds"],
        "epoch_steps_seconds_extrapolated": round(per_batch * math.ceil(users / BATCH_SIZE), 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, nargs="+", default=[20000, 200000, 1000000])
    parser.add_argument("--variants", nargs="+", choices=["base", "llmesr"], default=["base", "llmesr"])
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--batches", type=int, default=200)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks/results/train_steps.json")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    rows = []
    for users in args.users:
        for variant in args.variants:
            for sparse in (False, True):
                row = {"users": users, "variant": variant, "sparse_embeddings": sparse}
                row |= step_seconds(users, variant, sparse, args.epochs, args.batches, args.seed)
                print(json.dumps(row), flush=True)
                rows.append(row)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps({"threads": args.threads, "epochs": args.epochs, "batches": args.batches, "rows": rows}, indent=2)
        + "\n"
    )

    print(f"\n| variant, optimizer | {' | '.join(f'{u:,} users' for u in args.users)} | exponent (last two sizes) |")
    print("|---|" + "---|" * len(args.users) + "---|")
    for variant in args.variants:
        for sparse in (False, True):
            mine = [r for r in rows if r["variant"] == variant and r["sparse_embeddings"] == sparse]
            cells = [
                f"{r['seconds_per_batch']:.3f} s/batch, epoch {r['epoch_steps_seconds_extrapolated']:.0f} s"
                for r in mine
            ]
            growth = "-"
            if len(mine) > 1:
                small, large = mine[-2], mine[-1]
                ratio = large["epoch_steps_seconds_extrapolated"] / small["epoch_steps_seconds_extrapolated"]
                growth = f"{math.log(ratio) / math.log(large['users'] / small['users']):.2f}"
            name = f"{variant}, {'sparse tables, LazyAdam' if sparse else 'Adam'}"
            print(f"| {name} | {' | '.join(cells)} | {growth} |")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
