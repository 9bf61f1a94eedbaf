def evaluate_inputs(w):
    """The embeddings' metadata is read for the record of models that use them; the
    reference run's checkpoint for a popularity correction chosen for breadth."""
    inputs = {}
    if uses_embeddings(w.variant):
        inputs["embed_meta"] = f"results/{w.dataset}/embed/items.json"
    reference = config["eval"]["popularity_breadth_of"]
    if reference is not None and config["eval"]["popularity_gammas"]:
        inputs["breadth_reference"] = f"results/{w.dataset}/runs/{w.backbone}_{reference}_seed{w.seed}/model.pt"
    return inputs


def run_record(w):
    record = {
        "dataset": dataset_spec(w.dataset),
        "model": run_model_options(w.backbone, w.variant),
        "train": train_options(w.variant, w.seed),
        "eval": config["eval"],
    }
    if uses_embeddings(w.variant):
        record.update(embed=config["embed"], retrieve=config["retrieve"])
    return as_json(record)


def evaluate_settings(w):
    run = {"dataset": w.dataset, "backbone": w.backbone, "variant": w.variant, "seed": int(w.seed)}
    return {
        "run": as_json({**run, "title": title(w.variant), "role": role(w.variant)}),
        "record": run_record(w),
        "k": eval_cutoffs(),
        "popularity_gammas": config["eval"]["popularity_gammas"],
        "device": config["train"]["device"],
    }


EVAL_SHARDS = config["eval"]["shards"]
RUN = "results/{dataset}/runs/{backbone}_{variant}_seed{seed}"


def evaluate_shard_settings(w):
    settings = evaluate_settings(w)
    return {key: settings[key] for key in ("k", "popularity_gammas", "device")} | {
        "shard": w.shard,
        "shards": EVAL_SHARDS,
    }


def evaluate_merge_command(w, input, output):
    """`pipeline evaluate-merge SHARD.npz ...` with the report's inputs, outputs and options."""
    words = ["python", "-m", "pipeline", "evaluate-merge", *input.shards]
    for name in input.keys():
        if name != "shards":
            words += [f"--{name.replace('_', '-')}", input[name]]
    words += ["--out-metrics", output.metrics, "--out-per-user", output.per_user]
    settings = evaluate_settings(w)
    return shlex.join(words + option_words({key: settings[key] for key in ("run", "record", "k")}))


if EVAL_SHARDS == 1:

    rule evaluate:
        """The best checkpoint of one run on the test targets, sampled and full-ranking
        protocols, per head/tail group; plus per-user results."""
        input:
            unpack(evaluate_inputs),
            checkpoint="results/{dataset}/runs/{backbone}_{variant}_seed{seed}/model.pt",
            history="results/{dataset}/runs/{backbone}_{variant}_seed{seed}/history.json",
            ingest_report="results/{dataset}/ingest/report.json",
            interactions="results/{dataset}/ingest/interactions.parquet",
            item_table="results/{dataset}/ingest/items.parquet",
            user_table="results/{dataset}/ingest/users.parquet",
            candidates="results/{dataset}/split/candidates.npz",
            groups="results/{dataset}/split/groups.parquet",
            stats="results/{dataset}_stats.json",
        output:
            metrics="results/{dataset}/runs/{backbone}_{variant}_seed{seed}/metrics.json",
            per_user="results/{dataset}/runs/{backbone}_{variant}_seed{seed}/users.parquet",
        log:
            "results/logs/{dataset}/evaluate_{backbone}_{variant}_seed{seed}.log",
        benchmark:
            "results/benchmarks/{dataset}/evaluate_{backbone}_{variant}_seed{seed}.tsv"
        conda:
            ENV
        threads: 2
        resources:
            mem_mb=4000,
            runtime=30,
        params:
            options=lambda w: as_json(evaluate_settings(w)),
            command=pipeline_command("evaluate", evaluate_settings),
        shell:
            "{params.command} --threads {threads} > {log} 2>&1"

else:

    rule evaluate_shard:
        """The scores of one of `eval.shards` contiguous slices of the users of one run (scatter)."""
        input:
            checkpoint=f"{RUN}/model.pt",
            interactions="results/{dataset}/ingest/interactions.parquet",
            item_table="results/{dataset}/ingest/items.parquet",
            candidates="results/{dataset}/split/candidates.npz",
        output:
            scores=f"{RUN}/shards/scores_{{shard}}.npz",
        log:
            "results/logs/{dataset}/evaluate_{backbone}_{variant}_seed{seed}_{shard}.log",
        benchmark:
            "results/benchmarks/{dataset}/evaluate_{backbone}_{variant}_seed{seed}_{shard}.tsv"
        wildcard_constraints:
            shard=r"\d+",
        conda:
            ENV
        threads: 2
        resources:
            mem_mb=4000,
            runtime=30,
        params:
            options=lambda w: as_json(evaluate_shard_settings(w)),
            command=pipeline_command("evaluate-shard", evaluate_shard_settings),
        shell:
            "{params.command} --threads {threads} > {log} 2>&1"

    rule evaluate:
        """The shards' scores of one run, in order, into its metrics and per-user results (gather)."""
        input:
            unpack(evaluate_inputs),
            shards=lambda w: [f"{RUN}/shards/scores_{i}.npz".format(**w) for i in range(EVAL_SHARDS)],
            history=f"{RUN}/history.json",
            ingest_report="results/{dataset}/ingest/report.json",
            interactions="results/{dataset}/ingest/interactions.parquet",
            item_table="results/{dataset}/ingest/items.parquet",
            user_table="results/{dataset}/ingest/users.parquet",
            candidates="results/{dataset}/split/candidates.npz",
            groups="results/{dataset}/split/groups.parquet",
            stats="results/{dataset}_stats.json",
        output:
            metrics=f"{RUN}/metrics.json",
            per_user=f"{RUN}/users.parquet",
        log:
            "results/logs/{dataset}/evaluate_{backbone}_{variant}_seed{seed}.log",
        conda:
            ENV
        params:
            options=lambda w: as_json(evaluate_settings(w)),
            command=evaluate_merge_command,
        shell:
            "{params.command} > {log} 2>&1"
