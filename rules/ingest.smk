rule ingest:
    """Raw files -> canonical interactions/items/users with contiguous 1-based ids, and a
    report of the rows kept and dropped and why."""
    input:
        unpack(raw_inputs),
    output:
        **ingest_outputs("{dataset}"),
    log:
        "results/logs/{dataset}/ingest.log",
    benchmark:
        "results/benchmarks/{dataset}/ingest.tsv"
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        spec=lambda w: as_json(dataset_spec(w.dataset)),
    shell:
        "python -m pipeline ingest --spec {params.spec:q}"
        " --out-interactions {output.interactions} --out-items {output.item_table}"
        " --out-users {output.user_table} --out-report {output.report} > {log} 2>&1"
