"""The training losses (`train.loss`) against hand-computed values, and model selection on
full-ranking validation (`train.select_on`)."""

import math

import numpy as np
import pytest
import torch

from pipeline.losses import make_loss
from pipeline.models.method import Artifacts
from pipeline.train import train

from conftest import N_ITEMS, loss_config, model_options, tables, train_options, user_sequences

ITEMS = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [-1.0, 0.5], [0.5, -2.0]])  # id 0..5


class Table(torch.nn.Module):
    """A model that only scores: item i's vector is row i of ITEMS."""

    def item_vectors(self, items):
        return ITEMS[items]


def sigmoid(x):
    return 1 / (1 + math.exp(-x))


STATES = torch.tensor([[[0.0, 0.0], [0.5, 1.0], [2.0, -1.0]]])  # one user, 3 positions; the first has no target
TARGETS = torch.tensor([[0, 1, 2]])


def loss(name, negatives, count=None, **options):
    if negatives is None or (negatives.ndim == 2 and name != "sampled_softmax"):
        count_per_target = 1
    else:  # several per target, or the batch's shared set
        count_per_target = negatives.shape[-1]
    config = loss_config(**{"loss": name, "negatives": count_per_target, **options})
    return make_loss(config, n_items=5)(STATES, TARGETS, negatives, Table(), count).item()


def test_bce_with_one_negative_by_hand():
    negatives = torch.tensor([[0, 3, 4]])
    # position 1: user (0.5, 1) target 1 (score 0.5), negative 3 (1.5);
    # position 2: user (2, -1), target 2 (-1), negative 4 (-2.5)
    expected = (
        -math.log(sigmoid(0.5)) - math.log(1 - sigmoid(1.5)) - math.log(sigmoid(-1)) - math.log(1 - sigmoid(-2.5))
    ) / 2
    assert loss("bce", negatives) == pytest.approx(expected, rel=1e-6)
    assert loss("bce", negatives, count=4) == pytest.approx(expected * 2 / 4, rel=1e-6)  # a micro-batch's share


def test_bce_with_several_negatives_sums_them():
    negatives = torch.tensor([[[0, 0], [3, 5], [4, 1]]])
    # scores: position 1: negatives 3 -> 1.5, 5 -> -1.75; position 2: 4 -> -2.5, 1 -> 2
    expected = (
        -math.log(sigmoid(0.5))
        - math.log(1 - sigmoid(1.5))
        - math.log(1 - sigmoid(-1.75))
        - math.log(sigmoid(-1))
        - math.log(1 - sigmoid(-2.5))
        - math.log(1 - sigmoid(2))
    ) / 2
    assert loss("bce", negatives) == pytest.approx(expected, rel=1e-6)


def test_gbce_raises_the_positive_probability_to_beta_and_is_bce_at_t_0():
    negatives = torch.tensor([[[0, 0], [3, 5], [4, 1]]])
    assert loss("gbce", negatives, gbce_t=0.0) == pytest.approx(loss("bce", negatives), rel=1e-7)
    alpha = 2 / (5 - 1)
    beta = alpha * (0.75 * (1 - 1 / alpha) + 1 / alpha)  # gSASRec's definition, = 1 - t (1 - alpha)
    expected = (
        -beta * math.log(sigmoid(0.5))
        - math.log(1 - sigmoid(1.5))
        - math.log(1 - sigmoid(-1.75))
        - beta * math.log(sigmoid(-1))
        - math.log(1 - sigmoid(-2.5))
        - math.log(1 - sigmoid(2))
    ) / 2
    assert loss("gbce", negatives, gbce_t=0.75) == pytest.approx(expected, rel=1e-6)


def test_sampled_softmax_by_hand_with_and_without_logq():
    shared = torch.tensor([3, 2])  # one set for the batch; 2 is the second position's own target: left out there
    first = math.log(math.exp(0.5) + math.exp(1.5) + math.exp(1.0)) - 0.5  # scores: target 0.5, 3 -> 1.5, 2 -> 1
    second = math.log(math.exp(-1.0) + math.exp(1.0)) + 1.0  # target 2 -> -1, 3 -> 1
    assert loss("sampled_softmax", shared) == pytest.approx((first + second) / 2, rel=1e-6)
    shift = math.log(2 / 5)  # logq: each sampled logit minus log(negatives / items)
    first = math.log(math.exp(0.5) + math.exp(1.5 - shift) + math.exp(1.0 - shift)) - 0.5
    second = math.log(math.exp(-1.0) + math.exp(1.0 - shift)) + 1.0
    assert loss("sampled_softmax", shared, logq=True) == pytest.approx((first + second) / 2, rel=1e-6)


def test_full_softmax_by_hand_and_chunked_equals_unchunked():
    users = STATES[0, 1:]
    logits = users @ ITEMS[1:].T  # items 1..5, not the padding id
    expected = (torch.logsumexp(logits, 1) - logits[torch.arange(2), torch.tensor([0, 1])]).mean().item()
    assert loss("ce", None, ce_block=1000) == pytest.approx(expected, rel=1e-6)  # both targets in one block
    assert loss("ce", None, ce_block=2) == pytest.approx(expected, rel=1e-6)  # a block per target
    grads = []
    for block in (2, 1000):
        states = STATES.clone().requires_grad_()
        make_loss(loss_config(loss="ce", ce_block=block), 5)(states, TARGETS, None, Table()).backward()
        grads.append(states.grad)
    torch.testing.assert_close(*grads)


@pytest.mark.parametrize("block", [1, 3 * 40, 10**6])
def test_full_softmax_gradients_equal_autograd_of_the_written_out_softmax(block):
    """The users' and the items' gradients, taken in the forward pass, equal autograd's through
    log_softmax over the whole logit matrix (float64), scaled by what reaches the loss."""
    from pipeline.losses import _SummedLogSumExp

    generator = torch.Generator().manual_seed(0)
    users = torch.randn(7, 5, dtype=torch.float64, generator=generator, requires_grad=True)
    items = torch.randn(40, 5, dtype=torch.float64, generator=generator, requires_grad=True)
    (3.5 * _SummedLogSumExp.apply(users, items, max(1, block // 40))).backward()
    ours = users.grad.clone(), items.grad.clone()
    users.grad = items.grad = None
    (3.5 * torch.logsumexp(users @ items.T, dim=1).sum()).backward()
    torch.testing.assert_close(ours, (users.grad, items.grad))


def test_many_negatives_score_the_catalogue_as_gathering_them_would():
    from pipeline.losses import bce_loss, bce_loss_scoring_catalogue

    generator = torch.Generator().manual_seed(0)
    vectors = torch.randn(31, 4, dtype=torch.float64, generator=generator, requires_grad=True)  # id 0..30
    model = type("Table", (), {"item_vectors": lambda self, items: vectors[items]})()
    states = torch.randn(2, 6, 4, dtype=torch.float64, generator=generator, requires_grad=True)
    targets = torch.tensor([[0, 0, 3, 7, 30, 1], [0, 5, 5, 9, 2, 4]])
    negatives = torch.randint(1, 31, (2, 6, 9), generator=generator) * (targets > 0)[..., None]
    results = []
    for scoring in (False, True):  # a block of 70 logits: two targets at a time, the last alone
        loss = (
            bce_loss_scoring_catalogue(states, targets, negatives, model, 30, 70, count=13, beta=0.4)
            if scoring
            else bce_loss(states, targets, negatives, model, count=13, beta=0.4)
        )
        loss.backward()
        results.append((loss.detach(), states.grad.clone(), vectors.grad.clone()))
        states.grad = vectors.grad = None
    torch.testing.assert_close(*results)
    assert make_loss(loss_config(loss="gbce", negatives=256), n_items=12000).scores_catalogue
    assert not make_loss(loss_config(loss="gbce", negatives=256), n_items=100000).scores_catalogue
    assert not make_loss(loss_config(loss="bce"), n_items=5).scores_catalogue  # the paper's loss, as it was


@pytest.mark.parametrize("n_items", [5, 200])  # 2 negatives: the catalogue scored (5 items), gathered (200)
def test_gbce_weighs_the_positive_by_beta_on_either_path(n_items):
    from pipeline.losses import bce_loss

    negatives = torch.tensor([[[0, 0], [3, 5], [4, 1]]])
    gbce = make_loss(loss_config(loss="gbce", negatives=2, gbce_t=0.5), n_items)
    assert gbce.scores_catalogue == (n_items == 5)
    beta = 1 - 0.5 * (1 - 2 / (n_items - 1))
    expected = bce_loss(STATES, TARGETS, negatives, Table(), beta=beta)
    assert gbce(STATES, TARGETS, negatives, Table()).item() == pytest.approx(expected.item(), rel=1e-6)


@pytest.mark.parametrize("name, negatives", [("bce", 1), ("bce", 3), ("gbce", 256)])
def test_a_micro_batch_without_targets_adds_nothing(name, negatives):
    states = torch.randn(1, 3, 2, requires_grad=True)
    targets = torch.zeros(1, 3, dtype=torch.int64)
    drawn = torch.zeros((1, 3) if negatives == 1 else (1, 3, negatives), dtype=torch.int64)
    value = make_loss(loss_config(loss=name, negatives=negatives), n_items=5)(states, targets, drawn, Table(), count=4)
    value.backward()
    assert value.item() == 0 and not states.grad.any()


def test_several_negatives_are_drawn_at_the_targets_only_and_avoid_training_items():
    seqs = user_sequences(n_users=20, length=10)
    exclude = seqs.membership_keys(2)
    rows = np.array([3, 3, 11])  # a user twice, as a masked batch may have
    targets = np.array([[0, 0, 4, 5], [0, 6, 0, 7], [1, 2, 3, 8]])
    drawn = make_loss(loss_config(loss="gbce", negatives=50), N_ITEMS).negatives(
        np.random.default_rng(0), rows, targets, exclude
    )
    assert drawn.shape == (3, 4, 50)
    assert ((drawn > 0).all(-1) == (targets > 0)).all() and not drawn[targets == 0].any()
    for row, user in enumerate(rows):
        trained = set(seqs.items[seqs.offsets[user] : seqs.offsets[user + 1] - 2].tolist())
        assert trained and not trained & set(drawn[row].ravel().tolist())


def test_an_unknown_loss_is_refused():
    with pytest.raises(ValueError, match="train.loss must be one of"):
        loss_config(loss="hinge")


def tiny_run(backbone, llmesr, epochs=2, **train_overrides):
    seqs = user_sequences(n_users=20, length=10)
    rng = np.random.default_rng(1)
    candidates = np.concatenate(
        [seqs.targets(np.arange(20), 2)[:, None], rng.integers(1, N_ITEMS + 1, (20, 5))], axis=1
    )
    llm, pca = (t.numpy() for t in tables())
    neighbours = np.stack([np.roll(np.arange(1, 21), -i)[1:11] for i in range(20)]).astype(np.int32)
    return train(
        backbone,
        model_options(llmesr=llmesr),
        train_options(seed=3, max_epochs=epochs, patience=10, **train_overrides),
        seqs,
        candidates,
        torch.device("cpu"),
        Artifacts(llm, pca, neighbours),
    )


@pytest.mark.parametrize("backbone", ["sasrec", "gru4rec", "bert4rec"])
@pytest.mark.parametrize(
    "name, options",
    [
        ("bce", {"negatives": 3}),
        ("gbce", {"negatives": 4}),
        ("sampled_softmax", {"negatives": 8, "logq": True}),
        ("ce", {"ce_block": 7}),
    ],
)
def test_every_loss_trains_every_backbone_plain_and_under_llmesr(backbone, name, options):
    for llmesr in (False, True):
        _, history = tiny_run(backbone, llmesr, epochs=1, loss=name, **options)
        epoch = history["epochs"][0]
        assert history["loss"] == name and math.isfinite(epoch["rec_loss"]) and epoch["rec_loss"] > 0
        assert (epoch.get("distill_loss", 0) > 0) == llmesr


def test_select_on_full_keeps_the_epoch_with_the_best_full_ranking_validation():
    state, history = tiny_run("sasrec", False, epochs=5, select_on="full")
    full = [e["valid_full_NDCG@10"] for e in history["epochs"]]
    assert history["selected_on"] == "full" and history["best_epoch"] == int(np.argmax(full)) + 1
    assert history["best_valid_NDCG10"] == max(full)
    _, sampled = tiny_run("sasrec", False, epochs=5)
    assert "valid_full_NDCG@10" not in sampled["epochs"][0]
    assert sampled["best_epoch"] == int(np.argmax([e["valid_NDCG@10"] for e in sampled["epochs"]])) + 1
