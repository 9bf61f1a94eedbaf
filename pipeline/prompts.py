"""Stage `prompts`: item and user text for the LLM encoder.

Item prompt = the dataset's `item_prompt` template (Python format strings over item columns,
with optional segments that are left out when their fields are missing). User prompt =
`user_prompt` with `{items}` replaced by the `user_item_column` of the user's TRAINING items
only (all but the last two, which are the validation and test targets), joined by ", ",
keeping the last `user_prompt_max_chars` characters.
"""
from __future__ import annotations

import argparse
import json
import logging
import string
from pathlib import Path

import polars as pl

from .datasets import DataError, with_defaults
from .io import write_parquet

log = logging.getLogger(__name__)

DEFAULT_ITEM_COLUMN_CANDIDATES = ("title", "name", "movie_title", "item_name")


def template_fields(template: str) -> list[str]:
    return [name for _, name, _, _ in string.Formatter().parse(template) if name]


def default_item_template(columns: list[str]) -> str:
    """`column is {column}; ...` over the text columns, or the source id when there is no text."""
    if not columns:
        return "item {original_id}"
    return "; ".join(f"{c} is {{{c}}}" for c in columns) + "."


def segments(template: str | list) -> list[tuple[str, bool]]:
    """(text, optional) pieces of an item_prompt: a string, or a list of strings and
    {optional: string}."""
    if isinstance(template, str):
        return [(template, False)]
    return [(part["optional"], True) if isinstance(part, dict) else (part, False) for part in template]


def item_prompts(items: pl.DataFrame, template: str | list | None, missing_text: str, max_chars: int,
                 field_max_chars: dict[str, int] | None = None) -> pl.DataFrame:
    """One text per item. A field that is empty, or longer than its `field_max_chars`, is
    missing: it reads `missing_text` in a plain segment and drops an optional segment."""
    text_columns = [c for c in items.columns if c not in ("item", "original_id")]
    pieces = segments(template or default_item_template(text_columns))
    unknown = sorted({f for text, _ in pieces for f in template_fields(text)} - set(items.columns))
    if unknown:
        raise DataError(
            f"item_prompt refers to {', '.join(unknown)}, which the item table lacks "
            f"(columns: {', '.join(items.columns)})"
        )
    limits = field_max_chars or {}
    texts = []
    for row in items.iter_rows(named=True):
        values = {k: v for k, v in row.items() if v not in (None, "") and len(str(v)) <= limits.get(k, len(str(v)))}
        parts = []
        for text, optional in pieces:
            fields = template_fields(text)
            if optional and any(f not in values for f in fields):
                continue
            parts.append(text.format_map({f: values.get(f, missing_text) for f in fields}))
        texts.append("".join(parts)[:max_chars])
    return pl.DataFrame({"item": items["item"], "text": texts})


def user_item_column(items: pl.DataFrame, configured: str | None) -> str:
    if configured:
        if configured not in items.columns:
            raise DataError(
                f"user_item_column '{configured}' is not an item column (columns: {', '.join(items.columns)})"
            )
        return configured
    for candidate in DEFAULT_ITEM_COLUMN_CANDIDATES:
        if candidate in items.columns:
            return candidate
    return "original_id"


def user_prompts(interactions: pl.DataFrame, items: pl.DataFrame, template: str, column: str, max_chars: int) -> pl.DataFrame:
    """One text per user from the `column` of the training items; items without it are left
    out (as in the authors' code)."""
    if template_fields(template) != ["items"]:
        raise DataError(f"user_prompt must contain exactly one field, {{items}}; got: {template!r}")
    titles = items.select("item", title=pl.when(pl.col(column) != "").then(pl.col(column)))
    histories = (
        interactions.join(titles, on="item", how="left", maintain_order="left")
        .group_by("user", maintain_order=True)
        .agg(pl.col("title").head(pl.len() - 2).drop_nulls())  # training part: without validation and test items
        .select("user", history=pl.col("title").list.join(", ").str.slice(-max_chars))
    )
    texts = [template.format(items=h) for h in histories["history"]]
    return pl.DataFrame({"user": histories["user"], "text": texts})


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="pipeline prompts", description=__doc__)
    parser.add_argument("--spec", required=True, help="the dataset's config entry, as JSON")
    parser.add_argument("--interactions", required=True, type=Path)
    parser.add_argument("--items", required=True, type=Path)
    parser.add_argument("--out-items", required=True, type=Path)
    parser.add_argument("--out-users", required=True, type=Path)
    args = parser.parse_args(argv)
    spec = with_defaults(json.loads(args.spec))

    items = pl.read_parquet(args.items)
    interactions = pl.read_parquet(args.interactions)
    item_text = item_prompts(items, spec.get("item_prompt"), spec["missing_text"], spec["item_prompt_max_chars"],
                             spec.get("field_max_chars"))
    column = user_item_column(items, spec.get("user_item_column"))
    user_text = user_prompts(interactions, items, spec["user_prompt"], column, spec["user_prompt_max_chars"])
    if not [c for c in items.columns if c not in ("item", "original_id")]:
        log.warning("the dataset has no item text: prompts carry only item ids, so the semantic view learns little")
    log.info("item prompt example: %r", item_text["text"][0])
    log.info("user prompt example (user column %r): %r", column, user_text["text"][0][:500])
    write_parquet(item_text, args.out_items)
    write_parquet(user_text, args.out_users)
