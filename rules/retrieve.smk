rule retrieve:
    """User LLM embeddings -> top-k similar users (self excluded) for self-distillation."""
    wildcard_constraints:
        dataset=COMPUTED_DATASET,
    input:
        "results/{dataset}/embed/users.npy",
    output:
        neighbours="results/{dataset}/retrieve/neighbours.npy",
        report="results/{dataset}/retrieve/report.json",
    params:
        k=config["retrieve"]["k"],
        method=config["retrieve"]["method"],
        exact_max_users=config["retrieve"]["exact_max_users"],
        m=config["retrieve"]["hnsw_m"],
        ef_construction=config["retrieve"]["hnsw_ef_construction"],
        ef_search=config["retrieve"]["hnsw_ef_search"],
        recall_sample=config["retrieve"]["recall_sample"],
    log:
        "results/logs/{dataset}/retrieve.log",
    benchmark:
        "results/benchmarks/{dataset}/retrieve.tsv"
    threads: 2
    resources:
        mem_mb=8000,
        runtime=60,
    shell:
        "python -m pipeline retrieve --embeddings {input} --out {output.neighbours} --report {output.report}"
        " --k {params.k} --method {params.method} --exact-max-users {params.exact_max_users} --hnsw-m {params.m}"
        " --hnsw-ef-construction {params.ef_construction} --hnsw-ef-search {params.ef_search}"
        " --recall-sample {params.recall_sample} --threads {threads} > {log} 2>&1"
