"""The configuration schema and how config sections merge: one floor below the stages (config
checks, dataset readers, model builders all read them) and importing none of them."""

from __future__ import annotations

from pathlib import Path

import yaml

SCHEMA = Path(__file__).parent / "schemas" / "config.schema.yaml"


def load_schema() -> dict:
    return yaml.safe_load(SCHEMA.read_text())


# A variant's keys that are not `model` options: how it trains, its title and its table role.
VARIANT_KEYS = ("train", "title", "role")


def variant_parts(override: dict) -> tuple[dict, object]:
    """(model overrides, train overrides) of a variant: its `train` key changes how it trains,
    `title` and `role` say how tables show it, everything else is merged into `model`."""
    model = {key: value for key, value in override.items() if key not in VARIANT_KEYS}
    return model, override.get("train", {})


def deep_merge(base: dict, override: dict) -> dict:
    merged = dict(base)
    for key, value in override.items():
        nested = isinstance(value, dict) and isinstance(merged.get(key), dict)
        merged[key] = deep_merge(merged[key], value) if nested else value
    return merged


def leaves(tree: dict, prefix: tuple = ()) -> dict[tuple, object]:
    """The leaf values of nested sections, by their key path (("llmesr", "teacher"): "batch")."""
    found = {}
    for key, value in tree.items():
        found.update(leaves(value, prefix + (key,)) if isinstance(value, dict) else {prefix + (key,): value})
    return found
