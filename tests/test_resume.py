"""A training job killed mid-way and started again ends exactly where an uninterrupted run does."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import polars as pl
import pytest
import torch

from pipeline.config import default_config

from conftest import REPO


def write_inputs(folder, n_users=500, n_items=60, length=25):
    rng = np.random.default_rng(0)
    frame = pl.DataFrame(
        {
            "user": np.repeat(np.arange(1, n_users + 1), length).astype(np.int32),
            "item": rng.integers(1, n_items + 1, n_users * length).astype(np.int32),
        }
    )
    frame.write_parquet(folder / "interactions.parquet")
    pl.DataFrame({"item": np.arange(1, n_items + 1, dtype=np.int32)}).write_parquet(folder / "items.parquet")
    targets = frame.group_by("user", maintain_order=True).agg(pl.col("item").get(length - 2))["item"].to_numpy()
    candidates = np.concatenate([targets[:, None], rng.integers(1, n_items + 1, (n_users, 10))], axis=1)
    np.savez(folder / "candidates.npz", valid=candidates, test=candidates)


def train_command(folder, out, max_epochs=6):
    config = default_config()
    model = {
        **config["model"],
        "hidden_size": 32,
        "max_len": 20,
        "llmesr": {**config["model"]["llmesr"], "enabled": False},
    }
    options = {k: v for k, v in config["train"].items() if k not in ("seed", "seeds")}
    options.update(seed=7, max_epochs=max_epochs, patience=50, device="cpu", batch_size=32)
    return [
        sys.executable,
        "-m",
        "pipeline",
        "train",
        "--interactions",
        str(folder / "interactions.parquet"),
        "--item-table",
        str(folder / "items.parquet"),
        "--candidates",
        str(folder / "candidates.npz"),
        "--backbone",
        "sasrec",
        "--model",
        json.dumps(model),
        "--train",
        json.dumps(options),
        "--out-checkpoint",
        str(out / "model.pt"),
        "--out-history",
        str(out / "history.json"),
        "--threads",
        "1",
    ]


def history_without_times(path):
    history = json.loads(path.read_text())
    return [{k: v for k, v in e.items() if not k.endswith("seconds")} for e in history["epochs"]], history["best_epoch"]


@pytest.mark.slow  # spawns `python -m pipeline train` processes
def test_killed_training_resumes_to_the_same_result(tmp_path):
    write_inputs(tmp_path)
    env = dict(os.environ, PYTHONPATH=str(REPO))
    whole, interrupted = tmp_path / "whole", tmp_path / "interrupted"
    whole.mkdir()
    interrupted.mkdir()
    subprocess.run(train_command(tmp_path, whole), check=True, env=env, capture_output=True)

    process = subprocess.Popen(train_command(tmp_path, interrupted), env=env, stderr=subprocess.PIPE, text=True)
    state = interrupted / "resume.pt"
    deadline = time.time() + 120
    while time.time() < deadline and process.poll() is None:
        if state.exists() and torch.load(state, weights_only=True)["progress"]["epoch"] >= 2:
            process.send_signal(signal.SIGTERM)
            break
        time.sleep(0.05)
    process.wait()
    assert process.returncode == -signal.SIGTERM, "training should have been killed mid-way"
    done = torch.load(state, weights_only=True)["progress"]["epoch"]
    assert 2 <= done < 6 and not (interrupted / "model.pt").exists()

    result = subprocess.run(train_command(tmp_path, interrupted), check=True, env=env, capture_output=True, text=True)
    assert f"resuming after epoch {done}" in result.stderr
    assert history_without_times(interrupted / "history.json") == history_without_times(whole / "history.json")
    ours = torch.load(interrupted / "model.pt", weights_only=True)["state_dict"]
    theirs = torch.load(whole / "model.pt", weights_only=True)["state_dict"]
    assert all(torch.equal(ours[k], theirs[k]) for k in theirs)
    assert not state.exists(), "a finished run removes its resume state"


@pytest.mark.slow  # spawns `python -m pipeline train` processes
def test_a_checkpoint_of_another_configuration_is_not_resumed(tmp_path):
    write_inputs(tmp_path, n_users=60)
    env = dict(os.environ, PYTHONPATH=str(REPO))
    command = train_command(tmp_path, tmp_path)
    options = json.loads(command[command.index("--train") + 1])
    torch.save({"fingerprint": "something else"}, tmp_path / "resume.pt")
    result = subprocess.run(command, check=True, env=env, capture_output=True, text=True)
    assert "WARNING not resuming from" in result.stderr and str(tmp_path / "resume.pt") in result.stderr
    assert json.loads((tmp_path / "history.json").read_text())["epochs_run"] == options["max_epochs"]


class Payload:
    """What a planted checkpoint could carry: code that runs when the file is unpickled."""

    def __init__(self, target):
        self.target = target

    def __reduce__(self):
        return os.system, (f"touch {self.target}",)


@pytest.mark.slow  # spawns `python -m pipeline train` processes
def test_a_planted_training_state_stops_the_job_and_runs_nothing(tmp_path):
    write_inputs(tmp_path, n_users=60)
    env = dict(os.environ, PYTHONPATH=str(REPO))
    torch.save({"fingerprint": Payload(tmp_path / "pwned")}, tmp_path / "resume.pt")
    result = subprocess.run(train_command(tmp_path, tmp_path), env=env, capture_output=True, text=True)
    assert result.returncode != 0 and not (tmp_path / "pwned").exists()
    assert f"{tmp_path / 'resume.pt'}: not a training state (resume.pt) written by this pipeline" in result.stderr
    assert "Traceback" not in result.stderr and not (tmp_path / "model.pt").exists()


def test_a_planted_model_checkpoint_is_refused_with_its_name(tmp_path):
    from pipeline.checkpoints import load_run
    from pipeline.datasets import DataError

    torch.save({"state_dict": Payload(tmp_path / "pwned")}, tmp_path / "model.pt")
    with pytest.raises(DataError, match="model.pt: not a model checkpoint"):
        load_run(tmp_path / "model.pt", torch.device("cpu"))
    assert not (tmp_path / "pwned").exists()
    torch.save([1, 2], tmp_path / "list.pt")  # loadable, but not a checkpoint
    with pytest.raises(DataError, match="list.pt: not a model checkpoint"):
        load_run(tmp_path / "list.pt", torch.device("cpu"))


def train_in_process(folder, monkeypatch, poison):
    """Train a tiny SASRec with the loss of the steps in `poison` (0-based) turned into NaN."""
    import pipeline.train as train_module
    from pipeline.data import Sequences

    config = default_config()
    model = {
        **config["model"],
        "hidden_size": 16,
        "max_len": 20,
        "llmesr": {**config["model"]["llmesr"], "enabled": False},
    }
    options = {k: v for k, v in config["train"].items() if k not in ("seed", "seeds")}
    options.update(seed=7, max_epochs=1, patience=5, batch_size=100, length_groups=1)  # one loss call per step
    options = train_module.TrainOptions.of(options)
    import pipeline.losses as losses_module

    real, calls = losses_module.bce_loss, []

    def poisoned(*args, **kwargs):
        calls.append(len(calls))
        loss = real(*args, **kwargs)
        return loss * float("nan") if calls[-1] in poison else loss

    monkeypatch.setattr(losses_module, "bce_loss", poisoned)
    sequences = Sequences.from_interactions(pl.read_parquet(folder / "interactions.parquet"), 60)
    valid = np.load(folder / "candidates.npz")["valid"]
    return train_module.train("sasrec", model, options, sequences, valid, torch.device("cpu"))


def test_a_step_with_a_nan_loss_is_skipped_and_counted(tmp_path, monkeypatch):
    write_inputs(tmp_path)
    state, history = train_in_process(tmp_path, monkeypatch, poison={1})
    assert history["epochs"][0]["skipped_steps"] == 1
    assert all(torch.isfinite(v).all() for v in state.values() if v.is_floating_point())
    assert np.isfinite(history["epochs"][0]["loss"])


def test_an_epoch_with_only_nan_steps_stops_with_a_clear_error(tmp_path, monkeypatch):
    write_inputs(tmp_path)
    with pytest.raises(RuntimeError, match="training diverged"):
        train_in_process(tmp_path, monkeypatch, poison=set(range(100)))


@pytest.mark.slow  # spawns `python -m pipeline train` processes
def test_a_second_trainer_on_the_same_run_refuses_while_the_first_runs(tmp_path):
    write_inputs(tmp_path)
    env = dict(os.environ, PYTHONPATH=str(REPO))
    first = subprocess.Popen(train_command(tmp_path, tmp_path, max_epochs=10_000), env=env, stderr=subprocess.DEVNULL)
    deadline = time.time() + 60
    while time.time() < deadline and not (tmp_path / "resume.pt").exists():
        time.sleep(0.05)
    second = subprocess.run(train_command(tmp_path, tmp_path), env=env, capture_output=True, text=True)
    still_running = first.poll() is None
    first.kill()
    first.wait()
    assert still_running and second.returncode != 0 and not (tmp_path / "history.json").exists()
    assert (
        f"{tmp_path / 'train.lock'}: a training of this run is already running here (pid {first.pid}" in second.stderr
    )
    # the lock died with the first trainer: a new one runs
    subprocess.run(train_command(tmp_path, tmp_path), env=env, check=True, capture_output=True)


def test_the_resume_fingerprint_covers_the_thread_count(tmp_path):
    from pipeline.train import fingerprint_of

    write_inputs(tmp_path, n_users=20)
    files = [tmp_path / "interactions.parquet"]
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = fingerprint_of("sasrec", {}, {}, files=files)
        torch.set_num_threads(2)
        two = fingerprint_of("sasrec", {}, {}, files=files)
    finally:
        torch.set_num_threads(before)
    assert one != two


def test_the_code_hash_follows_the_source(tmp_path, monkeypatch):
    import pipeline.provenance as provenance

    copy = tmp_path / "pipeline"
    copy.mkdir()
    (copy / "provenance.py").write_text("a = 1\n")
    monkeypatch.setattr(provenance, "__file__", str(copy / "provenance.py"))
    before = provenance.code_sha256()
    (copy / "train.py").write_text("b = 2\n")
    assert provenance.code_sha256() != before
