rule evaluate:
    """The best checkpoint of one run on the test candidates, per head/tail group."""
    input:
        checkpoint="results/{dataset}/runs/{backbone}_{variant}_seed{seed}/model.pt",
        history="results/{dataset}/runs/{backbone}_{variant}_seed{seed}/history.json",
        interactions="results/{dataset}/ingest/interactions.parquet",
        item_table="results/{dataset}/ingest/items.parquet",
        candidates="results/{dataset}/split/candidates.npz",
        groups="results/{dataset}/split/groups.parquet",
        stats="results/{dataset}_stats.json",
    output:
        "results/{dataset}/runs/{backbone}_{variant}_seed{seed}/metrics.json",
    params:
        run=lambda w: as_json({"dataset": w.dataset, "backbone": w.backbone, "variant": w.variant, "seed": int(w.seed)}),
        k=config["eval"]["k"],
        device=config["train"]["device"],
    log:
        "results/logs/{dataset}/evaluate_{backbone}_{variant}_seed{seed}.log",
    benchmark:
        "results/benchmarks/{dataset}/evaluate_{backbone}_{variant}_seed{seed}.tsv"
    threads: 2
    resources:
        mem_mb=4000,
        runtime=30,
    shell:
        "python -m pipeline evaluate --checkpoint {input.checkpoint} --history {input.history}"
        " --interactions {input.interactions} --items {input.item_table} --candidates {input.candidates}"
        " --groups {input.groups} --stats {input.stats} --out {output} --run {params.run:q}"
        " --k {params.k} --device {params.device} --threads {threads} > {log} 2>&1"


def seed_metrics(w):
    variant = w.get("variant", "llmesr")
    return [f"results/{w.dataset}/runs/{w.backbone}_{variant}_seed{seed}/metrics.json" for seed in seeds()]


rule aggregate:
    """Per-seed metrics -> results/{dataset}_{backbone}_{variant}_metrics.json."""
    input:
        seed_metrics,
    output:
        "results/{dataset}_{backbone}_{variant}_metrics.json",
    log:
        "results/logs/{dataset}/aggregate_{backbone}_{variant}.log",
    localrule: True
    shell:
        "python -m pipeline aggregate {input} --out {output} > {log} 2>&1"


use rule aggregate as aggregate_default with:
    output:
        "results/{dataset}_{backbone}_metrics.json",
    log:
        "results/logs/{dataset}/aggregate_{backbone}.log",
