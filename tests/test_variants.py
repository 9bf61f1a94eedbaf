"""Backbones and the paper's ablation variants: each changes exactly what it says."""

import numpy as np
import pytest
import torch
import yaml

from pipeline.losses import bce_loss
from pipeline.models import build_model
from pipeline.models.bert4rec import mask_items
from pipeline.models.method import Artifacts
from pipeline.train import train, training_batch

from conftest import N_ITEMS, REPO, model_options, tables, train_options, user_sequences

VARIANTS = yaml.safe_load((REPO / "config.yaml").read_text())["variants"]


def variant(name, backbone="sasrec", **model_overrides):
    options = model_options(**model_overrides)
    for key, value in VARIANTS[name].get("llmesr", {}).items():
        options["llmesr"][key] = value
    torch.manual_seed(0)
    llm, pca = tables()
    return build_model(backbone, options, N_ITEMS, llm, pca)


def count(module):
    return sum(p.numel() for p in module.parameters())


@pytest.mark.parametrize("backbone", ["sasrec", "gru4rec", "bert4rec"])
def test_noshare_has_a_second_encoder(backbone):
    full, noshare = variant("llmesr", backbone), variant("noshare", backbone)
    assert not hasattr(full, "semantic_encoder")
    assert count(noshare) - count(full) == count(full.encoder) > 0


def test_noca_leaves_the_view_inputs_untouched():
    model = variant("noca", dropout=0.0).eval()
    assert not hasattr(model, "id_from_semantic")
    seq = torch.tensor([[0, 3, 5, 7], [2, 4, 6, 8]])
    valid = seq > 0
    expected = torch.cat(
        [
            model.encoder(model.inputs(model.id_embedding(seq), valid), valid),
            model.encoder(model.inputs(model.adapter(model.llm_items[seq]), valid), valid),
        ],
        dim=-1,
    )
    torch.testing.assert_close(model.sequence_states(seq), expected)
    full = variant("llmesr", dropout=0.0).eval()
    full.load_state_dict(model.state_dict(), strict=False)  # same weights, plus cross-attention
    assert not torch.allclose(full.sequence_states(seq), expected)


def test_adapter1_has_one_linear_layer():
    model = variant("adapter1")
    assert len(model.adapter) == 1 and model.adapter[0].in_features == tables()[0].shape[1]
    assert len(variant("llmesr").adapter) == 2


def test_randinit_does_not_copy_the_pca_vectors():
    _, pca = tables()
    assert torch.equal(variant("llmesr").id_embedding.weight[1:].detach(), pca)
    random = variant("randinit").id_embedding.weight[1:].detach()
    assert not torch.allclose(random, pca) and random.std() > 0


@pytest.mark.parametrize(
    "name, present, absent", [("nocoview", "adapter", "id_embedding"), ("nosemview", "id_embedding", "adapter")]
)
def test_single_view_variants_score_with_one_view(name, present, absent):
    model = variant(name).eval()
    assert hasattr(model, present) and not hasattr(model, absent) and not hasattr(model, "id_from_semantic")
    seq = torch.tensor([[1, 2, 3]])
    assert model.sequence_states(seq).shape[-1] == model.item_vectors(seq).shape[-1] == 8
    assert variant("llmesr").eval().sequence_states(seq).shape[-1] == 16


def test_nosd_loss_is_the_recommendation_loss():
    seqs = user_sequences(n_users=16, length=8)
    candidates = np.concatenate([seqs.targets(np.arange(16), 2)[:, None], np.ones((16, 3), dtype=np.int64)], axis=1)
    options = model_options()
    options["llmesr"]["alpha"] = 0
    llm, pca = (t.numpy() for t in tables())
    _, history = train(
        "sasrec",
        options,
        train_options(seed=0, max_epochs=1),
        seqs,
        candidates,
        torch.device("cpu"),
        Artifacts(llm, pca),
    )
    epoch = history["epochs"][0]
    assert "distill_loss" not in epoch and epoch["loss"] == epoch["rec_loss"]


def test_bert4rec_masking_statistics():
    rng = np.random.default_rng(0)
    lengths = rng.integers(1, 50, size=4000)
    tokens = np.where(np.arange(50)[None, :] >= 50 - lengths[:, None], rng.integers(1, 1000, (4000, 50)), 0)
    last_only = np.zeros(4000, dtype=bool)
    last_only[2000:] = True
    inputs, targets = mask_items(rng, tokens, last_only, 0.6, mask_token=1001, n_items=1000)
    masked = targets > 0
    assert not (masked & (tokens == 0)).any(), "padding is never masked"
    assert (masked[2000:].sum(axis=1) == 1).all() and masked[2000:, -1].all(), "last-only rows mask just the last item"
    random_half = masked[:2000]
    share = random_half.sum() / (tokens[:2000] > 0).sum()
    assert share == pytest.approx(0.6, abs=0.01)
    changed = inputs[:2000][random_half]
    original = tokens[:2000][random_half]
    as_mask = (changed == 1001).mean()
    kept = (changed == original).mean()
    assert as_mask == pytest.approx(0.8, abs=0.01)
    assert kept == pytest.approx(0.1 + 0.1 / 1000, abs=0.01)  # 10% unchanged, and a random item may hit itself
    np.testing.assert_array_equal(targets[masked], tokens[masked])
    np.testing.assert_array_equal(inputs[~masked], tokens[~masked])


def test_bert4rec_mask_token_row_starts_at_zero_and_scores_at_an_appended_mask():
    from pipeline.scoring import user_vectors

    model = variant("base", "bert4rec").eval()
    assert model.mask_token == N_ITEMS + 1 and torch.count_nonzero(model.item_embedding.weight[N_ITEMS + 1]) == 0
    llmesr = variant("llmesr", "bert4rec")
    assert torch.count_nonzero(llmesr.llm_items[N_ITEMS + 1]) == 0
    seqs = user_sequences(n_users=3, length=6)
    users = user_vectors(model, seqs, np.arange(3), 1, 20, torch.device("cpu"))
    seq = torch.from_numpy(seqs.padded(np.arange(3), 1, 19))
    with_mask = torch.cat([seq, torch.full((3, 1), N_ITEMS + 1)], dim=1)
    torch.testing.assert_close(users, model.sequence_states(with_mask)[:, -1])


def test_gru4rec_loss_depends_only_on_the_last_position():
    seqs = user_sequences(n_users=6, length=7)
    rows = np.arange(6)
    inputs, targets = training_batch("last_item", seqs, rows, np.zeros(6, bool), 20, np.random.default_rng(0), None, 0)
    assert (targets[:, :-1] == 0).all()
    np.testing.assert_array_equal(targets[:, -1], seqs.targets(rows, 3))  # the training sequence's last item
    model = variant("base", "gru4rec")
    states = model.sequence_states(torch.from_numpy(inputs)).detach().requires_grad_()
    negatives = torch.randint(1, N_ITEMS + 1, targets.shape) * torch.from_numpy(targets > 0)
    bce_loss(states, torch.from_numpy(targets), negatives, model).backward()
    assert torch.count_nonzero(states.grad[:, :-1]) == 0 and torch.count_nonzero(states.grad[:, -1]) > 0


def test_gru4rec_padding_is_neutral():
    model = variant("llmesr", "gru4rec").eval()
    seq = torch.tensor([[3, 5, 7]])
    padded = torch.tensor([[0, 0, 0, 3, 5, 7]])
    torch.testing.assert_close(model.sequence_states(seq)[:, -1], model.sequence_states(padded)[:, -1])
