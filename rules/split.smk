def split_settings(w):
    thresholds = {k: v for k, v in dataset_spec(w.dataset).items() if k in ("ts_user", "ts_item")}
    return {
        "negatives": config["eval"]["negatives"],
        "seed": config["eval"]["seed"],
        "max_len": config["model"]["max_len"],
        "head_share": config["eval"]["head_share"],
        "saturated": config["eval"]["saturated"],
        "thresholds": as_json(thresholds),
    }


rule split:
    """The fixed evaluation protocol of a dataset: candidates, head/tail groups, statistics."""
    input:
        interactions="results/{dataset}/ingest/interactions.parquet",
        item_table="results/{dataset}/ingest/items.parquet",
        ingest_report="results/{dataset}/ingest/report.json",
        user_table="results/{dataset}/ingest/users.parquet",
    output:
        candidates="results/{dataset}/split/candidates.npz",
        groups="results/{dataset}/split/groups.parquet",
        stats="results/{dataset}_stats.json",
    log:
        "results/logs/{dataset}/split.log",
    benchmark:
        "results/benchmarks/{dataset}/split.tsv"
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        options=lambda w: as_json(split_settings(w)),
        command=pipeline_command("split", split_settings),
    shell:
        "{params.command} > {log} 2>&1"
