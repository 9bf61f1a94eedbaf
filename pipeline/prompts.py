"""Stage `prompts`: item and user text for the LLM encoder (`prompts items`, `prompts users`).

Item prompt = the dataset's `item_prompt` template (Python format strings over item columns,
with optional segments that are left out when their fields are missing). User prompt =
`user_prompt` with `{items}` replaced by the `user_item_column` of the user's TRAINING items
only (all but the last two, which are the validation and test targets), joined by ", ".
A long history is cut so that the encoder reads its most recent items: by default the prompt
keeps the most recent items whose whole prompt fits the encoder's token window (counted with
the encoder's own tokenizer; at least the last item is kept); with `user_prompt_max_chars`
set it keeps the last that many characters of the item list instead (the authors' notebooks
keep the last 8,000; their Beauty notebook then sends only the first 4,095 characters of a
longer prompt to the encoder, which drops the newest items and the closing sentence).
"""

from __future__ import annotations

import argparse
import json
import logging
import string
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import polars as pl

from .datasets import with_defaults
from .errors import DataError
from .io import write_parquet

log = logging.getLogger(__name__)

DEFAULT_ITEM_COLUMN_CANDIDATES = ("title", "name", "movie_title", "item_name")
# The dataset options each kind of prompt depends on (and its rule reruns for).
ITEM_OPTIONS = ("format", "item_prompt", "missing_text", "item_prompt_max_chars", "field_max_chars")
USER_OPTIONS = ("format", "user_prompt", "user_item_column", "user_prompt_max_chars")


@dataclass(frozen=True)
class TokenWindow:
    """How many tokens a text is for an encoder (special tokens included), and how many it reads."""

    count: Callable[[list[str]], list[int]]
    size: int

    @classmethod
    def of_encoder(cls, model: str) -> "TokenWindow":
        from transformers.utils import logging as hf_logging

        from .embed import load_encoder

        encoder = load_encoder(model, "cpu")
        tokenizer = encoder.tokenizer
        hf_logging.set_verbosity_error()  # texts longer than the window are the point here, not a warning

        def count(texts: list[str]) -> list[int]:
            return [len(ids) for ids in tokenizer(texts, add_special_tokens=True, truncation=False)["input_ids"]]

        return cls(count, int(encoder.max_seq_length))


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


def item_prompts(
    items: pl.DataFrame,
    template: str | list | None,
    missing_text: str,
    max_chars: int,
    field_max_chars: dict[str, int] | None = None,
) -> pl.DataFrame:
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


def user_histories(interactions: pl.DataFrame, items: pl.DataFrame, column: str) -> tuple[pl.Series, list[list[str]]]:
    """(users, each user's training items' `column`, oldest first); items without it are left
    out (as in the authors' code)."""
    titles = items.select("item", title=pl.when(pl.col(column) != "").then(pl.col(column)))
    histories = (
        interactions.join(titles, on="item", how="left", maintain_order="left")
        .group_by("user", maintain_order=True)
        .agg(pl.col("title").head(pl.len() - 2).drop_nulls())  # training part: without validation and test items
    )
    return histories["user"], histories["title"].to_list()


# Prompts tokenized per call: only their lengths are kept, so memory stays flat in the number
# of users (one call for a million prompts held gigabytes of token ids).
TOKENIZE_CHUNK = 10_000


def recent_items_that_fit(template: str, histories: list[list[str]], window: TokenWindow) -> list[int]:
    """For each history the largest k (at least 1 when it has items) such that the prompt of
    its last k items fits the window: a batched tokenization of all users at full length,
    then a binary search, in batched rounds, for those that do not fit."""

    def prompt(history: list[str], k: int) -> str:
        return template.format(items=", ".join(history[len(history) - k :]))

    def token_counts(rows: np.ndarray, ks: np.ndarray) -> np.ndarray:
        counts = [
            window.count(
                [prompt(histories[r], k) for r, k in zip(rows[a : a + TOKENIZE_CHUNK], ks[a : a + TOKENIZE_CHUNK])]
            )
            for a in range(0, len(rows), TOKENIZE_CHUNK)
        ]
        return np.concatenate([np.asarray(c, dtype=np.int64) for c in counts]) if counts else np.zeros(0, np.int64)

    n = np.array([len(h) for h in histories], dtype=np.int64)
    fits = token_counts(np.arange(len(histories)), n) <= window.size
    low, high = np.where(fits, n, np.minimum(n, 1)), np.where(fits, n, n - 1)
    while (open_rows := np.flatnonzero(low < high)).size:
        middle = (low[open_rows] + high[open_rows] + 1) // 2
        counts = token_counts(open_rows, middle)
        fit = counts <= window.size
        low[open_rows[fit]] = middle[fit]
        high[open_rows[~fit]] = middle[~fit] - 1
    return low.tolist()


def user_prompts(
    interactions: pl.DataFrame,
    items: pl.DataFrame,
    template: str,
    column: str,
    max_chars: int | None = None,
    window: TokenWindow | None = None,
) -> pl.DataFrame:
    """One text per user from the `column` of the training items, cut to the last `max_chars`
    characters of the item list, or else to the most recent items that fit `window`."""
    if template_fields(template) != ["items"]:
        raise DataError(f"user_prompt must contain exactly one field, {{items}}; got: {template!r}")
    users, histories = user_histories(interactions, items, column)
    if max_chars is not None:
        texts = [template.format(items=", ".join(h)[-max_chars:]) for h in histories]
    elif window is not None:
        kept = recent_items_that_fit(template, histories, window)
        cut = sum(k < len(h) for k, h in zip(kept, histories))
        log.info(
            "user prompts fit the encoder's %d-token window: %d of %d users keep only their most recent "
            "items (%.1f%% of the items listed)",
            window.size,
            cut,
            len(histories),
            100 * sum(kept) / max(sum(map(len, histories)), 1),
        )
        texts = [template.format(items=", ".join(h[len(h) - k :])) for h, k in zip(histories, kept)]
    else:
        texts = [template.format(items=", ".join(h)) for h in histories]
    return pl.DataFrame({"user": users, "text": texts})


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="pipeline prompts", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    kinds = parser.add_subparsers(dest="kind", required=True)
    for kind in ("items", "users"):
        sub = kinds.add_parser(kind)
        sub.add_argument("--spec", required=True, help="the dataset's config entry, as JSON")
        sub.add_argument("--items", required=True, type=Path, help="the ingested item table")
        sub.add_argument("--out", required=True, type=Path)
    kinds.choices["users"].add_argument("--interactions", required=True, type=Path)
    kinds.choices["users"].add_argument(
        "--encoder", help="embed.model, whose token window the prompts fit (unless user_prompt_max_chars is set)"
    )
    args = parser.parse_args(argv)
    spec = with_defaults(json.loads(args.spec))
    items = pl.read_parquet(args.items)

    if args.kind == "items":
        text = item_prompts(
            items,
            spec.get("item_prompt"),
            spec["missing_text"],
            spec["item_prompt_max_chars"],
            spec.get("field_max_chars"),
        )
        if not [c for c in items.columns if c not in ("item", "original_id")]:
            log.warning("the dataset has no item text: prompts carry only item ids, so the semantic view learns little")
        log.info("item prompt example: %r", text["text"][0])
    else:
        column = user_item_column(items, spec.get("user_item_column"))
        max_chars = spec["user_prompt_max_chars"]
        window = TokenWindow.of_encoder(args.encoder) if max_chars is None and args.encoder else None
        text = user_prompts(pl.read_parquet(args.interactions), items, spec["user_prompt"], column, max_chars, window)
        log.info("user prompt example (user column %r): %r", column, text["text"][0][:500])
    write_parquet(text, args.out)
