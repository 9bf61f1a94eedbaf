import copy
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import torch

from pipeline.config import default_config
from pipeline.data import Sequences
from pipeline.losses import LossConfig
from pipeline.train import TrainOptions

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"


# Shared by the test modules: tiny model tables and options (test_models, test_losses, test_methods,
# test_paper_compat, test_variants) and the hand-made ingestion data (test_ingest, test_raw_formats).
N_ITEMS, LLM_DIM = 30, 24
CPU = torch.device("cpu")


# The shipped configuration with every default of the schema filled in.
CONFIG = default_config()


def model_options(llmesr=True, **overrides):
    options = copy.deepcopy(CONFIG["model"])
    options.update({"hidden_size": 8, "max_len": 20, **overrides})
    options["llmesr"]["enabled"] = llmesr
    return options


BACKBONES = ["sasrec", "gru4rec", "bert4rec"]


def method_options(method, **sections):
    options = model_options()
    options["method"] = method
    for name, values in sections.items():
        options[name] = {**options.get(name, {}), **values}
    return options


def sequences(lengths, seed=0):
    rng = np.random.default_rng(seed)
    frame = pl.DataFrame(
        {"user": np.repeat(np.arange(1, len(lengths) + 1), lengths), "item": rng.integers(1, N_ITEMS + 1, sum(lengths))}
    )
    return Sequences.from_interactions(frame, N_ITEMS)


def candidates_for(seqs):
    rng = np.random.default_rng(1)
    n = seqs.n_users
    return np.concatenate([seqs.targets(np.arange(n), 2)[:, None], rng.integers(1, N_ITEMS + 1, (n, 5))], axis=1)


def train_options(**overrides) -> TrainOptions:
    return TrainOptions.of({**CONFIG["train"], "seed": 0, "lr": 0.01, "batch_size": 8, **overrides})


def loss_config(**overrides) -> LossConfig:
    """The default loss options of `train` with `overrides`."""
    return train_options(**overrides).loss_config


def tables(seed=0):
    rng = np.random.default_rng(seed)
    return torch.from_numpy(rng.normal(size=(N_ITEMS, LLM_DIM)).astype(np.float32)), torch.from_numpy(
        rng.normal(size=(N_ITEMS, 8)).astype(np.float32)
    )


def user_sequences(n_users=12, length=8, seed=0):
    rng = np.random.default_rng(seed)
    frame = pl.DataFrame(
        {"user": np.repeat(np.arange(1, n_users + 1), length), "item": rng.integers(1, N_ITEMS + 1, n_users * length)}
    )
    return Sequences.from_interactions(frame, N_ITEMS)


ROWS = [
    ("u1", "a", 3),
    ("u1", "b", 1),
    ("u1", "c", 2),
    ("u1", "d", 4),
    ("u2", "a", 1),
    ("u2", "b", 2),
    ("u2", "c", 3),
    ("u3", "a", 5),
    ("u3", "b", 6),
    ("u3", "e", 7),
    ("u4", "a", 1),
    ("u4", "c", 2),
]
EXPECTED_INTERACTIONS = [(1, 1), (1, 2), (1, 3), (2, 3), (2, 1), (2, 2)]


def shared_data(*parts: str) -> Path:
    """A file under ../shared/data, or skip the test when that folder is absent."""
    path = SHARED.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"needs the shared real data at {path}, which is absent on this machine")
    return path


def run_snakemake(
    workdir: Path, *args: str, check: bool = True, snakefile: Path = REPO / "Snakefile"
) -> subprocess.CompletedProcess:
    """Run the repository's workflow (or the one of `snakefile`) with `workdir` as working directory."""
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    command = [sys.executable, "-m", "snakemake", "-s", str(snakefile), "--directory", str(workdir), *args]
    result = subprocess.run(command, capture_output=True, text=True, env=env, cwd=workdir)
    if check and result.returncode != 0:
        raise AssertionError(
            f"snakemake failed ({result.returncode}):\n{result.stdout[-5000:]}\n{result.stderr[-8000:]}"
        )
    return result


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    return tmp_path


def ml100k_folder() -> Path:
    """MovieLens-100K as shipped inside the recbole wheel (`make venv` installs it)."""
    import importlib.util

    spec = importlib.util.find_spec("recbole")
    if spec is None:
        pytest.skip("the recbole wheel (which carries ml-100k) is not installed; `make venv` installs it")
    return Path(list(spec.submodule_search_locations)[0]) / "dataset_example" / "ml-100k"


def ml100k_slice(path: Path, users: int) -> None:
    """The interactions of the `users` users of ml-100k with the fewest, as a RecBole .inter file."""
    inter = pl.read_csv(ml100k_folder() / "ml-100k.inter", separator="\t")
    counts = inter.group_by("user_id:token").len().sort("len", "user_id:token")
    chosen = counts["user_id:token"].head(users)
    inter.filter(pl.col("user_id:token").is_in(chosen.implode())).write_csv(path, separator="\t")
