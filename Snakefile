# LLM-ESR as a Snakemake workflow. Data flows one way through named artifacts:
#   raw files -> ingest -> prompts -> embed -> pca / retrieve -> (split) -> train -> evaluate -> aggregate
# Per-dataset artifacts live under results/{dataset}/; result files at results/*.json.
import copy
import os
import sys
import time
from pathlib import Path

from snakemake.utils import min_version

min_version("9.0")

# Rules run `python -m pipeline ...`: make `pipeline` importable from this checkout and make
# `python` the interpreter running Snakemake (the project's venv). A conda env activated for
# a job puts its own python first on PATH, so --software-deployment-method conda still works.
sys.path.insert(0, workflow.basedir)
os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [workflow.basedir, os.environ.get("PYTHONPATH")]))
os.environ["PATH"] = os.pathsep.join([os.path.dirname(sys.executable), os.environ["PATH"]])


# The configuration: the shipped config.yaml under what this command gives (--configfile,
# --config), which is all `config` holds here: config.yaml is read by hand, not by `configfile:`,
# so that a dataset entry the user gives replaces the default entry of that name whole. Then
# every schema error at once (as `key.path: problem`), the defaults filled in, and the checks a
# schema cannot make, all before any job.
import yaml

from pipeline.config import (
    coerce_command_line_strings,
    device_errors,
    merged_over_defaults,
    reference_errors,
    schema_errors,
    target_errors,
    targets_in,
    with_defaults,
)


def stop(title, problems):
    print(f"{title}:\n  " + "\n  ".join(problems), file=sys.stderr)
    sys.exit(1)


with open(os.path.join(workflow.basedir, "config.yaml")) as shipped:
    CONFIG, REPLACED_DEFAULTS = merged_over_defaults(yaml.safe_load(shipped), copy.deepcopy(dict(config)))
coerce_command_line_strings(CONFIG)
if problems := schema_errors(CONFIG, REPLACED_DEFAULTS):
    stop("invalid configuration", problems)
config.clear()
config.update(with_defaults(CONFIG))
if problems := reference_errors(config) + target_errors(targets_in(sys.argv[1:]), config):
    stop("invalid configuration", problems)
# A device this machine lacks is only a warning here: on a cluster the jobs run on other nodes,
# and each job stops with a message if its own node lacks it.
for warning in device_errors(config):
    print(f"warning: {warning}; jobs that run on this machine will stop", file=sys.stderr)


include: "rules/common.smk"
include: "rules/ingest.smk"
include: "rules/prompts.smk"
include: "rules/embed.smk"
include: "rules/pca.smk"
include: "rules/retrieve.smk"
include: "rules/split.smk"
include: "rules/train.smk"
include: "rules/evaluate.smk"
include: "rules/aggregate.smk"
include: "rules/recommend.smk"
include: "rules/bundle.smk"
include: "rules/tables.smk"
include: "rules/plots.smk"


report: "rules/captions/workflow.rst"


RUN_STARTED = time.time()


onsuccess:
    from pipeline.ingest import print_drops

    print_drops(Path("results"), RUN_STARTED)


rule all:
    input:
        default_targets(),
