# Shared helpers: wildcard constraints, config lookups, and the dataset -> files mapping.
import json
import shlex
import sys
from pathlib import Path

from pipeline.datasets import FORMATS, DataError, input_files
from pipeline.models import BACKBONES, METHODS, effective_options, method_inputs, method_of, variant_role, variant_title
from pipeline.schema import deep_merge, variant_parts

# Every job runs in this environment under --software-deployment-method conda (untested here:
# docs/cluster.md); otherwise in the environment that runs Snakemake (the project's .venv).
ENV = "../envs/pipeline.yaml"


# Datasets whose format brings its own embeddings, PCA and similar users (the authors'
# bundle) get them from the `import_bundle` rule; all others from embed, pca and retrieve.
BUNDLED = [name for name, spec in config["datasets"].items() if FORMATS[spec["format"]].brings_embeddings]
BUNDLED_DATASET = "|".join(BUNDLED) or "(?!)"  # (?!) matches nothing
COMPUTED_DATASET = f"(?!(?:{BUNDLED_DATASET})/)[a-z0-9]+"


wildcard_constraints:
    dataset="[a-z0-9]+",
    backbone="|".join(BACKBONES),
    variant="[a-z0-9]+",
    seed=r"\d+",
    kind="items|users",


def as_json(value):
    return json.dumps(value, sort_keys=True)


def dataset_spec(dataset):
    if dataset not in config["datasets"]:
        raise ValueError(f"unknown dataset '{dataset}'; configured: {', '.join(config['datasets'])}")
    return config["datasets"][dataset]


def variant_overrides(variant):
    if variant not in config["variants"]:
        raise ValueError(f"unknown variant '{variant}'; configured: {', '.join(config['variants'])}")
    return variant_parts(config["variants"][variant])


def variant_model(variant):
    """The `model` section with the variant's overrides applied (and `paper_compat` spelt out,
    so that the run's record shows every switch as it acted)."""
    return effective_options(deep_merge(config["model"], variant_overrides(variant)[0]))


def run_model_options(backbone, variant):
    """What a training job depends on: the variant's model options without the other
    backbones' and the other methods' sections (so changing one backbone's or one method's
    options reruns only its jobs)."""
    options = variant_model(variant)
    own = options["method"]
    return {
        k: v for k, v in options.items() if (k not in BACKBONES or k == backbone) and (k not in METHODS or k == own)
    }


def train_options(variant, seed):
    options = deep_merge(config["train"], variant_overrides(variant)[1])
    return {**{k: v for k, v in options.items() if k not in ("seed", "seeds")}, "seed": int(seed)}


def training_needs(variant):
    """What a variant's training reads besides the interactions (pipeline.models.METHODS): item
    embeddings, their PCA, similar users, user embeddings, the dataset's head/tail cuts (stats),
    the plain backbone's checkpoint (base); the item embeddings also for hard negatives."""
    hard = train_options(variant, 0)["hard_negatives"] > 0
    return method_inputs(variant_model(variant)) | ({"llm_items"} if hard else set())


def uses_embeddings(variant):
    return bool(training_needs(variant) & {"llm_items", "llm_users", "pca_items", "neighbours"})


_reported_missing = set()


def raw_inputs(wildcards):
    """The dataset's source files. Missing files get one message saying which files, where to
    get them and how to point the config elsewhere; Snakemake then stops on the missing input."""
    spec = dataset_spec(wildcards.dataset)
    try:
        paths = input_files(spec)
    except DataError as err:
        raise ValueError(str(err)) from None
    missing = {key: path for key, path in paths.items() if not path.is_file()}
    if missing and wildcards.dataset not in _reported_missing:
        _reported_missing.add(wildcards.dataset)
        lines = [f"Dataset '{wildcards.dataset}' (format {spec['format']}): input files not found:"]
        lines += [f"  {key}: {path} (looked for at {path.absolute()})" for key, path in missing.items()]
        if any(not path.is_absolute() for path in missing.values()):
            lines.append(
                f"Relative paths are resolved from the working directory ({Path.cwd()}), not from the config "
                "file's folder: run from the folder they are relative to, or give absolute paths."
            )
        if spec.get("source"):
            lines.append(f"Where to get them: {spec['source']}")
        keys = ", ".join(FORMATS[spec["format"]].required)
        lines.append(
            f"To use files elsewhere, set datasets.{wildcards.dataset}.{{{keys}}} in a config file and pass it "
            "with --configfile (see docs/data.md: 'Your own data')."
        )
        print("\n".join(lines), file=sys.stderr)
    # Prefixed: some path keys (e.g. 'items') are reserved names for Snakemake's input.
    return {f"source_{key}": str(path) for key, path in paths.items()}


def ingest_outputs(dataset):
    return {
        "interactions": f"results/{dataset}/ingest/interactions.parquet",
        "item_table": f"results/{dataset}/ingest/items.parquet",
        "user_table": f"results/{dataset}/ingest/users.parquet",
        "report": f"results/{dataset}/ingest/report.json",
    }


def run_dir(w):
    return f"results/{w.dataset}/runs/{w.backbone}_{w.variant}_seed{w.seed}"


def eval_cutoffs():
    from pipeline.metrics import cutoffs

    return cutoffs(config["eval"]["k"])


def seeds():
    seed = config["train"]["seed"]
    return [seed] if seed is not None else config["train"]["seeds"]


def metrics_file(dataset, backbone, variant):
    suffix = "" if variant == "llmesr" else f"_{variant}"
    return f"results/{dataset}_{backbone}{suffix}_metrics.json"


def default_targets():
    """The metrics, statistics, tables and plots of every dataset, backbone and variant in `targets`."""
    targets = config["targets"]
    files = []
    for dataset in targets["datasets"]:
        files.append(f"results/{dataset}_stats.json")
        files += [metrics_file(dataset, b, v) for b in targets["backbones"] for v in targets["variants"]]
        files += report_targets(dataset)
    return files


def role(variant):
    """Which table a variant's rows join (pipeline.models.variant_role)."""
    return variant_role(config["variants"][variant], config["model"])


def title(variant):
    return variant_title(variant, config["variants"][variant], config["model"])


def pipeline_command(stage, options=None):
    """A function of a rule's job that writes its `python -m pipeline STAGE ...` command, every
    word shell-quoted: each named input as --NAME, each named output as --out-NAME (underscores
    become dashes), then `options` (a dict, or a function of the wildcards giving one) as --KEY
    VALUE (a list as several values; None left out). The rule's I/O is then spelled once, in
    the rule, and the stage's command line takes the same names. Snakemake does not compare a
    param derived from input or output files with its last run, so a rule gives its options a
    param of their own too (`options`): changing one reruns the job."""

    def command(wildcards, input, output):
        words = ["python", "-m", "pipeline", *stage.split()]
        for prefix, files in (("", input), ("out-", output)):
            for name in files.keys():
                words += [f"--{prefix}{name.replace('_', '-')}", files[name]]
        words += option_words(options(wildcards) if callable(options) else options or {})
        return shlex.join(words)

    return command


def option_words(options):
    """A dict of options as command-line words: --KEY VALUE (a list as several values, none for
    an empty one; booleans as true/false; None left out)."""
    words = []
    for key, value in options.items():
        if value is not None:
            values = value if isinstance(value, list) else [value]
            words += [
                f"--{key.replace('_', '-')}",
                *(str(v).lower() if isinstance(v, bool) else str(v) for v in values),
            ]
    return words
