"""`python -m pipeline docs [--check]`: docs/configuration.md, generated from the schema (the
core sections of schemas/config.schema.yaml and each registered method's section), so that
the reference cannot drift from what the configuration accepts. `--check` only says whether
the file is current (exit 1 when it is not)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .config import full_schema
from .io import atomic_path

DOC = Path(__file__).parents[1] / "docs" / "configuration.md"
HEADER = """# Configuration reference

Generated from the schema by `python -m pipeline docs`; do not edit by hand (a test fails when
it is stale). `config.yaml` holds what a user edits (targets, datasets, variants); every other
option has its default here. Override any key with `--config section='{key: value}'` or in a file
passed with `--configfile` (a dataset entry there replaces the shipped entry of that name whole).
"""


def kind(schema: dict) -> str:
    if "enum" in schema:
        return " / ".join(f"`{json.dumps(value)}`" for value in schema["enum"])
    if "oneOf" in schema:
        return " or ".join(kind(choice) for choice in schema["oneOf"])
    if "$ref" in schema:
        return "dataset entry"
    kinds = schema.get("type", "")
    kinds = kinds if isinstance(kinds, list) else [kinds]
    bounds = [
        f"{word} {schema[key]}"
        for key, word in (("minimum", ">="), ("exclusiveMinimum", ">"), ("maximum", "<="), ("exclusiveMaximum", "<"))
        if key in schema
    ]
    return " or ".join(filter(None, kinds)) + (f" ({', '.join(bounds)})" if bounds else "")


def cell(text: str) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")


def rows(schema: dict, prefix: str) -> list[str]:
    """One table row per leaf option under `schema`, nested sections flattened to dotted keys."""
    out = []
    for name, sub in schema.get("properties", {}).items():
        key = f"{prefix}{name}"
        if sub.get("type") == "object" and "properties" in sub and sub.get("additionalProperties") is False:
            if sub.get("description"):
                out.append(f"| `{key}` | section | | {cell(sub['description'])} |")
            out += rows(sub, f"{key}.")
            continue
        default = f"`{json.dumps(sub['default'])}`" if "default" in sub else ""
        out.append(f"| `{key}` | {cell(kind(sub))} | {cell(default)} | {cell(sub.get('description', ''))} |")
    return out


def render() -> str:
    schema = full_schema()
    table = ["| key | type | default | meaning |", "|---|---|---|---|"]
    parts = [HEADER]
    for section, sub in schema["properties"].items():
        parts.append(f"## `{section}`\n")
        if sub.get("description"):
            parts.append(cell(sub["description"]) + "\n")
        if section == "datasets":
            dataset = schema["$defs"]["dataset"]
            parts.append("\n".join(table + rows(dataset, "datasets.NAME.")) + "\n")
        elif section != "variants":
            parts.append("\n".join(table + rows(sub, f"{section}.")) + "\n")
    return "\n".join(parts)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="pipeline docs", description=__doc__)
    parser.add_argument("--check", action="store_true", help="only check that the file is current")
    parser.add_argument("--out", type=Path, default=DOC)
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        if not args.out.is_file() or args.out.read_text() != text:
            sys.exit(f"{args.out} is stale: run `python -m pipeline docs`")
        return
    with atomic_path(args.out) as tmp:
        tmp.write_text(text)
