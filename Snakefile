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
import yaml

DEFAULT_DATASETS = yaml.safe_load(open(os.path.join(workflow.basedir, "config.yaml")))["datasets"]
REPLACED_DEFAULTS = frozenset()
for name, entry in (workflow.config_settings.overwrite_config.get("datasets") or {}).items():
    if name in DEFAULT_DATASETS:
        REPLACED_DEFAULTS |= {name}
    config["datasets"][name] = copy.deepcopy(entry)


# Every schema error at once, as `key.path: problem`, then snakemake's validate fills defaults.
from pipeline.config import (coerce_command_line_strings, device_errors, reference_errors, schema_errors,
                             target_errors)


def stop(title, problems):
    print(f"{title}:\n  " + "\n  ".join(problems), file=sys.stderr)
    sys.exit(1)


def command_line():
    """The targets and executor of this snakemake command (read from its command line: the
    workflow sees neither while it is parsed). Jobs started by an executor return no targets."""
    from snakemake.cli import get_argument_parser

    argv = sys.argv[1:]
    explicit = argv[argv.index("--") + 1 :] if "--" in argv else []
    try:
        args, _ = get_argument_parser().parse_known_args(argv[: len(argv) - len(explicit) - bool(explicit)])
    except SystemExit:
        return [], "unknown"
    local = args.executor in (None, "local", "dryrun") and not args.profile and not args.workflow_profile
    return [str(t) for t in [*(args.targets or []), *explicit]], "local" if local else "other"


coerce_command_line_strings(config)
if problems := schema_errors(config, REPLACED_DEFAULTS):
    stop("invalid configuration", problems)
validate(config, "pipeline/schemas/config.schema.yaml")
REQUESTED_TARGETS, EXECUTION = command_line()
problems = reference_errors(config) + target_errors(REQUESTED_TARGETS, config)
if EXECUTION == "local":  # jobs sent elsewhere (a cluster) check their own device where they run
    problems += device_errors(config)
if problems:
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
