"""Configuration checks run at start-up, before any job: the JSON schema (with every error
listed as `key.path: problem`) and the cross-references a schema cannot express."""
from __future__ import annotations

from pathlib import Path

import jsonschema
import yaml

SCHEMA = Path(__file__).parent / "schemas" / "config.schema.yaml"


def load_schema() -> dict:
    return yaml.safe_load(SCHEMA.read_text())


def deep_merge(base: dict, override: dict) -> dict:
    merged = dict(base)
    for key, value in override.items():
        nested = isinstance(value, dict) and isinstance(merged.get(key), dict)
        merged[key] = deep_merge(merged[key], value) if nested else value
    return merged


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
    schema wants another type and the string reads as a value of that type in YAML, use it."""
    validator = jsonschema.Draft202012Validator(load_schema())
    while True:
        fixed = False
        for error in validator.iter_errors(config):
            if error.validator != "type" or not isinstance(error.instance, str) or not error.absolute_path:
                continue
            value = _read_scalar(error.instance)
            wanted = [error.validator_value] if isinstance(error.validator_value, str) else error.validator_value
            if any(validator.is_type(value, kind) for kind in wanted):
                parent = config
                for key in list(error.absolute_path)[:-1]:
                    parent = parent[key]
                parent[error.absolute_path[-1]] = value
                fixed = True
        if not fixed:
            return


def schema_errors(config: dict) -> list[str]:
    schema = load_schema()
    return _errors(jsonschema.Draft202012Validator(schema), config, "")


def reference_errors(config: dict) -> list[str]:
    """Targets must name configured datasets and variants; each variant's overrides must make
    a valid `model` section (which catches misspelt option names)."""
    problems = []
    for kind in ("datasets", "variants"):
        for name in config["targets"][kind]:
            if name not in config[kind]:
                problems.append(f"targets.{kind}: '{name}' is not configured under {kind} ({', '.join(config[kind])})")
    model_schema = jsonschema.Draft202012Validator(load_schema()["properties"]["model"])
    for variant, override in config["variants"].items():
        problems += _errors(model_schema, deep_merge(config["model"], override), f"variants.{variant}")
    if config["embed"]["model"] != "default":
        from .datasets import DataError
        from .embed import resolve_model

        try:
            resolve_model(config["embed"]["model"])
        except DataError as err:
            problems.append(str(err))
    return problems
