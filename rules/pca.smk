rule pca:
    """Item LLM embeddings -> hidden_size principal components (init of the ID table)."""
    input:
        embeddings="results/{dataset}/embed/items.npy",
    output:
        pca="results/{dataset}/pca/items.npy",
    log:
        "results/logs/{dataset}/pca.log",
    benchmark:
        "results/benchmarks/{dataset}/pca.tsv"
    wildcard_constraints:
        dataset=COMPUTED_DATASET,
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        options=as_json({"dims": config["model"]["hidden_size"]}),
        command=pipeline_command("pca", {"dims": config["model"]["hidden_size"]}),
    shell:
        "{params.command} > {log} 2>&1"
