"""The LLM-ESR authors' released dataset folder, read and written.

Layout (`dir`): `inter.txt` (`user item` per line, 1-based, grouped by user in time order),
`itm_emb_np.pkl` (row i = item i+1), `usr_emb_np.pkl` (row r = user r+1),
`pca64_itm_emb_np.pkl` (row i = item i+1), `sim_user_100.pkl` (row r = user r+1; values are
0-based user rows, most similar first). The arrays are float64 (similar users int64), as the
authors' notebooks write them.

Pickles are untrusted input: `load_pickle` admits only numpy arrays and plain containers.
"""
from __future__ import annotations

import io
import pickle
from pathlib import Path

import numpy as np
import polars as pl

from . import llmesr
from .base import DataError, RawData

FILES = {
    "inter": "inter.txt",
    "llm_items": "itm_emb_np.pkl",
    "llm_users": "usr_emb_np.pkl",
    "pca_items": "pca64_itm_emb_np.pkl",
    "neighbours": "sim_user_100.pkl",
}

_ALLOWED = {
    ("builtins", name) for name in ("list", "dict", "tuple", "set", "frozenset", "int", "float", "str", "bytes", "bytearray")
} | {
    (module, name)
    for module in ("numpy.core.multiarray", "numpy._core.multiarray")
    for name in ("_reconstruct", "scalar")
} | {("numpy", "ndarray"), ("numpy", "dtype"), ("numpy.core.numeric", "_frombuffer"), ("numpy._core.numeric", "_frombuffer")}


class _RestrictedUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        if (module, name) not in _ALLOWED:
            raise pickle.UnpicklingError(f"refused to load {module}.{name}: only numpy arrays and plain containers are allowed")
        return super().find_class(module, name)


def load_pickle(path: Path) -> object:
    try:
        return _RestrictedUnpickler(io.BytesIO(Path(path).read_bytes())).load()
    except (pickle.UnpicklingError, EOFError, AttributeError, ImportError, IndexError, TypeError, ValueError) as err:
        raise DataError(f"{path}: not a pickle of plain data ({err})") from err


def load_array(path: Path, ndim: int = 2) -> np.ndarray:
    value = load_pickle(path)
    try:
        array = np.asarray(value)
    except ValueError as err:
        raise DataError(f"{path}: not an array ({err})") from err
    if array.ndim != ndim or array.dtype == object:
        raise DataError(f"{path}: expected a {ndim}-dimensional numeric array, got shape {array.shape} ({array.dtype})")
    return array


def read(paths: dict[str, Path], spec: dict) -> RawData:
    return llmesr.read({"inter": Path(paths["dir"]) / FILES["inter"]}, spec)


def import_artifacts(folder: Path, items: pl.DataFrame, users: pl.DataFrame, hidden_size: int) -> dict[str, np.ndarray]:
    """The bundle's arrays in this pipeline's conventions: rows follow our ids (through the
    original ids in the id maps), float32 vectors, 1-based similar-user ids."""
    item_rows = items["original_id"].cast(pl.Int64).to_numpy() - 1
    user_rows = users["original_id"].cast(pl.Int64).to_numpy() - 1
    arrays = {name: load_array(folder / FILES[name]) for name in ("llm_items", "llm_users", "pca_items", "neighbours")}
    for name, rows, table in (("llm_items", item_rows, "items"), ("pca_items", item_rows, "items"),
                              ("llm_users", user_rows, "users"), ("neighbours", user_rows, "users")):
        if rows.max() >= len(arrays[name]):
            raise DataError(f"{folder / FILES[name]}: {len(arrays[name])} rows, but inter.txt has {table} up to id {rows.max() + 1}")
    if arrays["pca_items"].shape[1] != hidden_size:
        raise DataError(f"{folder / FILES['pca_items']}: {arrays['pca_items'].shape[1]} dims, but model.hidden_size is {hidden_size}")
    # Similar users are 0-based rows of the bundle's users; map them to our 1-based ids.
    ours = np.full(len(arrays["llm_users"]), -1, dtype=np.int64)
    ours[user_rows] = np.arange(1, len(user_rows) + 1)
    neighbours = ours[arrays["neighbours"][user_rows].astype(np.int64)]
    if (neighbours < 0).any():
        raise DataError(f"{folder / FILES['neighbours']}: refers to users that inter.txt does not have")
    return {
        "llm_items": arrays["llm_items"][item_rows].astype(np.float32),
        "llm_users": arrays["llm_users"][user_rows].astype(np.float32),
        "pca_items": arrays["pca_items"][item_rows].astype(np.float32),
        "neighbours": neighbours.astype(np.int32),
    }


def export(folder: Path, interactions: pl.DataFrame, llm_items: np.ndarray, llm_users: np.ndarray,
           pca_items: np.ndarray, neighbours: np.ndarray) -> None:
    """Write the bundle layout from this pipeline's artifacts (our ids, which are already
    1-based and contiguous; similar users become 0-based rows)."""
    from ..io import atomic_path

    folder.mkdir(parents=True, exist_ok=True)
    with atomic_path(folder / FILES["inter"]) as tmp:
        np.savetxt(tmp, interactions.select("user", "item").to_numpy(), fmt="%d %d")
    arrays = {
        "llm_items": llm_items.astype(np.float64),
        "llm_users": llm_users.astype(np.float64),
        "pca_items": pca_items.astype(np.float64),
        "neighbours": neighbours.astype(np.int64) - 1,
    }
    for name, array in arrays.items():
        with atomic_path(folder / FILES[name]) as tmp:
            tmp.write_bytes(pickle.dumps(array, protocol=4))
