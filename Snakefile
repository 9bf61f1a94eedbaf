# LLM-ESR as a Snakemake workflow. Data flows one way through named artifacts:
#   raw files -> ingest -> prompts -> embed -> pca / retrieve -> (split) -> train -> evaluate -> aggregate
# Per-dataset artifacts live under results/{dataset}/; result files at results/*.json.
import copy
import os
import sys
import time
from pathlib import Path

from snakemake.utils import min_version, validate

min_version("9.0")

# Rules run `python -m pipeline ...`: make `pipeline` importable from this checkout and make
# `python` the interpreter running Snakemake (the project's venv). A conda env activated for
# a job puts its own python first on PATH, so --software-deployment-method conda still works.
sys.path.insert(0, workflow.basedir)
os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [workflow.basedir, os.environ.get("PYTHONPATH")]))
os.environ["PATH"] = os.pathsep.join([os.path.dirname(sys.executable), os.environ["PATH"]])


# The defaults live next to this file; --configfile adds to them and --config overrides.
configfile: os.path.join(workflow.basedir, "config.yaml")


# A dataset entry given with --configfile or --config replaces the default entry of that name
# instead of merging into it: a dataset's paths, prompts and thresholds belong together.
for name, entry in (workflow.config_settings.overwrite_config.get("datasets") or {}).items():
    config["datasets"][name] = copy.deepcopy(entry)


# Every schema error at once, as `key.path: problem`, then snakemake's validate fills defaults.
from pipeline.config import coerce_command_line_strings, reference_errors, schema_errors


def stop(title, problems):
    print(f"{title}:\n  " + "\n  ".join(problems), file=sys.stderr)
    sys.exit(1)


coerce_command_line_strings(config)
if problems := schema_errors(config):
    stop("invalid configuration", problems)
validate(config, "pipeline/schemas/config.schema.yaml")
if problems := reference_errors(config):
    stop("invalid configuration", problems)


include: "rules/common.smk"
include: "rules/ingest.smk"
include: "rules/prompts.smk"
include: "rules/embed.smk"
include: "rules/retrieve.smk"
include: "rules/split.smk"
include: "rules/train.smk"
include: "rules/evaluate.smk"
include: "rules/bundle.smk"
include: "rules/report.smk"


report: "rules/captions/workflow.rst"

RUN_STARTED = time.time()


onsuccess:
    from pipeline.ingest import print_drops

    print_drops(Path("results"), RUN_STARTED)


rule all:
    input:
        default_targets(),
