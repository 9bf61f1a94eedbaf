rule recommend:
    """Top-K recommendations for every user after their whole history, from the first seed's
    model: results/{dataset}_{backbone}_{variant}_recommendations.parquet."""
    input:
        checkpoint=lambda w: f"results/{w.dataset}/runs/{w.backbone}_{w.variant}_seed{seeds()[0]}/model.pt",
        interactions="results/{dataset}/ingest/interactions.parquet",
        item_table="results/{dataset}/ingest/items.parquet",
        user_table="results/{dataset}/ingest/users.parquet",
    output:
        "results/{dataset}_{backbone}_{variant}_recommendations.parquet",
    log:
        "results/logs/{dataset}/recommend_{backbone}_{variant}.log",
    conda:
        ENV
    threads: 2
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        k=max(eval_cutoffs()),
        device=config["train"]["device"],
    shell:
        "python -m pipeline recommend --checkpoint {input.checkpoint} --interactions {input.interactions}"
        " --items {input.item_table} --users {input.user_table} --out {output} --k {params.k}"
        " --device {params.device} --threads {threads} > {log} 2>&1"
