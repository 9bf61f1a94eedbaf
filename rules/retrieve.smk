RETRIEVE_SHARDS = config["retrieve"]["shards"]
# Every option but the shard count shapes the result (sharded or not, it is the same).
RETRIEVE_OPTIONS = {key: value for key, value in config["retrieve"].items() if key != "shards"}


if RETRIEVE_SHARDS == 1:

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
            options=as_json(RETRIEVE_OPTIONS),
            command=pipeline_command("retrieve", RETRIEVE_OPTIONS),
        shell:
            "{params.command} --threads {threads} > {log} 2>&1"

else:

    rule retrieve_index:
        """The search method for these users, and for hnswlib its index, built once for all
        the query shards."""
        input:
            embeddings="results/{dataset}/embed/users.npy",
        output:
            index="results/{dataset}/retrieve/shards/index.bin",
            plan="results/{dataset}/retrieve/shards/plan.json",
        log:
            "results/logs/{dataset}/retrieve_index.log",
        benchmark:
            "results/benchmarks/{dataset}/retrieve_index.tsv"
        wildcard_constraints:
            dataset=COMPUTED_DATASET,
        conda:
            ENV
        threads: 2
        resources:
            mem_mb=8000,
            runtime=60,
        params:
            options=as_json(RETRIEVE_OPTIONS),
            command=pipeline_command("retrieve-index", RETRIEVE_OPTIONS),
        shell:
            "{params.command} --threads {threads} > {log} 2>&1"

    rule retrieve_shard:
        """The similar users of one of `retrieve.shards` contiguous slices of the users (scatter)."""
        input:
            embeddings="results/{dataset}/embed/users.npy",
            index="results/{dataset}/retrieve/shards/index.bin",
            plan="results/{dataset}/retrieve/shards/plan.json",
        output:
            neighbours="results/{dataset}/retrieve/shards/neighbours_{shard}.npy",
            meta="results/{dataset}/retrieve/shards/neighbours_{shard}.json",
        log:
            "results/logs/{dataset}/retrieve_{shard}.log",
        benchmark:
            "results/benchmarks/{dataset}/retrieve_{shard}.tsv"
        wildcard_constraints:
            dataset=COMPUTED_DATASET,
            shard=r"\d+",
        conda:
            ENV
        threads: 2
        resources:
            mem_mb=8000,
            runtime=60,
        params:
            command=lambda w, input, output: shlex.join(
                [
                    *("python -m pipeline retrieve-shard".split()),
                    *("--embeddings", input.embeddings, "--index", input.index, "--plan", input.plan),
                    *("--out-neighbours", output.neighbours, "--shard", w.shard, "--shards", str(RETRIEVE_SHARDS)),
                    *("--hnsw-ef-search", str(config["retrieve"]["hnsw_ef_search"])),
                ]
            ),
        shell:
            "{params.command} --threads {threads} > {log} 2>&1"

    rule retrieve:
        """The shards' similar users, in order, as one artifact (gather), with the recall of
        the whole measured on a sample."""
        input:
            shards=lambda w: [f"results/{w.dataset}/retrieve/shards/neighbours_{i}.npy" for i in range(RETRIEVE_SHARDS)],
            embeddings="results/{dataset}/embed/users.npy",
            plan="results/{dataset}/retrieve/shards/plan.json",
        output:
            neighbours="results/{dataset}/retrieve/neighbours.npy",
            report="results/{dataset}/retrieve/report.json",
        log:
            "results/logs/{dataset}/retrieve.log",
        wildcard_constraints:
            dataset=COMPUTED_DATASET,
        conda:
            ENV
        threads: 2
        params:
            options=as_json(RETRIEVE_OPTIONS),
            command=lambda w, input, output: shlex.join(
                [
                    *("python -m pipeline retrieve-merge".split()),
                    *input.shards,
                    *("--embeddings", input.embeddings, "--plan", input.plan),
                    *("--out-neighbours", output.neighbours, "--out-report", output.report),
                    *option_words(RETRIEVE_OPTIONS),
                ]
            ),
        shell:
            "{params.command} --threads {threads} > {log} 2>&1"
