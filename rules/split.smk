rule split:
    """The fixed evaluation protocol of a dataset: candidates, head/tail groups, statistics."""
    input:
        interactions="results/{dataset}/ingest/interactions.parquet",
        item_table="results/{dataset}/ingest/items.parquet",
        report="results/{dataset}/ingest/report.json",
        user_table="results/{dataset}/ingest/users.parquet",
    output:
        candidates="results/{dataset}/split/candidates.npz",
        groups="results/{dataset}/split/groups.parquet",
        stats="results/{dataset}_stats.json",
    params:
        negatives=config["eval"]["negatives"],
        seed=config["eval"]["seed"],
        max_len=config["model"]["max_len"],
        head_share=config["eval"]["head_share"],
        saturated=config["eval"]["saturated"],
        thresholds=lambda w: as_json({k: v for k, v in dataset_spec(w.dataset).items() if k in ("ts_user", "ts_item")}),
    log:
        "results/logs/{dataset}/split.log",
    benchmark:
        "results/benchmarks/{dataset}/split.tsv"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    shell:
        "python -m pipeline split --interactions {input.interactions} --items {input.item_table}"
        " --ingest-report {input.report} --out-candidates {output.candidates} --out-groups {output.groups}"
        " --out-stats {output.stats} --negatives {params.negatives} --seed {params.seed}"
        " --max-len {params.max_len} --head-share {params.head_share} --thresholds {params.thresholds:q}"
        " --saturated {params.saturated} --users {input.user_table}"
        " > {log} 2>&1"
