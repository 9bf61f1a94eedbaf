"""AlphaFuse (pipeline/models/alphafuse.py) and its loss (`train.loss: infonce`): the frozen
whitened table against an SVD computed here, IDs only in the null space, training on every
backbone, and the InfoNCE by hand."""

import copy
import math

import numpy as np
import pytest
import torch

from pipeline.checkpoints import load_run
from pipeline.losses import make_loss
from pipeline.models import build_model
from pipeline.models.alphafuse import semantic_table
from pipeline.models.method import Artifacts
from pipeline.train import train

from conftest import (
    BACKBONES,
    CPU,
    LLM_DIM,
    N_ITEMS,
    candidates_for,
    loss_config,
    method_options,
    model_options,
    sequences,
    tables,
    train_options,
)

WIDTH, NULL = 8, 3


def alphafuse_options(**alphafuse):
    return method_options("alphafuse", alphafuse={"null_dim": NULL, **alphafuse})


def test_the_semantic_table_is_the_whitened_principal_components():
    llm = tables()[0].double()
    centred = (llm - llm.mean(0)).numpy()
    _, singular, rows = np.linalg.svd(centred, full_matrices=False)  # principal axes, independently of the code
    variances = singular[:WIDTH] ** 2 / (N_ITEMS - 1)
    plain = semantic_table(llm.float(), WIDTH, whiten=False).double().numpy()
    expected = centred @ rows[:WIDTH].T
    np.testing.assert_allclose(np.abs(plain), np.abs(expected), atol=1e-4)  # up to each axis's sign
    np.testing.assert_allclose(plain.var(axis=0, ddof=1), variances, rtol=1e-4)
    white = semantic_table(llm.float(), WIDTH, whiten=True).double().numpy()
    np.testing.assert_allclose(np.cov(white, rowvar=False), np.eye(WIDTH), atol=1e-4)  # unit variance, uncorrelated
    np.testing.assert_allclose(white * np.sqrt(variances), plain, atol=1e-4)
    with pytest.raises(ValueError, match="smaller model.hidden_size"):
        semantic_table(llm.float(), LLM_DIM + 1, whiten=True)
    assert torch.equal(semantic_table(torch.zeros(N_ITEMS, LLM_DIM), WIDTH, True), torch.zeros(N_ITEMS, WIDTH))


def test_equal_norms_keeps_each_direction_at_the_mean_length():
    llm = tables()[0]
    white = semantic_table(llm, WIDTH, whiten=True).double()
    equal = semantic_table(llm, WIDTH, whiten=True, equal_norms=True).double()
    lengths = white.norm(dim=1)
    assert lengths.std() > 0.1 * lengths.mean()  # the table's rows differ in length to begin with
    mean_length = torch.full((N_ITEMS,), float(lengths.mean()), dtype=torch.float64)
    torch.testing.assert_close(equal.norm(dim=1), mean_length, rtol=1e-5, atol=0)
    torch.testing.assert_close(equal / equal.norm(dim=1, keepdim=True), white / lengths[:, None], rtol=0, atol=1e-5)
    model = build_model("sasrec", alphafuse_options(equal_norms=True), N_ITEMS, llm_items=llm)
    torch.testing.assert_close(model.semantic[1:], equal.float() / math.sqrt(WIDTH))
    assert torch.equal(semantic_table(torch.zeros(N_ITEMS, LLM_DIM), WIDTH, True, True), torch.zeros(N_ITEMS, WIDTH))


def test_a_checkpoint_from_before_an_option_loads_with_its_default(tmp_path):
    llm = tables()[0]
    options = alphafuse_options(id_init="normal")
    model = build_model("sasrec", options, N_ITEMS, llm_items=llm)
    older = copy.deepcopy(options)
    del older["alphafuse"]["equal_norms"]  # written before the switch existed
    meta = {"backbone": "sasrec", "model": older, "n_items": N_ITEMS, "llm_dim": LLM_DIM}
    torch.save({**meta, "state_dict": model.state_dict()}, tmp_path / "model.pt")
    reloaded, state = load_run(tmp_path / "model.pt", CPU)
    assert state["model"]["alphafuse"]["equal_norms"] is False
    items = torch.arange(N_ITEMS + 1)
    assert torch.equal(reloaded.item_vectors(items), model.item_vectors(items))


@pytest.mark.parametrize("backbone", BACKBONES)
def test_ids_live_in_the_null_space_and_the_semantic_part_stays_frozen(backbone):
    llm = tables()[0]
    model = build_model(backbone, alphafuse_options(), N_ITEMS, llm_items=llm)
    items = torch.arange(1, N_ITEMS + 1)
    start = model.item_vectors(items).detach().clone()  # zero ID vectors: the semantic table alone
    torch.testing.assert_close(start, semantic_table(llm, WIDTH, True) / math.sqrt(WIDTH))
    assert "semantic" not in dict(model.named_parameters()) and model.item_embedding.embedding_dim == NULL
    seqs = sequences([9, 12, 6, 8, 10, 7, 11, 6, 9, 8], seed=3)
    state, _ = train(
        backbone,
        alphafuse_options(),
        train_options(seed=1, max_epochs=2, patience=2, loss="infonce", negatives=4),
        seqs,
        candidates_for(seqs),
        CPU,
        Artifacts(llm_items=llm.numpy()),
    )
    model.load_state_dict(state)
    moved = model.item_vectors(items).detach() - start
    assert torch.equal(moved[:, : WIDTH - NULL], torch.zeros(N_ITEMS, WIDTH - NULL))  # semantic components untouched
    assert moved[:, WIDTH - NULL :].abs().sum() > 0  # the IDs learned
    assert torch.equal(model.item_vectors(torch.tensor([0])), torch.zeros(1, WIDTH))  # padding


@pytest.mark.parametrize("backbone", BACKBONES)
def test_alphafuse_trains_deterministically_on_every_backbone(backbone):
    seqs = sequences([9, 12, 6, 8, 10, 7, 11, 6, 9, 8], seed=3)
    llm = tables()[0].numpy()
    runs = [
        train(
            backbone,
            alphafuse_options(id_init="normal"),
            train_options(seed=1, max_epochs=2, patience=2, loss="infonce", negatives=4),
            seqs,
            candidates_for(seqs),
            CPU,
            Artifacts(llm_items=llm),
        )
        for _ in range(2)
    ]
    assert all(torch.equal(runs[0][0][k], runs[1][0][k]) for k in runs[0][0])
    losses = [epoch["rec_loss"] for epoch in runs[0][1]["epochs"]]
    assert all(math.isfinite(value) and value > 0 for value in losses)


def test_null_dim_must_leave_semantic_components():
    from pipeline.models import option_errors

    problems = option_errors(method_options("alphafuse", alphafuse={"null_dim": 8}), ["sasrec"])
    assert problems == [
        "model.alphafuse.null_dim 8 must be smaller than model.hidden_size 8: the ID table fills the last null_dim "
        "of hidden_size components (the authors: 64 of 128)"
    ]


class Table(torch.nn.Module):
    def __init__(self, rows):
        super().__init__()
        self.rows = rows

    def item_vectors(self, items):
        return self.rows[items]


def test_infonce_by_hand_and_blind_to_vector_lengths():
    items = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [-1.0, 0.5], [0.5, -2.0]])
    states = torch.tensor([[[0.0, 0.0], [0.5, 1.0], [2.0, -1.0]]])
    targets = torch.tensor([[0, 1, 2]])
    negatives = torch.tensor([[[0, 0], [3, 5], [4, 1]]])

    def cos(u, v):
        return (u @ v) / (u.norm() * v.norm())

    expected = 0.0
    for position, target, drawn in ((1, 1, (3, 5)), (2, 2, (4, 1))):
        user = states[0, position]
        logits = [cos(user, items[i]).item() / 0.5 for i in (target, *drawn)]
        expected += math.log(sum(math.exp(x) for x in logits)) - logits[0]
    loss = make_loss(loss_config(loss="infonce", negatives=2, temperature=0.5), n_items=5)
    assert loss(states, targets, negatives, Table(items)).item() == pytest.approx(expected / 2, rel=1e-6)
    longer = items * torch.tensor([[1.0], [3.0], [0.2], [5.0], [1.0], [7.0]])  # every item's length changed
    assert loss(2 * states, targets, negatives, Table(longer)).item() == pytest.approx(expected / 2, rel=1e-6)
    assert model_options()["hidden_size"] == WIDTH  # the tables above are built for the shared tiny width


def test_the_shipped_long_tail_variant_is_alphafuse_under_the_full_softmax():
    from pipeline.config import default_config
    from pipeline.models import variant_role
    from pipeline.schema import variant_parts

    override = default_config()["variants"]["llmesrplus"]
    model, train = variant_parts(override)
    assert (model["method"], model["hidden_size"], model["alphafuse"]) == ("alphafuse", 128, {"null_dim": 120})
    assert train == {"loss": "ce", "select_on": "full"}
    assert variant_role(override, model) == "training"  # a row of the ranking table, beside basece
