import shlex

from pipeline.prompts import ITEM_OPTIONS, USER_OPTIONS


def prompt_spec(dataset, keys):
    """The dataset options one kind of prompt depends on (changing another reruns nothing here)."""
    spec = dataset_spec(dataset)
    return as_json({key: spec[key] for key in keys if key in spec})


def user_prompt_encoder(dataset):
    """`--encoder` with the encoder whose token window user prompts fit (shell-quoted); nothing
    when they are cut by characters, so that changing the encoder does not rerun them."""
    if dataset_spec(dataset).get("user_prompt_max_chars"):
        return ""
    return f"--encoder {shlex.quote(config['embed']['model'])}"


rule item_prompts:
    """Item prompts from the dataset's template."""
    input:
        item_table="results/{dataset}/ingest/items.parquet",
    output:
        "results/{dataset}/prompts/items.parquet",
    log:
        "results/logs/{dataset}/prompts_items.log",
    benchmark:
        "results/benchmarks/{dataset}/prompts_items.tsv"
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        spec=lambda w: prompt_spec(w.dataset, ITEM_OPTIONS),
    shell:
        "python -m pipeline prompts items --spec {params.spec:q} --items {input.item_table} --out {output} > {log} 2>&1"


rule user_prompts:
    """User prompts from training items only, cut to the most recent items that fit the
    encoder's token window (or to user_prompt_max_chars characters)."""
    input:
        interactions="results/{dataset}/ingest/interactions.parquet",
        item_table="results/{dataset}/ingest/items.parquet",
    output:
        "results/{dataset}/prompts/users.parquet",
    log:
        "results/logs/{dataset}/prompts_users.log",
    benchmark:
        "results/benchmarks/{dataset}/prompts_users.tsv"
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        spec=lambda w: prompt_spec(w.dataset, USER_OPTIONS),
        encoder=lambda w: user_prompt_encoder(w.dataset),
    shell:
        "python -m pipeline prompts users --spec {params.spec:q} --interactions {input.interactions}"
        " --items {input.item_table} {params.encoder} --out {output} > {log} 2>&1"
