def train_inputs(w):
    inputs = {
        "interactions": f"results/{w.dataset}/ingest/interactions.parquet",
        "item_table": f"results/{w.dataset}/ingest/items.parquet",
        "candidates": f"results/{w.dataset}/split/candidates.npz",
    }
    artifacts = {
        "llm_items": f"results/{w.dataset}/embed/items.npy",
        "pca_items": f"results/{w.dataset}/pca/items.npy",
        "neighbours": f"results/{w.dataset}/retrieve/neighbours.npy",
        "llm_users": f"results/{w.dataset}/embed/users.npy",
        "stats": f"results/{w.dataset}_stats.json",
        # CITIES: a second stage on the plain backbone of the same dataset and seed, trained once.
        "base": f"results/{w.dataset}/runs/{w.backbone}_base_seed{w.seed}/model.pt",
    }
    return {**inputs, **{name: artifacts[name] for name in training_needs(w.variant)}}


def llm_arguments(w, input):
    return " ".join(f"--{name.replace('_', '-')} {input[name]}" for name in sorted(training_needs(w.variant)))


rule train:
    """One backbone x variant x seed, early-stopped on validation NDCG@10."""
    input:
        unpack(train_inputs),
    output:
        checkpoint="results/{dataset}/runs/{backbone}_{variant}_seed{seed}/model.pt",
        history="results/{dataset}/runs/{backbone}_{variant}_seed{seed}/history.json",
    params:
        model=lambda w: as_json(run_model_options(w.backbone, w.variant)),
        train=lambda w: as_json(train_options(w.variant, w.seed)),
        llm=llm_arguments,
    log:
        "results/logs/{dataset}/train_{backbone}_{variant}_seed{seed}.log",
    benchmark:
        "results/benchmarks/{dataset}/train_{backbone}_{variant}_seed{seed}.tsv"
    threads: 4
    resources:
        mem_mb=8000,
        runtime=720,
    shell:
        "python -m pipeline train --interactions {input.interactions} --items {input.item_table}"
        " --candidates {input.candidates} --backbone {wildcards.backbone} --model {params.model:q}"
        " --train {params.train:q} {params.llm} --out-checkpoint {output.checkpoint}"
        " --out-history {output.history} --threads {threads} --log {log}"  # the log, and one line per epoch on the console
