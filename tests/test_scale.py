"""What large datasets lean on: an epoch cut to its first batches (smoke runs, the scale
benchmark), and the progress a long loop logs."""

import logging

import numpy as np
import torch

from pipeline.console import ProgressLog
from pipeline.models.method import Artifacts
from pipeline.train import train

from conftest import CPU, candidates_for, model_options, sequences, tables, train_options


def test_batches_per_epoch_cuts_each_epoch_to_its_first_batches():
    seqs = sequences([5, 9, 6, 8, 7] * 6, seed=2)  # 30 users: 4 batches of 8
    llm, pca = (t.numpy() for t in tables())
    artifacts = Artifacts(llm, pca, neighbours=np.tile(np.arange(1, 4), (seqs.n_users, 1)))
    run = lambda **options: train(
        "sasrec", model_options(), train_options(max_epochs=2, **options), seqs, candidates_for(seqs), CPU, artifacts
    )
    (full_state, full), (cut_state, cut) = run(), run(batches_per_epoch=2)
    assert [e["steps"] for e in full["epochs"]] == [4, 4] and [e["steps"] for e in cut["epochs"]] == [2, 2]
    assert all(0 < e["epoch_start_seconds"] <= e["train_seconds"] for e in cut["epochs"])  # the teacher cache
    assert any(not torch.equal(full_state[k], cut_state[k]) for k in full_state)
    # a cut as long as the epoch changes nothing
    _, same = run(batches_per_epoch=4)
    assert [e["loss"] for e in same["epochs"]] == [e["loss"] for e in full["epochs"]]


def test_progress_log_gives_the_share_done_and_an_estimate_and_stays_quiet_at_the_end(caplog):
    caplog.set_level(logging.INFO)
    progress = ProgressLog(logging.getLogger("test"), "full ranking, users", 400, every=0)
    progress.update(100)
    progress.update(400)  # the end: the stage's own summary follows
    (record,) = caplog.records
    assert record.getMessage().startswith("full ranking, users: 100 of 400 (25%) in ")
    assert record.getMessage().endswith(" s left") and record.console
    quiet = ProgressLog(logging.getLogger("test"), "x", 400, every=3600)
    quiet.update(100)
    assert len(caplog.records) == 1
