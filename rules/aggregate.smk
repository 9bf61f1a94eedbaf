def seed_metrics(w):
    variant = w.get("variant", "llmesr")
    return [f"results/{w.dataset}/runs/{w.backbone}_{variant}_seed{seed}/metrics.json" for seed in seeds()]


rule aggregate:
    """Per-seed metrics -> results/{dataset}_{backbone}_{variant}_metrics.json."""
    input:
        seed_metrics,
    output:
        "results/{dataset}_{backbone}_{variant}_metrics.json",
    log:
        "results/logs/{dataset}/aggregate_{backbone}_{variant}.log",
    localrule: True
    conda:
        ENV
    shell:
        "python -m pipeline aggregate {input} --out {output} > {log} 2>&1"


localrules:
    aggregate_default,  # `use rule` does not carry over `localrule: True`


use rule aggregate as aggregate_default with:
    output:
        "results/{dataset}_{backbone}_metrics.json",
    log:
        "results/logs/{dataset}/aggregate_{backbone}.log",
