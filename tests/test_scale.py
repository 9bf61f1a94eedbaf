"""What large datasets lean on: an epoch cut to its first batches (smoke runs, the scale benchmark)."""

import numpy as np
import torch

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
