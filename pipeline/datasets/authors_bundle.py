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
from numpy._core import multiarray as _multiarray
from numpy._core import numeric as _numeric

from . import authors_inter
from .base import DataError, RawData

FILES = {
    "inter": "inter.txt",
    "llm_items": "itm_emb_np.pkl",
    "llm_users": "usr_emb_np.pkl",
    "pca_items": "pca64_itm_emb_np.pkl",
    "neighbours": "sim_user_100.pkl",
}

# Plain containers and scalars, and numpy's pickle protocol for arrays, scalars and dtypes.
# Nothing that allocates from an argument is admitted (`bytes(n)`, `bytearray(n)`, or
# `numpy.ndarray(shape)`, which is only a token here for `_reconstruct`), and numpy's
# constructors may build no more bytes than the file holds: real data is all in the file.
_PLAIN = {("builtins", name) for name in ("list", "dict", "tuple", "set", "frozenset", "int", "float", "str")}
_NUMPY_MODULES = {"numpy.core.multiarray", "numpy._core.multiarray", "numpy.core.numeric", "numpy._core.numeric"}


class _NdarrayClass:
    """Stands for `numpy.ndarray` in a pickle: what `_reconstruct` builds, never called itself."""

    def __new__(cls, *args, **kwargs):
        raise pickle.UnpicklingError("refused to call numpy.ndarray directly: it allocates from its arguments")


def _numpy_constructor(name: str, limit: int):
    """numpy's pickle constructor `name`, refusing to build more than `limit` bytes."""

    def within(nbytes: int) -> None:
        if nbytes > limit:
            raise pickle.UnpicklingError(f"numpy {name} would build {nbytes} bytes from a {limit}-byte file")

    def reconstruct(cls, shape, typecode):
        if cls is not _NdarrayClass:
            raise pickle.UnpicklingError(f"refused to reconstruct {cls!r}: only numpy.ndarray")
        within(int(np.prod(shape, dtype=object)))
        return _multiarray._reconstruct(np.ndarray, shape, typecode)

    def dtype(*args):
        built = np.dtype(*args)
        within(built.itemsize)
        return built

    def scalar(dtype, *args):
        within(np.dtype(dtype).itemsize)
        return _multiarray.scalar(dtype, *args)

    def frombuffer(buffer, dtype, shape, order):
        within(int(np.prod(shape, dtype=object)) * np.dtype(dtype).itemsize)
        return _numeric._frombuffer(buffer, dtype, shape, order)

    return {"_reconstruct": reconstruct, "dtype": dtype, "scalar": scalar, "_frombuffer": frombuffer}.get(name)


class _RestrictedUnpickler(pickle.Unpickler):
    def __init__(self, data: bytes):
        super().__init__(io.BytesIO(data))
        self.limit = len(data)

    def find_class(self, module: str, name: str):
        if (module, name) in _PLAIN:
            return super().find_class(module, name)
        if (module, name) == ("numpy", "ndarray"):
            return _NdarrayClass
        constructor = _numpy_constructor(name, self.limit) if module in _NUMPY_MODULES | {"numpy"} else None
        if constructor is None or (module == "numpy") != (name == "dtype"):
            raise pickle.UnpicklingError(
                f"refused to load {module}.{name}: only numpy arrays and plain containers are allowed"
            )
        return constructor


def load_pickle(path: Path) -> object:
    try:
        return _RestrictedUnpickler(Path(path).read_bytes()).load()
    except (
        pickle.UnpicklingError,
        EOFError,
        AttributeError,
        ImportError,
        IndexError,
        TypeError,
        ValueError,
        OverflowError,
    ) as err:
        raise DataError(f"{path}: not a pickle of plain data ({err})") from err


# What a pickle may expand to as an array: its file size times this. A pickled array holds its
# data (8 bytes a float64); a list holds each number in 2-9 bytes; repeating one row by
# reference costs a byte or two per copy and is what this refuses.
EXPANSION = 16


def elements(value: object, sizes: dict[int, int] | None = None) -> int:
    """How many numbers `value` (arrays, lists, tuples, numbers) becomes as an array, counting
    every reference to a shared row again, without building anything (each object sized once)."""
    sizes = {} if sizes is None else sizes
    if id(value) in sizes:
        return sizes[id(value)]
    if isinstance(value, np.ndarray):
        count = value.size
    elif isinstance(value, (list, tuple)):
        count = sum(elements(item, sizes) for item in value)
    else:
        count = 1
    sizes[id(value)] = count
    return count


def load_array(path: Path, ndim: int = 2) -> np.ndarray:
    value = load_pickle(path)
    size = Path(path).stat().st_size
    try:
        count = elements(value)
    except RecursionError:  # nested deeper than any array (numpy allows 64 dimensions), or itself
        raise DataError(f"{path}: not a pickle of plain data (lists nested too deep, or containing themselves)")
    if 8 * count > EXPANSION * size:
        raise DataError(
            f"{path}: not a pickle of plain data (it would expand to {count} numbers, "
            f"{8 * count} bytes, from a {size}-byte file; more than {EXPANSION} times the file is refused)"
        )
    try:
        array = np.asarray(value)
    except ValueError as err:
        raise DataError(f"{path}: not an array ({err})") from err
    if array.ndim != ndim or array.dtype == object:
        raise DataError(f"{path}: expected a {ndim}-dimensional numeric array, got shape {array.shape} ({array.dtype})")
    return array


def read(paths: dict[str, Path], spec: dict) -> RawData:
    return authors_inter.read({"inter": Path(paths["dir"]) / FILES["inter"]}, spec)


def import_artifacts(folder: Path, items: pl.DataFrame, users: pl.DataFrame, hidden_size: int) -> dict[str, np.ndarray]:
    """The bundle's arrays in this pipeline's conventions: rows follow our ids (through the
    original ids in the id maps), float32 vectors, 1-based similar-user ids."""
    item_rows = items["original_id"].cast(pl.Int64).to_numpy() - 1
    user_rows = users["original_id"].cast(pl.Int64).to_numpy() - 1
    arrays = {name: load_array(folder / FILES[name]) for name in ("llm_items", "llm_users", "pca_items", "neighbours")}
    for name, rows, table in (
        ("llm_items", item_rows, "items"),
        ("pca_items", item_rows, "items"),
        ("llm_users", user_rows, "users"),
        ("neighbours", user_rows, "users"),
    ):
        if rows.max() >= len(arrays[name]):
            raise DataError(
                f"{folder / FILES[name]}: {len(arrays[name])} rows, but inter.txt has {table} up to id {rows.max() + 1}"
            )
    if arrays["pca_items"].shape[1] != hidden_size:
        raise DataError(
            f"{folder / FILES['pca_items']}: {arrays['pca_items'].shape[1]} dims, "
            f"but model.hidden_size is {hidden_size}"
        )
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


def export(
    folder: Path,
    interactions: pl.DataFrame,
    llm_items: np.ndarray,
    llm_users: np.ndarray,
    pca_items: np.ndarray,
    neighbours: np.ndarray,
) -> None:
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
