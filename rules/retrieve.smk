rule retrieve:
    """User LLM embeddings -> top-k similar users (self excluded) for self-distillation."""
    input:
        embeddings="results/{dataset}/embed/users.npy",
    output:
        neighbours="results/{dataset}/retrieve/neighbours.npy",
        report="results/{dataset}/retrieve/report.json",
    log:
        "results/logs/{dataset}/retrieve.log",
    benchmark:
        "results/benchmarks/{dataset}/retrieve.tsv"
    wildcard_constraints:
        dataset=COMPUTED_DATASET,
    conda:
        ENV
    threads: 2
    resources:
        mem_mb=8000,
        runtime=60,
    params:
        options=as_json(config["retrieve"]),
        command=pipeline_command("retrieve", config["retrieve"]),
    shell:
        "{params.command} --threads {threads} > {log} 2>&1"
