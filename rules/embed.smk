rule embed:
    """Prompts -> LLM embeddings ({kind} is items or users). The encoder is a param, so
    changing it reruns this rule and everything downstream, nothing upstream."""
    wildcard_constraints:
        dataset=COMPUTED_DATASET,
    input:
        "results/{dataset}/prompts/{kind}.parquet",
    output:
        vectors="results/{dataset}/embed/{kind}.npy",
        meta="results/{dataset}/embed/{kind}.json",
    params:
        model=config["embed"]["model"],
        batch_size=config["embed"]["batch_size"],
        device=config["embed"]["device"],
        cache=f"--cache {config['embed']['cache']}" if config["embed"]["cache"] else "",
    log:
        "results/logs/{dataset}/embed_{kind}.log",
    benchmark:
        "results/benchmarks/{dataset}/embed_{kind}.tsv"
    threads: 8
    resources:
        mem_mb=8000,
        runtime=240,
    shell:
        "python -m pipeline embed --prompts {input} --out {output.vectors} --meta {output.meta}"
        " --model {params.model:q} --batch-size {params.batch_size} --device {params.device}"
        " --threads {threads} {params.cache} > {log} 2>&1"


rule pca:
    """Item LLM embeddings -> hidden_size principal components (init of the ID table)."""
    wildcard_constraints:
        dataset=COMPUTED_DATASET,
    input:
        "results/{dataset}/embed/items.npy",
    output:
        "results/{dataset}/pca/items.npy",
    params:
        dims=config["model"]["hidden_size"],
    log:
        "results/logs/{dataset}/pca.log",
    benchmark:
        "results/benchmarks/{dataset}/pca.tsv"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    shell:
        "python -m pipeline pca --embeddings {input} --out {output} --dims {params.dims} > {log} 2>&1"
