# Plots of the metrics, per-user results and training histories (and, with `snakemake --report`, the report).

RANKING_PLOT_TITLES = {"ranking": "sampled vs full ranking", "diagnostics": "the paper's setting without each part"}


rule ranking_plot:
    """NDCG@10 per group under both protocols and the catalogue recommended, per backbone: base
    and LLM-ESR beside the training variants (`ranking`) or the ablations (`diagnostics`)."""
    input:
        lambda w: [metrics_file(w.dataset, w.backbone, v) for v in ("base", "llmesr", *RANKING_PARTS[w.part])],
    output:
        report(
            "results/plots/{dataset}_{backbone}_{part}.png",
            caption="captions/ranking.rst",
            category="Plots",
            subcategory="{dataset}",
        ),
    log:
        "results/logs/{dataset}/{part}_plot_{backbone}.log",
    wildcard_constraints:
        part="ranking|diagnostics",
    localrule: True
    conda:
        ENV
    params:
        title=lambda w: f"{w.dataset} {w.backbone}: {RANKING_PLOT_TITLES[w.part]}",
    shell:
        "python -m pipeline plots ranking {input} --title {params.title:q} --out {output} > {log} 2>&1"


rule group_plot:
    """HR@10 / NDCG@10 per head/tail group, base vs LLM-ESR, per backbone."""
    input:
        lambda w: dataset_metrics(w.dataset, ["base", "llmesr"]),
    output:
        report(
            "results/plots/{dataset}_groups.png",
            caption="captions/groups.rst",
            category="Plots",
            subcategory="{dataset}",
        ),
    log:
        "results/logs/{dataset}/group_plot.log",
    localrule: True
    conda:
        ENV
    shell:
        "python -m pipeline plots groups {input} --out {output} > {log} 2>&1"


def analysis_runs(w):
    return {
        (v, s): f"results/{w.dataset}/runs/{w.backbone}_{v}_seed{s}/users.parquet"
        for v in ANALYSIS_VARIANTS
        for s in seeds()
    }


rule group_analysis_plot:
    """The paper's Fig. 4: HR@10 / NDCG@10 over finer user-length and item-popularity bins."""
    input:
        runs=lambda w: list(analysis_runs(w).values()),
        groups="results/{dataset}/split/groups.parquet",
    output:
        report(
            "results/plots/{dataset}_{backbone}_group_analysis.png",
            caption="captions/group_analysis.rst",
            category="Plots",
            subcategory="{dataset}",
        ),
    log:
        "results/logs/{dataset}/group_analysis_{backbone}.log",
    localrule: True
    conda:
        ENV
    params:
        runs=lambda w: shlex.join(f"--run={title(v)}={path}" for (v, _), path in analysis_runs(w).items()),
    shell:
        "python -m pipeline plots analysis --groups {input.groups} {params.runs}"
        " --title '{wildcards.dataset} {wildcards.backbone}: group analysis' --out {output} > {log} 2>&1"


rule training_plot:
    """Validation NDCG@10 and training loss per epoch of one run."""
    input:
        "results/{dataset}/runs/{backbone}_{variant}_seed{seed}/history.json",
    output:
        report(
            "results/plots/{dataset}_{backbone}_{variant}_seed{seed}_training.png",
            caption="captions/training.rst",
            category="Training curves",
            subcategory="{dataset}",
        ),
    log:
        "results/logs/{dataset}/training_plot_{backbone}_{variant}_seed{seed}.log",
    localrule: True
    conda:
        ENV
    shell:
        "python -m pipeline plots training {input} --title '{wildcards.dataset} {wildcards.backbone} {wildcards.variant}"
        " seed {wildcards.seed}' --out {output} > {log} 2>&1"
