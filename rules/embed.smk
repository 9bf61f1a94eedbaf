EMBED_SHARDS = config["embed"]["shards"]
# The default backend is left out of the params so that folders made before `embed.backend`
# existed do not rerun their embeddings (and all that follows).
EMBED_OPTIONS = as_json(
    {k: config["embed"][k] for k in ("model", "batch_size", "device")}
    | ({"backend": config["embed"]["backend"]} if config["embed"]["backend"] != "torch" else {})
)


def embed_command(prompts, out, meta, shard):
    """The encoding command for all prompts or one of EMBED_SHARDS contiguous slices, every
    word shell-quoted: model and cache paths come from the config and may hold anything."""
    embed = config["embed"]
    words = [
        "python",
        "-m",
        "pipeline",
        "embed",
        "--prompts",
        prompts,
        "--out",
        out,
        "--meta",
        meta,
        "--model",
        embed["model"],
        "--batch-size",
        str(embed["batch_size"]),
        "--device",
        embed["device"],
        "--shard",
        str(shard),
        "--shards",
        str(EMBED_SHARDS),
    ]
    if embed["backend"] != "torch":  # as in EMBED_OPTIONS
        words += ["--backend", embed["backend"]]
    if embed["cache"]:
        words += ["--cache", embed["cache"]]
    return shlex.join(words)


rule embed_shard:
    """Prompts -> LLM embeddings ({kind} is items or users) of one of `embed.shards` contiguous
    slices of the prompts, a job of its own (scatter; with one shard, `embed` below is this rule
    writing the whole artifact). The encoder is a param, so changing it reruns this rule and
    everything downstream, nothing upstream."""
    input:
        "results/{dataset}/prompts/{kind}.parquet",
    output:
        vectors="results/{dataset}/embed/shards/{kind}_{shard}.npy",
        meta="results/{dataset}/embed/shards/{kind}_{shard}.json",
    log:
        "results/logs/{dataset}/embed_{kind}_{shard}.log",
    benchmark:
        "results/benchmarks/{dataset}/embed_{kind}_{shard}.tsv"
    wildcard_constraints:
        dataset=COMPUTED_DATASET,
        shard=r"\d+",
    conda:
        ENV
    threads: 8
    resources:
        mem_mb=8000,
        runtime=240,
        gpu=0,
    params:
        # Plain values, so that changing them reruns the rule (and what follows).
        encoder=EMBED_OPTIONS,
        command=lambda w, input, output: embed_command(input[0], output.vectors, output.meta, int(w.get("shard", 0))),
    shell:
        # the log, and the progress bar on the console
        "{params.command} --threads {threads} --log {log}"


if EMBED_SHARDS == 1:

    use rule embed_shard as embed with:
        output:
            vectors="results/{dataset}/embed/{kind}.npy",
            meta="results/{dataset}/embed/{kind}.json",
        log:
            "results/logs/{dataset}/embed_{kind}.log",
        benchmark:
            "results/benchmarks/{dataset}/embed_{kind}.tsv"

else:

    rule embed:
        """The shards of one embedding, in order, as one artifact (gather)."""
        input:
            lambda w: [f"results/{w.dataset}/embed/shards/{w.kind}_{i}.npy" for i in range(EMBED_SHARDS)],
        output:
            vectors="results/{dataset}/embed/{kind}.npy",
            meta="results/{dataset}/embed/{kind}.json",
        log:
            "results/logs/{dataset}/embed_{kind}.log",
        wildcard_constraints:
            dataset=COMPUTED_DATASET,
        localrule: True
        conda:
            ENV
        shell:
            "python -m pipeline embed-merge {input} --out {output.vectors} --meta {output.meta} > {log} 2>&1"
