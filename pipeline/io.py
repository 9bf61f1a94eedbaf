"""Artifact I/O. Every writer goes through `atomic_path`: a killed job leaves a hidden
temporary file, never a complete-looking artifact."""

from __future__ import annotations

import hashlib
import json
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import polars as pl

from .errors import DataError


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary sibling of `path`; rename it onto `path` only if the block succeeds."""
    path = Path(path)
    # Same directory (same filesystem, so the rename is atomic) and the same suffix (np.save
    # and friends append one otherwise).
    tmp = path.with_name(f".{path.stem}.tmp{os.getpid()}{path.suffix}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        yield tmp
        os.replace(tmp, path)
    except OSError as err:  # name the artifact, not its temporary file
        raise OSError(err.errno, err.strerror, str(path)) from err
    finally:
        try:
            tmp.unlink(missing_ok=True)
        except OSError:
            pass


def write_json(obj: Any, path: str | Path) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=False, allow_nan=False) + "\n")


def read_json(path: str | Path) -> Any:
    return json.loads(Path(path).read_text())


def write_parquet(frame: pl.DataFrame, path: str | Path) -> None:
    with atomic_path(path) as tmp:
        frame.write_parquet(tmp)


def save_npy(array: np.ndarray, path: str | Path) -> None:
    with atomic_path(path) as tmp:
        np.save(tmp, array)


def save_torch(obj: Any, path: str | Path) -> None:
    import torch

    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


def load_torch(path: str | Path, what: str, map_location: Any = None) -> dict:
    """A checkpoint written by `save_torch`: tensors, numbers, strings and plain containers
    only (`weights_only`, so a planted file cannot run code). Anything else stops the job
    with a message naming the file."""
    import pickle

    import torch

    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError, TypeError, AttributeError) as err:
        raise DataError(
            f"{path}: not a {what} written by this pipeline ({type(err).__name__}: "
            f"{str(err).splitlines()[0] if str(err) else ''}); delete it (or restore the right file) "
            "and run again"
        ) from err
    if not isinstance(state, dict):
        raise DataError(
            f"{path}: not a {what} written by this pipeline (holds a {type(state).__name__}); delete it and run again"
        )
    return state


@contextmanager
def exclusive_lock(path: str | Path, holder: str) -> Iterator[None]:
    """Hold an exclusive POSIX lock on `path` (created if absent) for the block; if another
    process holds it, stop with a message naming that process. The lock dies with its
    process, however it ends, so a killed run never leaves a stale lock behind."""
    import fcntl

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as handle:
        try:
            fcntl.lockf(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.seek(0)
            raise DataError(
                f"{path}: {holder} is already running here ({handle.read().strip() or 'another process'}); "
                "wait for it to end, or stop it and run again"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()} on {os.uname().nodename}\n")
        handle.flush()
        yield


def file_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 24), b""):
            digest.update(block)
    return digest.hexdigest()
