import copy

import numpy as np
import polars as pl
import pytest
import torch

from pipeline.data import Sequences
from pipeline.losses import bce_loss
from pipeline.models import build_model
from pipeline.models.llmesr import SelfDistillation, cached_representations, cached_teacher, distillation_teacher
from pipeline.models.method import Artifacts
from pipeline.train import accumulate_gradients, length_groups, train, training_batch

from conftest import N_ITEMS, model_options, tables, train_options, user_sequences


def llmesr_model(**overrides):
    torch.manual_seed(0)
    llm, pca = tables()
    return build_model("sasrec", model_options(**overrides), N_ITEMS, llm, pca)


def test_pca_initialises_the_id_table_and_padding_is_zero():
    _, pca = tables()
    model = llmesr_model()
    assert torch.equal(model.id_embedding.weight[1:].detach(), pca)
    assert torch.count_nonzero(model.id_embedding.weight[0]) == 0


def test_llm_table_stays_frozen_while_the_rest_trains():
    model = llmesr_model()
    llm_before = model.llm_items.clone()
    adapter_before = copy.deepcopy(model.adapter.state_dict())
    assert all(p is not model.llm_items for p in model.parameters())
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    seq = torch.randint(1, N_ITEMS + 1, (4, 6))
    for _ in range(3):
        loss = bce_loss(model.sequence_states(seq), seq, torch.randint(1, N_ITEMS + 1, seq.shape), model)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert torch.equal(model.llm_items, llm_before)
    assert not torch.equal(model.adapter[0].weight, adapter_before["0.weight"])


@pytest.mark.parametrize("llmesr", [False, True])
def test_causal_mask_hides_later_items(llmesr):
    seq = torch.tensor([[0, 3, 5, 7, 9, 11]])
    changed = seq.clone()
    changed[0, 4:] = torch.tensor([2, 4])  # only the last two items differ
    for causal in (True, False):
        torch.manual_seed(0)
        llm, pca = tables()
        model = build_model("sasrec", model_options(llmesr=llmesr, causal=causal), N_ITEMS, llm, pca).eval()
        before, after = model.sequence_states(seq), model.sequence_states(changed)
        earlier_equal = torch.allclose(before[0, :4], after[0, :4], atol=1e-6)
        assert earlier_equal == causal, f"causal={causal}: earlier states {'changed' if causal else 'unchanged'}"


@pytest.mark.parametrize("llmesr", [False, True])
def test_extra_padding_changes_nothing(llmesr):
    torch.manual_seed(0)
    llm, pca = tables()
    model = build_model("sasrec", model_options(llmesr=llmesr), N_ITEMS, llm, pca).eval()
    tight = torch.tensor([[4, 8, 15], [0, 16, 23]])
    padded = torch.cat([torch.zeros(2, 5, dtype=torch.long), tight], dim=1)
    torch.testing.assert_close(model.sequence_states(tight)[:, -1], model.sequence_states(padded)[:, -1])


def test_distillation_teacher_is_the_mean_of_the_neighbours():
    model = llmesr_model(dropout=0.0)
    seqs = user_sequences()
    neighbours = np.array([[1, 2], [3, 4]])
    teacher, has = distillation_teacher(model, seqs, neighbours, 20, torch.device("cpu"))
    with torch.no_grad():
        states = model.sequence_states(torch.from_numpy(seqs.padded(np.array([1, 2, 3, 4]), 3, 20)))[:, -1]
    torch.testing.assert_close(teacher, torch.stack([states[:2].mean(0), states[2:].mean(0)]))
    assert has.all()


def test_distillation_uses_the_retrieved_users():
    model = llmesr_model(dropout=0.0)
    seqs = user_sequences()
    student = model.sequence_states(torch.from_numpy(seqs.padded(np.array([0]), 3, 20)))[:, -1]
    cached = cached_representations(model, seqs, 20, torch.device("cpu"))
    for make_teacher in (
        lambda n: distillation_teacher(model, seqs, n, 20, torch.device("cpu")),
        lambda n: cached_teacher(cached, seqs, n),
    ):
        losses = []
        for neighbours in (np.array([[1, 2, 3]]), np.array([[4, 5, 6]])):
            teacher, _ = make_teacher(neighbours)
            losses.append(torch.nn.functional.mse_loss(student, teacher).item())
        assert losses[0] != pytest.approx(losses[1])
    # the cache holds each user's representation of its training input, as the batch teacher computes it
    torch.testing.assert_close(
        cached_teacher(cached, seqs, np.array([[1, 2]]))[0],
        distillation_teacher(model, seqs, np.array([[1, 2]]), 20, torch.device("cpu"))[0],
    )


def test_training_is_deterministic_and_uses_distillation():
    seqs = user_sequences(n_users=20, length=10)
    rng = np.random.default_rng(1)
    candidates = np.concatenate(
        [seqs.targets(np.arange(20), 2)[:, None], rng.integers(1, N_ITEMS + 1, (20, 5))], axis=1
    )
    llm, pca = (t.numpy() for t in tables())
    neighbours = np.stack([np.roll(np.arange(1, 21), -i)[1:11] for i in range(20)]).astype(np.int32)
    options = train_options(seed=3, max_epochs=3, patience=5)
    runs = [
        train(
            "sasrec", model_options(), options, seqs, candidates, torch.device("cpu"), Artifacts(llm, pca, neighbours)
        )
        for _ in range(2)
    ]
    strip = lambda h: [{k: v for k, v in e.items() if not k.endswith("seconds")} for e in h["epochs"]]
    assert strip(runs[0][1]) == strip(runs[1][1])
    assert all(e["distill_loss"] > 0 for e in runs[0][1]["epochs"])
    for key in runs[0][0]:
        assert torch.equal(runs[0][0][key], runs[1][0][key])


def indexing_backward_nodes(tensor: torch.Tensor) -> list:
    """The IndexBackward0 nodes (backward of `x[index]`) in the autograd graph behind `tensor`."""
    found, stack, seen = [], [tensor.grad_fn], set()
    while stack:
        node = stack.pop()
        if node is None or node in seen:
            continue
        seen.add(node)
        if type(node).__name__ == "IndexBackward0":
            found.append(node)
        stack.extend(next_node for next_node, _ in node.next_functions)
    return found


@pytest.mark.parametrize("backbone", ["sasrec", "gru4rec", "bert4rec"])
def test_no_gradient_is_summed_over_repeated_indices_in_a_thread_dependent_order(backbone):
    # On CPU the backward of `x[index]` adds the rows of repeated indices in whatever order the
    # threads reach them (PyTorch's reproducibility notes), so LLM-ESR training, where an item
    # occurs many times per batch, did not repeat bit for bit with 2 threads.
    torch.manual_seed(0)
    llm, pca = tables()
    model = build_model(backbone, model_options(), N_ITEMS, llm, pca)
    seqs = user_sequences()
    inputs, targets = seqs.training_pairs(np.arange(12), 20)
    negatives = np.where(targets > 0, (targets % N_ITEMS) + 1, 0)
    inputs, targets, negatives = (torch.from_numpy(a) for a in (inputs, targets, negatives))
    assert torch.unique(inputs[inputs > 0], return_counts=True)[1].max() > 1  # items do repeat
    loss = bce_loss(model.sequence_states(inputs), targets, negatives, model)
    for node in indexing_backward_nodes(loss):
        for index in node._saved_indices:
            if index is not None and index.dtype != torch.bool:  # a mask never repeats a row
                assert index.unique().numel() == index.numel(), f"{backbone}: gradient summed over repeated indices"


def test_epoch_cache_teacher_trains_and_differs_from_the_exact_one():
    seqs = user_sequences(n_users=20, length=10)
    candidates = np.concatenate([seqs.targets(np.arange(20), 2)[:, None], np.ones((20, 5), dtype=np.int64)], axis=1)
    llm, pca = (t.numpy() for t in tables())
    neighbours = np.stack([np.roll(np.arange(1, 21), -i)[1:11] for i in range(20)]).astype(np.int32)
    losses = {}
    for teacher in ("batch", "epoch_cache"):
        options = model_options()
        options["llmesr"]["teacher"] = teacher
        _, history = train(
            "sasrec",
            options,
            train_options(seed=3, max_epochs=2),
            seqs,
            candidates,
            torch.device("cpu"),
            Artifacts(llm, pca, neighbours),
        )
        losses[teacher] = [e["distill_loss"] for e in history["epochs"]]
    assert all(v > 0 for v in losses["epoch_cache"]) and losses["epoch_cache"] != losses["batch"]


def test_length_groups_cut_where_the_padded_area_is_smallest():
    lengths = np.array([3, 1, 200, 1, 10, 10, 1])
    groups = length_groups(lengths, 3)
    assert [sorted(lengths[g].tolist()) for g in groups] == [[1, 1, 1, 3], [10, 10], [200]]  # area 4*3 + 2*10 + 200
    assert sorted(np.concatenate(groups).tolist()) == list(range(7))  # every row exactly once
    # two groups: {1,2,3,4} + {100} pads to 4*4 + 100 = 116, less than {1,2,3} + {4,100} (9 + 200)
    assert [
        lengths.tolist()
        for lengths in (np.array([4, 100, 1, 3, 2])[g] for g in length_groups(np.array([4, 100, 1, 3, 2]), 2))
    ] == [[1, 2, 3, 4], [100]]
    assert len(length_groups(lengths, 1)) == 1 and len(length_groups(lengths, 1)[0]) == 7
    assert len(length_groups(np.array([5, 5, 2, 2]), 4)) == 2  # no more groups than distinct lengths


@pytest.mark.parametrize(
    "backbone,objective", [("sasrec", "next_item"), ("gru4rec", "last_item"), ("bert4rec", "masked")]
)
def test_micro_batches_of_similar_length_give_the_whole_batch_gradient(backbone, objective):
    frame = pl.DataFrame(
        {
            "user": np.repeat(np.arange(1, 9), [4, 19, 5, 7, 4, 12, 6, 4]),
            "item": np.random.default_rng(0).integers(1, N_ITEMS + 1, 61),
        }
    )
    seqs = Sequences.from_interactions(frame, N_ITEMS)
    rows = np.arange(8)
    torch.manual_seed(0)
    llm, pca = tables()
    model = build_model(backbone, model_options(), N_ITEMS, llm, pca).eval()  # eval: no dropout noise to compare
    inputs, targets = training_batch(
        objective, seqs, rows, np.zeros(8, bool), 20, np.random.default_rng(1), model.mask_token, 0.5
    )
    negatives = np.where(targets > 0, (targets % N_ITEMS) + 1, 0)
    teacher = (
        torch.randn(8, model.sequence_states(torch.from_numpy(inputs[:1])).shape[-1]),
        torch.tensor([True, False, True, True, False, True, True, True]),
    )
    results = {}
    for groups in (1, 3):
        model.zero_grad(set_to_none=True)
        total, rec, parts = accumulate_gradients(
            model, inputs, targets, negatives, [(SelfDistillation(0.1, None), teacher)], groups, torch.device("cpu")
        )
        losses = (total, rec, parts["distill"])
        results[groups] = losses, {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}
    assert len(length_groups((inputs > 0).sum(1), 3)) == 3
    np.testing.assert_allclose(results[3][0], results[1][0], rtol=1e-5)
    # the whole batch in one pass, written out: mean BCE over target positions + 0.1 * MSE over taught users
    states = model.sequence_states(torch.from_numpy(inputs))
    rec = bce_loss(states, torch.from_numpy(targets), torch.from_numpy(negatives), model)
    distill = torch.nn.functional.mse_loss(states[:, -1][teacher[1]], teacher[0][teacher[1]])
    assert results[1][0] == pytest.approx((rec.item() + 0.1 * distill.item(), rec.item(), distill.item()), rel=1e-5)
    assert results[3][1].keys() == results[1][1].keys()
    for name, grad in results[3][1].items():
        torch.testing.assert_close(grad, results[1][1][name], rtol=1e-4, atol=1e-6, msg=name)
