"""The configuration as the workflow reads it: the full schema (the core sections of
schemas/config.schema.yaml and each method's section, declared by its config dataclass), the
user's files merged over `config.yaml`, every default filled in, and the checks run at
start-up, before any job: every schema error listed as `key.path: problem`, and the
cross-references a schema cannot express."""

from __future__ import annotations

import copy
import re

import jsonschema
import yaml

from .errors import DataError
from .schema import VARIANT_KEYS, deep_merge, load_schema, variant_parts


def full_schema() -> dict:
    """The core schema with each registered method's section `model.<name>` and the choices of
    `model.method` filled in from the registry (pipeline/models)."""
    from .models import METHODS
    from .models.method import ROLES
    from .options import section_schema

    schema = load_schema()
    model = schema["properties"]["model"]["properties"]
    choices = ", ".join(f"{name} ({method.title})" for name, method in METHODS.items())
    model["method"] = {
        "description": f"What wraps the backbone: {choices}. llmesr with llmesr.enabled false is the "
        "plain backbone (base).",
        "enum": list(METHODS),
        "default": "llmesr",
    }
    for name, method in METHODS.items():
        if method.config is not None:
            model[name] = section_schema(method.config, method.description)
    schema["properties"]["variants"]["additionalProperties"]["properties"]["role"]["enum"] = list(ROLES)
    return schema


def _filling_defaults(cls: type) -> type:
    """A validator class that also fills in each object's missing properties from their
    `default`, outermost first (so nested sections get theirs too)."""
    check_properties = cls.VALIDATORS["properties"]

    def properties(validator, declared, instance, schema):
        if isinstance(instance, dict):
            for name, sub in declared.items():
                if "default" in sub and name not in instance:
                    instance[name] = copy.deepcopy(sub["default"])
        yield from check_properties(validator, declared, instance, schema)

    return jsonschema.validators.extend(cls, {"properties": properties})


def with_defaults(config: dict) -> dict:
    """A copy of `config` with every default of the schema filled in (datasets included)."""
    filled = copy.deepcopy(config)
    for _ in _filling_defaults(jsonschema.Draft202012Validator)(full_schema()).iter_errors(filled):
        pass
    return filled


def default_config() -> dict:
    """The shipped configuration (config.yaml beside the package) with every default filled in."""
    from pathlib import Path

    return with_defaults(yaml.safe_load((Path(__file__).parents[1] / "config.yaml").read_text()))


def merged_over_defaults(defaults: dict, user: dict) -> tuple[dict, frozenset[str]]:
    """The user's configuration (--configfile, --config) over the shipped `config.yaml`. A
    dataset entry the user gives replaces the default entry of that name whole (a dataset's
    paths, prompts and thresholds belong together); everything else merges key by key.
    Returns (config, names of the default datasets the user replaced)."""
    datasets = user.get("datasets") if isinstance(user.get("datasets"), dict) else {}
    merged = deep_merge(defaults, {key: value for key, value in user.items() if key != "datasets"})
    merged["datasets"] = {**defaults.get("datasets", {}), **copy.deepcopy(datasets)}
    return merged, frozenset(name for name in datasets if name in defaults.get("datasets", {}))


def _errors(validator: jsonschema.Validator, instance: object, prefix: str) -> list[str]:
    found = []
    for error in sorted(validator.iter_errors(instance), key=lambda e: list(map(str, e.absolute_path))):
        where = ".".join([prefix, *map(str, error.absolute_path)]).strip(".")
        found.append(f"{where or '(top level)'}: {error.message}")
    return found


def _read_scalar(text: str) -> object:
    """YAML's reading of a value, and a float where YAML 1.1 sees text (e.g. '1e-4')."""
    value = yaml.safe_load(text)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            pass
    return value


def coerce_command_line_strings(config: dict) -> None:
    """Snakemake reads nested `--config` values (train='{max_epochs: 5}') as strings. Where the
    schema wants another type and the string reads as a value of that type in YAML, use it
    (also inside variants, whose overrides the schema checks only after merging)."""
    schema = full_schema()
    _coerce(jsonschema.Draft202012Validator(schema), config)
    for override in (config.get("variants") or {}).values():
        if not isinstance(override, dict):
            continue
        extra = {key: override.pop(key) for key in VARIANT_KEYS if key in override}
        _coerce(jsonschema.Draft202012Validator(schema["properties"]["model"]), override)
        if isinstance(extra.get("train"), dict):
            _coerce(jsonschema.Draft202012Validator(schema["properties"]["train"]), extra["train"])
        override.update(extra)


def _type_errors(errors) -> list:
    """The `type` and `enum` errors among `errors`, and inside the alternatives of a oneOf /
    anyOf (an enum may mix types: `train.sparse_embeddings` is auto, true or false)."""
    found = []
    for error in errors:
        if error.validator in ("oneOf", "anyOf"):
            found += _type_errors(error.context)
        elif error.validator in ("type", "enum"):
            found.append(error)
    return found


def _reads_as_wanted(validator: jsonschema.Validator, error, value: object) -> bool:
    if error.validator == "enum":
        return not isinstance(value, str) and any(value == v and type(value) is type(v) for v in error.validator_value)
    wanted = [error.validator_value] if isinstance(error.validator_value, str) else error.validator_value
    return any(validator.is_type(value, kind) for kind in wanted)


def _coerce(validator: jsonschema.Validator, instance: dict) -> None:
    """Replace each string in `instance` that the validator wants as another type (also where
    one of several types is wanted, and inside a list, as `eval.k`'s strings arrive)."""
    while True:
        fixed = False
        for error in _type_errors(validator.iter_errors(instance)):
            if not isinstance(error.instance, str) or not error.absolute_path:
                continue
            value = _read_scalar(error.instance)
            if _reads_as_wanted(validator, error, value):
                parent = instance
                for key in list(error.absolute_path)[:-1]:
                    parent = parent[key]
                parent[error.absolute_path[-1]] = value
                fixed = True
        if not fixed:
            return


def _format_keys() -> dict[str, list[str]]:
    """Each dataset format's required path keys, as the schema states them."""
    keys = {}
    for clause in load_schema()["$defs"]["dataset"]["allOf"]:
        condition = clause["if"]["properties"]["format"]
        for name in condition.get("enum", [condition.get("const")]):
            keys[name] = clause["then"]["required"]
    return keys


def _dataset_errors(name: str, entry: object, replaced_default: bool) -> list[str]:
    """One message per dataset entry that lacks its format or that format's files, saying
    which keys it needs (and that an entry replaces a default entry of the same name whole)."""
    if not isinstance(entry, dict):
        return []
    whole = (
        (
            f" (an entry named like a default dataset replaces the default '{name}' as a whole, so it needs "
            "its format and files too)"
        )
        if replaced_default
        else ""
    )
    formats = _format_keys()
    if "format" not in entry:
        choices = "; ".join(f"{fmt}: {', '.join(keys)}" for fmt, keys in formats.items())
        return [f"datasets.{name}: no 'format'; give one of {', '.join(formats)} with its files ({choices}){whole}"]
    missing = [key for key in formats.get(entry["format"], []) if key not in entry]
    if missing:
        return [
            f"datasets.{name}: format {entry['format']} needs {', '.join(formats[entry['format']])}; missing: "
            f"{', '.join(missing)}{whole}"
        ]
    return []


def schema_errors(config: dict, default_datasets: frozenset[str] = frozenset()) -> list[str]:
    """Every schema problem as `key.path: problem`. A dataset entry without its format or
    files gets one message naming the keys it needs instead of one line per format's key;
    `default_datasets` are the names whose entries replace a default entry."""
    schema = full_schema()
    datasets = config.get("datasets") if isinstance(config.get("datasets"), dict) else {}
    grouped = {name: _dataset_errors(name, entry, name in default_datasets) for name, entry in datasets.items()}
    problems = [line for lines in grouped.values() for line in lines]
    for line in _errors(jsonschema.Draft202012Validator(schema), config, ""):
        where = line.split(":", 1)[0].split(".")
        if where[0] == "datasets" and len(where) == 2 and grouped.get(where[1]) and "is a required property" in line:
            continue  # said above, with the keys that are needed
        problems.append(line)
    return problems


# Where a target names its dataset (and, for metrics and runs, its variant).
_TARGET_DATASET = re.compile(r"^results/(?:tables/|plots/)?([a-z0-9]+)(?:[._/]|$)")
_TARGET_VARIANT = re.compile(
    r"^results/(?:plots/)?[a-z0-9]+_(?:sasrec|gru4rec|bert4rec)_([a-z0-9]+)_"
    r"(?:metrics\.json|recommendations\.parquet|seed\d+_training\.png)$"
    r"|^results/[a-z0-9]+/runs/(?:sasrec|gru4rec|bert4rec)_([a-z0-9]+)_seed\d+/"
)


# Names under results/ that are not datasets: logs, benchmarks, the embedding cache, the report.
NOT_DATASETS = ("logs", "benchmarks", "cache", "report")


def targets_in(argv: list[str]) -> list[str]:
    """The files under results/ that a snakemake command line names: its targets (and the
    values of options that take such a path, which the checks below let pass)."""
    return [word for word in argv if word.removeprefix("./").startswith("results/")]


def target_errors(targets: list[str], config: dict) -> list[str]:
    """Requested files that name a dataset or variant the configuration does not have: one
    line each, before any job (instead of an exception raised deep in the DAG)."""
    problems = []
    for target in targets:
        path = target.removeprefix("./")
        dataset = _TARGET_DATASET.match(path)
        if dataset and dataset.group(1) not in config["datasets"] and dataset.group(1) not in NOT_DATASETS:
            problems.append(
                f"{target}: no dataset '{dataset.group(1)}' is configured ({', '.join(config['datasets'])}); "
                "add it under datasets: in a config file passed with --configfile"
            )
            continue
        variant = _TARGET_VARIANT.match(path)
        name = variant and (variant.group(1) or variant.group(2))
        if name and name not in config["variants"]:
            problems.append(f"{target}: no variant '{name}' is configured ({', '.join(config['variants'])})")
    return problems


def device_errors(config: dict) -> list[str]:
    """A CUDA device asked for (train.device, embed.device) on a machine without one."""
    from .device import resolve_device

    problems = []
    for section in ("train", "embed"):
        try:
            resolve_device(config[section]["device"])
        except DataError as err:
            problems.append(f"{section}.{err}")
    return problems


def reference_errors(config: dict) -> list[str]:
    """Targets must name configured datasets and variants; each variant's overrides must make
    a valid `model` section (which catches misspelt option names); the encoder folder must be
    loadable."""
    problems = []
    for kind in ("datasets", "variants"):
        for name in config["targets"][kind]:
            if name not in config[kind]:
                problems.append(f"targets.{kind}: '{name}' is not configured under {kind} ({', '.join(config[kind])})")
    from .losses import option_errors as loss_option_errors
    from .models import option_errors
    from .train import option_errors as train_option_errors

    # Every backbone a run may use: those targeted, and those named by a requested file (any).
    backbones = list(full_schema()["properties"]["targets"]["properties"]["backbones"]["items"]["enum"])
    problems += [f"model.{problem}" for problem in option_errors(config["model"], backbones)]
    schema = full_schema()["properties"]
    model_schema = jsonschema.Draft202012Validator(schema["model"])
    train_schema = jsonschema.Draft202012Validator(schema["train"])
    for variant, override in config["variants"].items():
        override, train_override = variant_parts(override)
        merged = deep_merge(config["model"], override)
        model_problems = _errors(model_schema, merged, f"variants.{variant}")
        problems += model_problems
        if not isinstance(train_override, dict):
            problems.append(f"variants.{variant}.train: must be a mapping of train options, got {train_override!r}")
            continue
        variant_train = deep_merge(config["train"], train_override)
        train_problems = _errors(train_schema, variant_train, f"variants.{variant}.train")
        problems += train_problems
        if not train_problems:
            problems += [f"variants.{variant}: {problem}" for problem in loss_option_errors(variant_train)]
            problems += [f"variants.{variant}: {problem}" for problem in train_option_errors(variant_train)]
        for key in ("seed", "seeds"):
            if key in train_override:
                problems.append(
                    f"variants.{variant}.train.{key}: a variant cannot set the seed (every variant trains "
                    "on the seeds of `train`; the run's folder names its seed)"
                )
        if "device" in train_override:
            problems.append(
                f"variants.{variant}.train.device: the device is the machine's, not a variant's: set train.device"
            )
        if not model_problems:
            problems += _method_errors(config, variant, merged, train_override)
            shared = set(option_errors(config["model"], backbones))  # said once below, not per variant
            problems += [f"variants.{variant}: model.{p}" for p in option_errors(merged, backbones) if p not in shared]
    problems += backend_errors(config["embed"])
    if config["eval"]["shards"] > 1 and config["eval"]["popularity_gammas"]:
        problems.append(
            "eval.shards: a sharded evaluation cannot choose the popularity correction, which is chosen on every "
            "user's validation: set eval.popularity_gammas to [] or eval.shards to 1"
        )
    breadth_of = config["eval"]["popularity_breadth_of"]
    if breadth_of is not None and breadth_of not in config["variants"]:
        problems.append(
            f"eval.popularity_breadth_of: no variant {breadth_of!r} (variants: {', '.join(sorted(config['variants']))})"
        )
    if breadth_of is not None and not config["eval"]["popularity_gammas"]:
        problems.append(
            "eval.popularity_breadth_of chooses among eval.popularity_gammas: give some, e.g. [0, 0.1, 0.3]"
        )
    if config["embed"]["model"] != "default":
        from .embed import resolve_model

        try:
            resolve_model(config["embed"]["model"])
        except DataError as err:
            problems.append(str(err))
    return problems


def backend_errors(embed: dict) -> list[str]:
    """The ONNX backends run on CPU and need the optional packages of `.[onnx]`."""
    from .embed import ONNX_BACKENDS

    if embed["backend"] not in ONNX_BACKENDS:
        return []
    problems = []
    if embed["device"].startswith("cuda"):
        problems.append(
            f"embed.backend: {embed['backend']} runs on CPU; with embed.device {embed['device']} use backend torch"
        )
    import importlib.util

    missing = [name for name in ("onnxruntime", "onnx") if importlib.util.find_spec(name) is None]
    if missing:
        problems.append(
            f"embed.backend: {embed['backend']} needs {' and '.join(missing)}, not installed here: "
            "pip install -e '.[onnx]' (or set embed.backend: torch)"
        )
    return problems


def _method_errors(config: dict, variant: str, model: dict, train_override: dict) -> list[str]:
    """What a variant's method asks of the rest of the configuration."""
    from .models import METHODS, method_inputs, method_of

    method = METHODS[method_of(model)]
    problems = []
    if method.stage is not None and set(train_override) - {"max_epochs"}:
        whose = method.title + ("'" if method.title.lower().endswith("s") else "'s")
        problems.append(
            f"variants.{variant}.train: {whose} stage trains by its own options "
            f"(model.{method.name}), of `train` it uses max_epochs only; not "
            f"{', '.join(sorted(set(train_override) - {'max_epochs'}))}"
        )
    base = config["variants"].get("base")
    plain = base is not None and method_of(deep_merge(config["model"], variant_parts(base)[0])) == "base"
    if "base" in method_inputs(model) and not plain:
        problems.append(
            f"variants.{variant}: {method.title} is a second stage on the plain backbone: it needs the "
            "variant 'base' configured as the plain backbone ({llmesr: {enabled: false}})"
        )
    return problems
