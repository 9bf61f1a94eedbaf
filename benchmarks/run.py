"""Benchmark the pipeline on a real dataset and the distance to what the hardware allows.

    python benchmarks/run.py --dataset beauty      # needs ../shared/data/ready/beauty

Steps (each can be skipped):
1. pipeline: the Snakemake workflow from ingest to both SASRec metrics files (default
   hyperparameters, seed 42, a fresh work folder and no embedding cache) -> pipeline_wall_s,
   seconds and peak memory per job, embedding and evaluation speed, retrieval time;
2. embed: sentence-transformers called directly vs our embedding stage on the same texts;
3. train: seconds per epoch (mean of --epochs epochs) for every backbone, plain and LLM-ESR
   (or any --variants of config.yaml, e.g. `authorsbase authors`, the authors' computation),
   and the FLOPs of one epoch counted by torch's FlopCounterMode -> train_gflops;
4. retrieve: exact search vs hnswlib on the user embeddings (time and recall@100);
5. eval: users scored per second under both protocols by the trained seed-42 models of step 1
   (or of an earlier run in --workdir), on a quiet machine;
6. matmul: this machine's float32 matrix-product rate (matmul_gflops);
7. compile: the train step's loop eager vs with torch.compile (two epochs each, the first
   carrying the compilation) -> torch_compile: why training runs eager;
8. losses: seconds per epoch and peak memory of each training loss (bce, gbce and
   sampled_softmax with 256 negatives, ce over the whole catalogue; --losses for some) for --loss-models, each in
   a process of its own so that its peak RSS is its own -> loss_epoch_s, loss_peak_rss_mb.
Prints a table and writes benchmarks/results/<dataset>.json.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import yaml

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"
sys.path.insert(0, str(REPO))

DATASETS = {
    "beauty": {
        "format": "sequences",
        "sequences": str(SHARED / "ready" / "beauty" / "sequences.txt"),
        "items": str(SHARED / "ready" / "beauty" / "items.tsv"),
        # The paper's Beauty prompt. ready/beauty has no descriptions: every item reads "unknown"
        # there, as the authors' notebook writes for a missing one.
        "item_prompt": [
            "The beauty item has following attributes: \n name is {title}; brand is {brand}; price is {price}. \n",
            {"optional": "The item has following features: {categories}. \n"},
            "The item has following descriptions: unknown. \n",
        ],
        "user_prompt": "The user has visited following fashions: \n{items} \nplease conclude the user's perference.",
        "user_item_column": "title",
    },
    "yelp": {
        "format": "sequences",
        "sequences": str(SHARED / "ready" / "yelp" / "sequences.txt"),
        "items": str(SHARED / "ready" / "yelp" / "items.tsv"),
        "item_prompt": "The point of interest has following attributes: \n name is {name}; category is {categories}; "
        "city is {city}.",
        "user_item_column": "name",
    },
}
BACKBONES = ("sasrec", "gru4rec", "bert4rec")


def snakemake(workdir: Path, *args: str) -> None:
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    subprocess.run(
        [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), *args], cwd=workdir, env=env, check=True
    )


def run_pipeline(workdir: Path, dataset: str, cores: int, extra_config: dict, set_threads: list[str]) -> float:
    config = {
        "datasets": {dataset: DATASETS[dataset]},
        "targets": {"datasets": [dataset]},
        "train": {"seed": 42},
        "embed": {"cache": None},
    }
    for key, value in extra_config.items():
        config.setdefault(key, {}).update(value)
    (workdir / "benchmark.yaml").write_text(yaml.safe_dump(config))
    targets = [f"results/{dataset}_sasrec_metrics.json", f"results/{dataset}_sasrec_base_metrics.json"]
    started = time.perf_counter()
    threads = ["--set-threads", *set_threads] if set_threads else []
    snakemake(workdir, "--cores", str(cores), *targets, *threads, "--configfile", "benchmark.yaml")
    return time.perf_counter() - started


def pipeline_figures(workdir: Path, dataset: str) -> dict:
    import polars as pl

    from pipeline.embed import load_encoder

    results = workdir / "results"
    stages = {}
    for path in sorted((results / "benchmarks" / dataset).glob("*.tsv")):
        with open(path) as handle:
            row = next(csv.DictReader(handle, delimiter="\t"))
        stages[path.stem] = {
            "s": float(row["s"]),
            "max_rss_mb": None if row["max_rss"] == "-" else float(row["max_rss"]),
        }
    embed = [json.loads((results / dataset / "embed" / f"{kind}.json").read_text()) for kind in ("items", "users")]
    runs = {}
    for variant in ("base", "llmesr"):
        run = results / dataset / "runs" / f"sasrec_{variant}_seed42"
        history = json.loads((run / "history.json").read_text())
        metrics = json.loads((run / "metrics.json").read_text())
        runs[f"sasrec_{variant}"] = {
            "train_epoch_s": history["mean_epoch_seconds"],
            "epochs_run": history["epochs_run"],
            "best_epoch": history["best_epoch"],
            "eval_users_per_s": metrics["eval_users_per_s"],
            "groups": metrics["groups"],
            "full_ranking": metrics["full_ranking"]["groups"],
        }
    encoded, seconds = sum(e["encoded"] for e in embed), sum(e["seconds"] for e in embed)
    texts = [
        text
        for kind in ("items", "users")  # each distinct prompt is encoded once per kind
        for text in pl.read_parquet(results / dataset / "prompts" / f"{kind}.parquet")["text"].unique().to_list()
    ]
    embed_gflop = encoder_gflop(load_encoder("default", "cpu"), texts)
    return {
        "stages": stages,
        "peak_rss_mb": max(s["max_rss_mb"] or 0 for s in stages.values()),
        "pipeline_embed_sentences_per_s": round(encoded / seconds, 1),
        "pipeline_embed_gflop": round(embed_gflop, 1),
        "pipeline_embed_gflops": round(embed_gflop / seconds, 1),
        "retrieve_s": json.loads((results / dataset / "retrieve" / "report.json").read_text())["seconds"],
        "eval_users_per_s": runs["sasrec_llmesr"]["eval_users_per_s"],
        "pipeline_runs": runs,
    }


def embed_figures(workdir: Path, dataset: str, sample: int) -> dict:
    import polars as pl
    import torch

    from pipeline.embed import encode_cached, load_encoder

    rng = np.random.default_rng(0)
    texts = []
    for kind in ("items", "users"):
        prompts = pl.read_parquet(workdir / "results" / dataset / "prompts" / f"{kind}.parquet")["text"].to_list()
        texts += [prompts[i] for i in rng.choice(len(prompts), size=min(sample // 2, len(prompts)), replace=False)]
    torch.set_num_threads(os.cpu_count())
    encoder = load_encoder("default", "cpu")
    encoder.encode(texts[:64], batch_size=64)  # warm-up
    started = time.perf_counter()
    encoder.encode(texts, batch_size=64, convert_to_numpy=True)
    raw = len(texts) / (time.perf_counter() - started)
    _, record = encode_cached(texts, "default", 64, "cpu", None)
    ours = record["sentences_per_s"]
    return {
        "embed_sentences_per_s": ours,
        "embed_raw_sentences_per_s": round(raw, 1),
        "embed_ratio_to_raw": round(ours / raw, 3),
        "embed_sample": len(texts),
        "embed_gflops": round(encoder_gflop(encoder, texts) / record["seconds"], 1),
    }


def encoder_gflop(encoder, texts: list[str]) -> float:
    """GFLOP of a BERT-style sentence encoder over `texts`, each at its own (truncated) token
    length n: per layer 2*(4*d*d + 2*d*ff)*n for the projections and the feed-forward block
    plus 4*d*n*n for attention. Padding is not counted: it is not useful work."""
    config = encoder[0].auto_model.config
    d, ff, layers = config.hidden_size, config.intermediate_size, config.num_hidden_layers
    tokenized = encoder.tokenizer(texts, truncation=True, max_length=encoder.max_seq_length)["input_ids"]
    n = np.array([len(ids) for ids in tokenized], dtype=np.float64)
    return float(layers * (2 * (4 * d * d + 2 * d * ff) * n + 4 * d * n**2).sum()) / 1e9


def training_data(workdir: Path, dataset: str) -> tuple[dict, object, np.ndarray, dict]:
    """(config, sequences, validation candidates, LLM-ESR's arrays) from a pipeline run in `workdir`."""
    import polars as pl

    from pipeline.config import default_config
    from pipeline.data import Sequences

    config = default_config()
    results = workdir / "results" / dataset
    items = pl.read_parquet(results / "ingest" / "items.parquet")
    sequences = Sequences.from_interactions(pl.read_parquet(results / "ingest" / "interactions.parquet"), items.height)
    valid = np.load(results / "split" / "candidates.npz")["valid"]
    arrays = {
        "llm_items": np.load(results / "embed" / "items.npy"),
        "pca_items": np.load(results / "pca" / "items.npy"),
        "neighbours": np.load(results / "retrieve" / "neighbours.npy"),
        "llm_users": np.load(results / "embed" / "users.npy"),
        "stats": json.loads((workdir / "results" / f"{dataset}_stats.json").read_text())["thresholds"],
        "base": results / "runs",
    }
    return config, sequences, valid, arrays


def train_run(
    config: dict,
    backbone: str,
    variant: str,
    epochs: int,
    sequences,
    valid: np.ndarray,
    arrays: dict,
    train_extra: dict | None = None,
) -> dict:
    """The pipeline's training loop for `epochs` epochs (no early stopping) with the default
    hyperparameters, the variant's overrides from config.yaml (then `train_extra`) and seed 42;
    returns its history."""
    import torch

    from pipeline.io import load_torch
    from pipeline.models import method_inputs
    from pipeline.models.method import Artifacts
    from pipeline.schema import deep_merge, variant_parts
    from pipeline.train import TrainOptions, train

    override, train_override = variant_parts(config["variants"][variant])
    options = deep_merge(deep_merge(config["train"], train_override), train_extra or {})
    options = {k: v for k, v in options.items() if k not in ("seed", "seeds")}
    model = deep_merge(config["model"], override)
    needs = method_inputs(model)
    given = {
        name: arrays[name] for name in ("llm_items", "pca_items", "neighbours", "llm_users", "stats") if name in needs
    }
    if "base" in needs:  # CITIES: the seed-42 base run of this work folder
        base = arrays["base"] / f"{backbone}_base_seed42" / "model.pt"
        given["base"] = load_torch(base, "base model checkpoint")["state_dict"]
    options = TrainOptions.of({**options, "seed": 42, "max_epochs": epochs, "patience": epochs})
    _, history = train(backbone, model, options, sequences, valid, torch.device("cpu"), Artifacts(**given))
    return history


def train_figures(workdir: Path, dataset: str, epochs: int, variants: list[str], only: list[str]) -> dict:
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    config, sequences, valid, arrays = training_data(workdir, dataset)
    torch.set_num_threads(os.cpu_count())
    figures = {}
    for backbone in BACKBONES:
        for variant in variants:
            name = f"{backbone}_{variant}"
            if only and name not in only:
                continue
            seconds = train_run(config, backbone, variant, epochs, sequences, valid, arrays)["mean_epoch_seconds"]
            with FlopCounterMode(display=False) as counter:
                train_run(config, backbone, variant, 1, sequences, valid, arrays)
            flops = counter.get_total_flops()
            figures[name] = {
                "train_epoch_s": seconds,
                "epoch_gflop": round(flops / 1e9, 2),
                "train_gflops": round(flops / 1e9 / seconds, 2),
            }
            print(f"  {name}: {seconds:.1f} s/epoch, {flops / 1e9:.1f} GFLOP/epoch", flush=True)
    return figures


def compile_figures(workdir: Path, dataset: str, models: list[str]) -> dict:
    """The train step's loop, eager and with the model's forward compiled by torch.compile
    (dynamic shapes, since batches are trimmed to their longest sequence): two epochs each, so
    epoch 1 carries the compilation and epoch 2 shows the steady speed."""
    from unittest import mock

    import torch

    import pipeline.train

    config, sequences, valid, arrays = training_data(workdir, dataset)
    torch.set_num_threads(os.cpu_count())
    build_model = pipeline.train.build_model

    def compiled_model(*args, **kwargs):
        model = build_model(*args, **kwargs)
        model.sequence_states = torch.compile(model.sequence_states, dynamic=True)
        return model

    figures = {}
    for name in models:
        backbone, variant = name.split("_")
        runs = {}
        for mode in ("eager", "compiled"):
            with mock.patch.object(
                pipeline.train, "build_model", compiled_model if mode == "compiled" else build_model
            ):
                started = time.perf_counter()
                epochs = train_run(config, backbone, variant, 2, sequences, valid, arrays)["epochs"]
                runs[mode] = ([e["train_seconds"] for e in epochs], round(time.perf_counter() - started, 1))
        (eager, eager_wall), (compiled, compiled_wall) = runs["eager"], runs["compiled"]
        # Both walls include the two validation passes, which run the compiled forward too.
        figures[name] = {
            "eager_epoch_s": eager,
            "compiled_epoch_s": compiled,
            "eager_two_epochs_wall_s": eager_wall,
            "compiled_two_epochs_wall_s": compiled_wall,
            "steady_speedup": round(eager[1] / compiled[1], 3),
        }
        print(
            f"  {name}: eager {eager[0]:.1f} / {eager[1]:.1f} s, compiled {compiled[0]:.1f} / {compiled[1]:.1f} s "
            f"per epoch (epoch 1 / 2)",
            flush=True,
        )
    return figures


# The losses as the ranking variants of config.yaml train them (gSASRec's 256 negatives, t = 0.75).
LOSS_SETTINGS = {
    "bce": {"loss": "bce"},
    "gbce": {"loss": "gbce", "negatives": 256, "gbce_t": 0.75},
    "sampled_softmax": {"loss": "sampled_softmax", "negatives": 256},
    "ce": {"loss": "ce"},
}


def one_loss(workdir: Path, dataset: str, name: str, loss: str, epochs: int) -> dict:
    """Runs in a child process: `epochs` epochs of model `name` with `loss`; its s/epoch and peak RSS."""
    import resource

    import torch

    config, sequences, valid, arrays = training_data(workdir, dataset)
    torch.set_num_threads(os.cpu_count())
    backbone, variant = name.split("_")
    seconds = train_run(config, backbone, variant, epochs, sequences, valid, arrays, train_extra=LOSS_SETTINGS[loss])[
        "mean_epoch_seconds"
    ]
    return {"epoch_s": seconds, "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}


def loss_figures(workdir: Path, dataset: str, epochs: int, models: list[str], losses: list[str]) -> dict:
    figures = {}
    for name in models:
        for loss in losses:
            child = subprocess.run(
                [
                    sys.executable,
                    __file__,
                    "--dataset",
                    dataset,
                    "--workdir",
                    str(workdir),
                    "--epochs",
                    str(epochs),
                    "--loss-child",
                    f"{name}:{loss}",
                ],
                check=True,
                stdout=subprocess.PIPE,
                text=True,
            )  # its errors reach the console
            figures.setdefault(name, {})[loss] = json.loads(child.stdout.strip().splitlines()[-1])
            print(
                f"  {name} {loss}: {figures[name][loss]['epoch_s']:.1f} s/epoch, "
                f"peak {figures[name][loss]['peak_rss_mb']:.0f} MB",
                flush=True,
            )
    return figures


def retrieve_figures(workdir: Path, dataset: str) -> dict:
    import torch

    from pipeline.retrieve import exact_neighbours, hnsw_neighbours, recall_against_exact

    torch.set_num_threads(os.cpu_count())
    vectors = np.load(workdir / "results" / dataset / "embed" / "users.npy")
    started = time.perf_counter()
    exact_neighbours(vectors, 100)
    exact_s = time.perf_counter() - started
    started = time.perf_counter()
    found = hnsw_neighbours(vectors, 100, 32, 200, 200, 42, os.cpu_count())
    hnsw_s = time.perf_counter() - started
    return {
        "users": len(vectors),
        "exact_s": round(exact_s, 2),
        "hnsw_s": round(hnsw_s, 2),
        "hnsw_recall_at_100": round(recall_against_exact(vectors, found, 1000, 42), 4),
    }


def eval_figures(workdir: Path, dataset: str) -> dict:
    import torch

    from pipeline.checkpoints import load_for_scoring
    from pipeline.data import TEST_INPUT_CUT
    from pipeline.scoring import full_ranking, representations, sampled_ranks

    results = workdir / "results" / dataset
    candidates = np.load(results / "split" / "candidates.npz")["test"]
    figures = {}
    for run in sorted((results / "runs").glob("*_seed42")):
        if not (run / "model.pt").exists():
            continue
        model, state, _, sequences, device = load_for_scoring(
            run / "model.pt",
            results / "ingest" / "interactions.parquet",
            results / "ingest" / "items.parquet",
            "cpu",
            os.cpu_count(),
        )
        with torch.no_grad():
            started = time.perf_counter()
            users, items = representations(model, sequences, TEST_INPUT_CUT, state["model"]["max_len"], device)
            represent_s = time.perf_counter() - started
            started = time.perf_counter()
            sampled_ranks(users, items, candidates)
            sampled_s = time.perf_counter() - started + represent_s
            started = time.perf_counter()
            full_ranking(users, items, sequences, TEST_INPUT_CUT, candidates[:, 0], 20)
            full_s = time.perf_counter() - started + represent_s
        n = len(candidates)
        figures[run.name.removesuffix("_seed42")] = {
            "sampled": round(n / sampled_s, 1),
            "full_ranking": round(n / full_s, 1),
        }
    return figures


def matmul_gflops(size: int = 4096, repeats: int = 5) -> float:
    import torch

    torch.set_num_threads(os.cpu_count())
    a, b = torch.randn(size, size), torch.randn(size, size)
    a @ b
    started = time.perf_counter()
    for _ in range(repeats):
        a @ b
    return round(2 * size**3 * repeats / (time.perf_counter() - started) / 1e9, 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", choices=sorted(DATASETS), default="beauty")
    parser.add_argument("--workdir", type=Path, help="work folder (default: benchmarks/results/work-<dataset>)")
    parser.add_argument(
        "--skip",
        nargs="*",
        default=[],
        choices=["pipeline", "embed", "train", "retrieve", "eval", "matmul", "compile", "losses"],
    )
    parser.add_argument("--epochs", type=int, default=2, help="epochs timed per model in the train step")
    parser.add_argument(
        "--variants",
        nargs="*",
        default=["base", "llmesr"],
        help="train step: these variants of config.yaml (e.g. authorsbase authors: the authors' computation)",
    )
    parser.add_argument("--models", nargs="*", default=[], help="train step: only these, e.g. sasrec_llmesr")
    parser.add_argument(
        "--compile-models", nargs="*", default=["sasrec_base", "sasrec_llmesr"], help="compile step: these models"
    )
    parser.add_argument(
        "--loss-models",
        nargs="*",
        default=["sasrec_base", "sasrec_llmesr"],
        help="losses step: the models timed with each loss",
    )
    parser.add_argument(
        "--losses",
        nargs="*",
        default=list(LOSS_SETTINGS),
        choices=list(LOSS_SETTINGS),
        help="losses step: only these losses (their figures replace those of an earlier run)",
    )
    parser.add_argument("--loss-child", help=argparse.SUPPRESS)  # MODEL:LOSS, the losses step's child process
    parser.add_argument("--embed-sample", type=int, default=4000, help="texts timed in the embed step")
    parser.add_argument("--config", default="{}", help="extra config for the pipeline run, as JSON")
    parser.add_argument("--cores", type=int, default=os.cpu_count())
    parser.add_argument(
        "--set-threads",
        nargs="*",
        default=[],
        metavar="RULE=N",
        help="pipeline step: snakemake's thread overrides, e.g. train=1 to run both trainings side by side",
    )
    args = parser.parse_args()

    workdir = (args.workdir or REPO / "benchmarks" / "results" / f"work-{args.dataset}").resolve()
    if args.loss_child:
        name, loss = args.loss_child.split(":")
        print(json.dumps(one_loss(workdir, args.dataset, name, loss, args.epochs)))
        return
    workdir.mkdir(parents=True, exist_ok=True)
    out = REPO / "benchmarks" / "results" / f"{args.dataset}.json"
    report = json.loads(out.read_text()) if out.exists() else {}
    report.update(dataset=args.dataset, cores=args.cores)
    if "pipeline" not in args.skip:
        print("pipeline ...", flush=True)
        report["pipeline_wall_s"] = round(
            run_pipeline(workdir, args.dataset, args.cores, json.loads(args.config), args.set_threads), 1
        )
        report.update(pipeline_figures(workdir, args.dataset))
    if "embed" not in args.skip:
        print("embed ...", flush=True)
        report.update(embed_figures(workdir, args.dataset, args.embed_sample))
    if "train" not in args.skip:
        print("train ...", flush=True)
        figures = train_figures(workdir, args.dataset, args.epochs, args.variants, args.models)
        report.setdefault("train_epoch_s", {}).update({k: v["train_epoch_s"] for k, v in figures.items()})
        report.setdefault("train_gflops", {}).update({k: v["train_gflops"] for k, v in figures.items()})
        report.setdefault("train_epoch_gflop", {}).update({k: v["epoch_gflop"] for k, v in figures.items()})
    if "retrieve" not in args.skip:
        print("retrieve ...", flush=True)
        report["retrieval"] = retrieve_figures(workdir, args.dataset)
        if "pipeline" in args.skip:  # the method the default config's `retrieve.method: auto` picks at this size
            from pipeline.config import default_config

            exact_max_users = default_config()["retrieve"]["exact_max_users"]
            report["retrieve_s"] = report["retrieval"][
                "exact_s" if report["retrieval"]["users"] <= exact_max_users else "hnsw_s"
            ]
    if "eval" not in args.skip:
        print("eval ...", flush=True)
        report["eval_users_per_s_by_model"] = eval_figures(workdir, args.dataset)
        report["eval_users_per_s"] = report["eval_users_per_s_by_model"].get(
            "sasrec_llmesr", report.get("eval_users_per_s")
        )
    if "matmul" not in args.skip:
        report["matmul_gflops"] = matmul_gflops()
    if "compile" not in args.skip:
        print("compile ...", flush=True)
        report.setdefault("torch_compile", {}).update(compile_figures(workdir, args.dataset, args.compile_models))
    if "losses" not in args.skip:
        print("losses ...", flush=True)
        figures = loss_figures(workdir, args.dataset, args.epochs, args.loss_models, args.losses)
        for key, figure in (("loss_epoch_s", "epoch_s"), ("loss_peak_rss_mb", "peak_rss_mb")):
            for model, by_loss in figures.items():  # merged per loss: --losses may time a few again
                report.setdefault(key, {}).setdefault(model, {}).update(
                    {name: v[figure] for name, v in by_loss.items()}
                )
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")

    print(f"\n{args.dataset} on {args.cores} cores")
    rows = [
        ("pipeline wall time (s)", report.get("pipeline_wall_s")),
        ("peak RSS over jobs (MB)", report.get("peak_rss_mb")),
        ("embedding, ours (sentences/s)", report.get("embed_sentences_per_s")),
        ("embedding, sentence-transformers direct (sentences/s)", report.get("embed_raw_sentences_per_s")),
        ("retrieval in the pipeline (s)", report.get("retrieve_s")),
        ("eval users/s sampled / full", report.get("eval_users_per_s")),
        ("matmul (GFLOP/s)", report.get("matmul_gflops")),
    ]
    rows += [
        (f"train s/epoch {k} (GFLOP/s)", f"{v} ({report['train_gflops'][k]})")
        for k, v in report.get("train_epoch_s", {}).items()
    ]
    rows += [
        (f"eval users/s sampled / full, {k}", f"{v['sampled']} / {v['full_ranking']}")
        for k, v in report.get("eval_users_per_s_by_model", {}).items()
    ]
    rows += [
        (
            f"torch.compile {k}, s/epoch eager / compiled",
            f"{v['eager_epoch_s'][0]:.1f} / {v['compiled_epoch_s'][0]:.1f} (epoch 1), "
            f"{v['eager_epoch_s'][1]:.1f} / {v['compiled_epoch_s'][1]:.1f} (epoch 2)",
        )
        for k, v in report.get("torch_compile", {}).items()
    ]
    for m, by_loss in report.get("loss_epoch_s", {}).items():
        bce = by_loss.get("bce")
        rows += [
            (
                f"loss {loss} {m}, s/epoch (x bce) / peak RSS MB",
                f"{s:.1f} ({f'{s / bce:.2f}x' if bce else 'bce not timed'}) / "
                f"{report['loss_peak_rss_mb'][m][loss]:.0f}",
            )
            for loss, s in by_loss.items()
        ]
    rows += [(f"stage {k} (s)", v["s"]) for k, v in report.get("stages", {}).items()]
    for name, value in rows:
        print(f"{name:<56}{value}")
    print(f"written to {out}")


if __name__ == "__main__":
    main()
