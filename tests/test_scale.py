"""What large datasets lean on: an epoch cut to its first batches (smoke runs, the scale
benchmark), row-sparse steps of the embedding tables, and the progress a long loop logs."""

import logging

import numpy as np
import polars as pl
import pytest
import torch

from pipeline.console import ProgressLog
from pipeline.data import Sequences
from pipeline.lazy_adam import LazyAdam
from pipeline.models import build_model
from pipeline.models.method import Artifacts
from pipeline.train import build_loop, finite_gradients, train, train_epoch, uses_sparse_embeddings

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


@pytest.mark.parametrize("gradient_scale", [1.0, 1e-7])  # sqrt(v) far above eps, and near it
def test_lazy_adam_is_adam_and_a_step_touches_only_the_rows_looked_up(gradient_scale):
    torch.manual_seed(0)
    start = torch.randn(50, 4)
    dense, lazy = torch.nn.Parameter(start.clone()), torch.nn.Parameter(start.clone())
    adam, lazy_adam = torch.optim.Adam([dense], lr=0.01), LazyAdam([lazy], lr=0.01)
    draws = torch.Generator().manual_seed(1)
    for step in range(700):  # rows caught up term by term (early steps) and by the series
        rows = torch.randperm(50, generator=draws)[: int(torch.randint(1, 6, (1,), generator=draws))]
        rows = torch.cat([rows, rows[:1]])  # a row looked up twice: its gradients add up
        values = gradient_scale * torch.randn(len(rows), 4, generator=draws)
        dense.grad = torch.zeros(50, 4).index_add_(0, rows, values)
        adam.step()
        before = lazy.detach().clone()
        lazy.grad = torch.sparse_coo_tensor(rows[None], values, (50, 4), check_invariants=True)
        lazy_adam.step()
        moved = set(torch.nonzero((lazy != before).any(1)).flatten().tolist())
        assert moved <= set(rows.tolist())
        if step == 150:  # resumption mid-way: a new optimizer from the state dict
            state = lazy_adam.state_dict()
            lazy_adam = LazyAdam([lazy], lr=0.01)
            lazy_adam.load_state_dict(state)
        if step % 97 == 0 or step == 699:
            lazy_adam.flush()
            assert torch.allclose(lazy, dense, atol=1e-5)
    assert (dense - start).abs().max() > 0.3


def test_auto_sparse_embeddings_only_for_a_large_catalogue_on_cpu_with_sampled_items_and_no_decay():
    options = train_options
    assert options().sparse_embeddings == "auto"  # the default
    assert uses_sparse_embeddings(options(), 35_000, CPU) and not uses_sparse_embeddings(options(), 34_999, CPU)
    assert not uses_sparse_embeddings(options(), 10**6, torch.device("cuda"))
    assert not uses_sparse_embeddings(options(loss="ce"), 10**6, CPU)
    assert not uses_sparse_embeddings(options(weight_decay=0.01), 10**6, CPU)
    assert uses_sparse_embeddings(options(sparse_embeddings=True), 10, CPU)
    assert not uses_sparse_embeddings(options(sparse_embeddings=False), 10**6, CPU)


def test_sparse_embeddings_train_as_adam_does():
    n_items = 400  # a catalogue wider than a batch's items, negatives included
    rng = np.random.default_rng(0)
    frame = pl.DataFrame({"user": np.repeat(np.arange(1, 41), 6), "item": rng.integers(1, n_items + 1, 240)})
    seqs = Sequences.from_interactions(frame, n_items)
    options = model_options(llmesr=False)
    tables, losses = {}, {}
    for sparse in (False, True):
        torch.manual_seed(0)
        model = build_model("sasrec", options, n_items)
        start = model.item_embedding.weight.detach().clone()
        loop = build_loop(
            "sasrec", model, options, train_options(batches_per_epoch=5, sparse_embeddings=sparse), seqs, [], CPU
        )
        losses[sparse] = train_epoch(loop, 1, np.random.default_rng(0))[0]
        assert model.item_embedding.weight.grad is None or model.item_embedding.weight.grad.is_sparse == sparse
        tables[sparse] = [model.item_embedding.weight.detach().clone(), model.inputs.position.weight.detach().clone()]
        assert (tables[sparse][0] != start).any(1).sum() > 100  # rows beyond the last batch's
    # Every lookup read the rows Adam would have given it, and the tables end as Adam leaves them.
    # (The attention's key biases, whose true gradient is zero, take Adam-normalised rounding
    # noise either way and are not compared.)
    assert np.allclose(losses[True], losses[False], rtol=1e-5)
    assert all(torch.allclose(lazy, dense, atol=1e-5) for lazy, dense in zip(tables[True], tables[False]))


def test_a_non_finite_row_sparse_gradient_is_caught():
    table = torch.nn.Parameter(torch.zeros(5, 2))
    table.grad = torch.sparse_coo_tensor(
        [[1, 3]], torch.tensor([[1.0, 2.0], [float("nan"), 0.0]]), (5, 2), check_invariants=True
    )
    assert not finite_gradients([table])
    table.grad = torch.sparse_coo_tensor([[1, 3]], torch.ones(2, 2), (5, 2), check_invariants=True)
    assert finite_gradients([table])


def test_llmesr_with_sparse_embeddings_trains_and_resumes_to_the_uninterrupted_result(tmp_path):
    seqs = sequences([5, 9, 6, 8, 7] * 6, seed=2)
    llm, pca = (t.numpy() for t in tables())
    artifacts = Artifacts(llm, pca, neighbours=np.tile(np.arange(1, 4), (seqs.n_users, 1)))
    run = lambda epochs, checkpoint=None: train(
        "sasrec",
        model_options(),
        train_options(max_epochs=epochs, patience=5, sparse_embeddings=True),
        seqs,
        candidates_for(seqs),
        CPU,
        artifacts,
        checkpoint,
        "same run",
    )
    whole_state, whole = run(3)
    run(2, tmp_path / "resume.pt")
    resumed_state, resumed = run(3, tmp_path / "resume.pt")
    assert [e["loss"] for e in resumed["epochs"]] == [e["loss"] for e in whole["epochs"]]
    assert all(torch.equal(resumed_state[k], whole_state[k]) for k in whole_state)
