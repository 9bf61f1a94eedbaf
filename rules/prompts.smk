rule prompts:
    """Item prompts from the dataset's template; user prompts from training items only."""
    input:
        interactions="results/{dataset}/ingest/interactions.parquet",
        item_table="results/{dataset}/ingest/items.parquet",
    output:
        item_prompts="results/{dataset}/prompts/items.parquet",
        user_prompts="results/{dataset}/prompts/users.parquet",
    params:
        spec=lambda w: as_json(dataset_spec(w.dataset)),
    log:
        "results/logs/{dataset}/prompts.log",
    benchmark:
        "results/benchmarks/{dataset}/prompts.tsv"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    shell:
        "python -m pipeline prompts --spec {params.spec:q} --interactions {input.interactions}"
        " --items {input.item_table} --out-items {output.item_prompts} --out-users {output.user_prompts} > {log} 2>&1"
