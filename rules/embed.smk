import shlex

EMBED_SHARDS = config["embed"]["shards"]
EMBED_OPTIONS = as_json({k: config["embed"][k] for k in ("model", "batch_size", "device")})


def embed_command(prompts, out, meta, shard=0):
    """The encoding command for all prompts or one of EMBED_SHARDS contiguous slices, every
    word shell-quoted: model and cache paths come from the config and may hold anything."""
    embed = config["embed"]
    words = ["python", "-m", "pipeline", "embed", "--prompts", prompts, "--out", out, "--meta", meta,
             "--model", embed["model"], "--batch-size", str(embed["batch_size"]), "--device", embed["device"]]
    if embed["cache"]:
        words += ["--cache", embed["cache"]]
    if EMBED_SHARDS > 1:
        words += ["--shard", str(shard), "--shards", str(EMBED_SHARDS)]
    return shlex.join(words)


if EMBED_SHARDS == 1:

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
            # Plain values, so that changing them reruns the rule (and what follows).
            encoder=EMBED_OPTIONS,
            command=lambda w, input, output: embed_command(input[0], output.vectors, output.meta),
        log:
            "results/logs/{dataset}/embed_{kind}.log",
        benchmark:
            "results/benchmarks/{dataset}/embed_{kind}.tsv"
        threads: 8
        resources:
            mem_mb=8000,
            runtime=240,
            gpu=0,
        shell:
            "{params.command} --threads {threads} --log {log}"  # the log, and the progress bar on the console

else:

    rule embed_shard:
        """One of `embed.shards` contiguous slices of the prompts, its own job (scatter)."""
        wildcard_constraints:
            dataset=COMPUTED_DATASET,
            shard=r"\d+",
        input:
            "results/{dataset}/prompts/{kind}.parquet",
        output:
            vectors="results/{dataset}/embed/shards/{kind}_{shard}.npy",
            meta="results/{dataset}/embed/shards/{kind}_{shard}.json",
        params:
            encoder=EMBED_OPTIONS,
            command=lambda w, input, output: embed_command(input[0], output.vectors, output.meta, int(w.shard)),
        log:
            "results/logs/{dataset}/embed_{kind}_{shard}.log",
        benchmark:
            "results/benchmarks/{dataset}/embed_{kind}_{shard}.tsv"
        threads: 8
        resources:
            mem_mb=8000,
            runtime=240,
            gpu=0,
        shell:
            "{params.command} --threads {threads} --log {log}"  # the log, and the progress bar on the console

    rule embed:
        """The shards of one embedding, in order, as one artifact (gather)."""
        wildcard_constraints:
            dataset=COMPUTED_DATASET,
        input:
            lambda w: [f"results/{w.dataset}/embed/shards/{w.kind}_{i}.npy" for i in range(EMBED_SHARDS)],
        output:
            vectors="results/{dataset}/embed/{kind}.npy",
            meta="results/{dataset}/embed/{kind}.json",
        log:
            "results/logs/{dataset}/embed_{kind}.log",
        localrule: True
        shell:
            "python -m pipeline embed-merge {input} --out {output.vectors} --meta {output.meta} > {log} 2>&1"


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
