# Where each artifact a method may read lives (pipeline.models.method.ARTIFACTS); a method's
# `needs` picks the ones its training job gets, as --NAME PATH.
ARTIFACT_PATHS = {
    "llm_items": "results/{dataset}/embed/items.npy",
    "pca_items": "results/{dataset}/pca/items.npy",
    "neighbours": "results/{dataset}/retrieve/neighbours.npy",
    "llm_users": "results/{dataset}/embed/users.npy",
    "stats": "results/{dataset}_stats.json",
    # CITIES: a second stage on the plain backbone of the same dataset and seed, trained once.
    "base": "results/{dataset}/runs/{backbone}_base_seed{seed}/model.pt",
}


def train_inputs(w):
    inputs = {
        "interactions": f"results/{w.dataset}/ingest/interactions.parquet",
        "item_table": f"results/{w.dataset}/ingest/items.parquet",
        "candidates": f"results/{w.dataset}/split/candidates.npz",
    }
    return {**inputs, **{name: ARTIFACT_PATHS[name].format(**w) for name in sorted(training_needs(w.variant))}}


def train_settings(w):
    return {
        "backbone": w.backbone,
        "model": as_json(run_model_options(w.backbone, w.variant)),
        "train": as_json(train_options(w.variant, w.seed)),
    }


rule train:
    """One backbone x variant x seed, early-stopped on validation NDCG@10."""
    input:
        unpack(train_inputs),
    output:
        checkpoint="results/{dataset}/runs/{backbone}_{variant}_seed{seed}/model.pt",
        history="results/{dataset}/runs/{backbone}_{variant}_seed{seed}/history.json",
    log:
        "results/logs/{dataset}/train_{backbone}_{variant}_seed{seed}.log",
    benchmark:
        "results/benchmarks/{dataset}/train_{backbone}_{variant}_seed{seed}.tsv"
    conda:
        ENV
    threads: 4
    resources:
        mem_mb=8000,
        runtime=720,
    params:
        options=lambda w: as_json(train_settings(w)),
        command=pipeline_command("train", train_settings),
    shell:
        # the log, and one line per epoch on the console
        "{params.command} --threads {threads} --log {log}"
