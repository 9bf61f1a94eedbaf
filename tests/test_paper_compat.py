"""The authors' exact computation (`model.paper_compat` and the switches it sets), and the
cross-attention that is causal only where the objective needs it."""

import math

import numpy as np
import polars as pl
import pytest
import torch

from pipeline.data import Sequences
from pipeline.models import PAPER_COMPAT, build_model, effective_options
from pipeline.models.layers import Dropout
from pipeline.models.llmesr import SelfDistillation, usable_neighbours
from pipeline.models.method import Artifacts
from pipeline.scoring import user_vectors
from pipeline.train import accumulate_gradients, training_batch, training_users

from conftest import CPU, N_ITEMS, model_options, tables


def built(backbone="sasrec", llmesr=True, seed=0, **overrides):
    torch.manual_seed(seed)
    llm, pca = tables()
    return build_model(backbone, model_options(llmesr=llmesr, **overrides), N_ITEMS, llm, pca)


def with_nonzero_biases(model):
    """The attention's biases start at zero (as in torch's MultiheadAttention), and the
    authors' padding keys and values are those biases: make them matter."""
    torch.manual_seed(1)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if name.endswith("bias"):
                parameter.add_(0.3 * torch.randn_like(parameter))
    return model


def cross_attention_output(model, seq):
    captured = {}
    handle = model.id_from_semantic.register_forward_hook(lambda module, args, out: captured.update(out=out))
    model.sequence_states(seq)
    handle.remove()
    return captured["out"]


@pytest.mark.parametrize(
    "backbone, causal, earlier_outputs_fixed",
    [("sasrec", True, True), ("sasrec", False, False), ("gru4rec", True, False), ("bert4rec", True, False)],
)
def test_cross_attention_is_causal_only_for_sasrec_under_causal(backbone, causal, earlier_outputs_fixed):
    model = built(backbone, causal=causal, dropout=0.0).eval()
    seq = torch.tensor([[3, 5, 7, 9, 11]])
    changed = torch.tensor([[3, 5, 7, 2, 4]])  # only the last two items differ
    before, after = cross_attention_output(model, seq), cross_attention_output(model, changed)
    assert torch.allclose(before[0, :3], after[0, :3], atol=1e-6) == earlier_outputs_fixed


def authors_sasrec(model, seq):
    """The authors' plain SASRec written out: a max_len-wide batch, padding inputs zeroed,
    attention over every key (no mask), padding zeroed after each block."""
    encoder, d = model.encoder, model.item_embedding.embedding_dim
    valid = seq > 0
    keep = valid.unsqueeze(-1).to(torch.float64)
    x = (model.item_embedding(seq) * math.sqrt(d) + model.inputs.position(valid.long().cumsum(1) * valid)) * keep
    for norm, attention, forward_norm, feed_forward in zip(
        encoder.attention_norms, encoder.attentions, encoder.forward_norms, encoder.forwards
    ):
        queries = norm(x)
        keys, values = attention.key_value(x).split(d, dim=-1)
        weights = (attention.query(queries) @ keys.transpose(1, 2) / math.sqrt(d)).softmax(-1)
        x = feed_forward(forward_norm(queries + attention.out(weights @ values))) * keep
    return encoder.final_norm(x)


def test_attended_padding_is_the_authors_unmasked_attention_over_max_len():
    torch.set_default_dtype(torch.float64)
    try:
        model = with_nonzero_biases(built(llmesr=False, causal=False, padding="attended", dropout=0.0)).eval()
        trimmed = torch.tensor([[0, 0, 4, 8, 15], [16, 23, 42 % N_ITEMS, 1, 2]])
        padded = torch.nn.functional.pad(trimmed, (20 - 5, 0))  # max_len 20, as the authors' batches
        expected = authors_sasrec(model, padded)
        torch.testing.assert_close(model.sequence_states(padded), expected)
        torch.testing.assert_close(
            model.sequence_states(trimmed), expected[:, -5:]
        )  # the padding it is not shown counts
    finally:
        torch.set_default_dtype(torch.float32)


@pytest.mark.parametrize("backbone", ["sasrec", "bert4rec", "gru4rec"])
@pytest.mark.parametrize("llmesr", [False, True])
def test_attended_representation_depends_on_the_padding_masked_does_not(backbone, llmesr):
    seq = torch.tensor([[0, 0, 4, 8, 15]])
    states = {}
    for padding in ("masked", "attended"):
        short = with_nonzero_biases(built(backbone, llmesr, padding=padding, max_len=6, dropout=0.0)).eval()
        long = built(backbone, llmesr, padding=padding, max_len=40, dropout=0.0).eval()
        weights = {
            k: v[: long.state_dict()[k].shape[0]] if k.endswith("position.weight") else v
            for k, v in short.state_dict().items()
        }
        long_weights = long.state_dict()
        if "inputs.position.weight" in weights:  # the longer table shares the rows the short one has
            long_weights["inputs.position.weight"][:7] = weights.pop("inputs.position.weight")
        long.load_state_dict({**long_weights, **weights})
        states[padding] = short.sequence_states(seq)[:, -1], long.sequence_states(seq)[:, -1]
        # the same padding, shown or not: trimming changes nothing in either mode
        wide = torch.nn.functional.pad(seq, (1, 0))
        torch.testing.assert_close(short.sequence_states(wide)[:, -1], states[padding][0])
    torch.testing.assert_close(*states["masked"])
    assert not torch.allclose(*states["attended"], atol=1e-4)


def test_gru4rec_steps_over_padding_only_when_attended():
    model = with_nonzero_biases(built("gru4rec", llmesr=False, padding="attended", dropout=0.0)).eval()
    padding_row = model.item_embedding.weight[0]
    assert torch.count_nonzero(padding_row) > 0 and model.item_embedding.padding_idx == 0  # random, frozen (theirs)
    seq = torch.tensor([[0, 0, 3, 5, 7]])
    gru = model.encoder.gru
    _, expected = gru(model.item_embedding(torch.nn.functional.pad(seq, (15, 0))))  # every step of max_len 20
    torch.testing.assert_close(model.sequence_states(seq)[:, -1], expected[0])
    masked = built("gru4rec", llmesr=False, dropout=0.0).eval()
    _, from_items_only = masked.encoder.gru(masked.item_embedding(torch.tensor([[3, 5, 7]])))
    torch.testing.assert_close(masked.sequence_states(seq)[:, -1], from_items_only[0])
    assert torch.count_nonzero(masked.item_embedding.weight[0]) == 0
    llmesr = built("gru4rec", padding="attended")
    assert llmesr.id_embedding.padding_idx is None and torch.count_nonzero(llmesr.id_embedding.weight[0]) == 0


def test_attention_starts_as_torchs_multihead_attention_under_xavier():
    model = built(llmesr=False, hidden_size=64)
    attention = model.encoder.attentions[0]
    for projection in (attention.query, attention.key_value, attention.out):
        assert torch.count_nonzero(projection.bias) == 0
    stacked = torch.cat([attention.query.weight, attention.key_value.weight]).detach()  # the (3d, d) input projection
    assert stacked.std().item() == pytest.approx(math.sqrt(2 / (3 * 64 + 64)), rel=0.05)


def test_paper_compat_sets_exactly_the_preset():
    options = model_options(paper_compat=True)
    effective = effective_options(options)
    assert effective["causal"] is False and effective["padding"] == "attended"
    assert effective["single_item_users"] == "keep" and effective["bert4rec"]["scoring_positions"] == "shifted"
    assert effective["llmesr"]["teacher"] == "batch" and effective["llmesr"]["student"] == "second_pass"
    changed = {k for k in effective if effective[k] != options[k]}
    assert changed == set(PAPER_COMPAT)  # nothing outside the preset moves
    for section in ("bert4rec", "llmesr"):
        assert {k for k in effective[section] if effective[section][k] != options[section][k]} == set(
            PAPER_COMPAT[section]
        )
    spelled_out = model_options(causal=False, padding="attended", single_item_users="keep")
    spelled_out["bert4rec"]["scoring_positions"] = "shifted"
    spelled_out["llmesr"].update(teacher="batch", student="second_pass")
    for backbone in ("sasrec", "gru4rec", "bert4rec"):
        torch.manual_seed(0)
        llm, pca = tables()
        preset = build_model(backbone, options, N_ITEMS, llm, pca).eval()
        torch.manual_seed(0)
        manual = build_model(backbone, spelled_out, N_ITEMS, llm, pca).eval()
        seq = torch.tensor([[0, 2, 4, 6]])
        torch.testing.assert_close(preset.sequence_states(seq), manual.sequence_states(seq))


def test_the_authorscache_variant_is_the_preset_but_the_teacher():
    import yaml

    from pipeline.schema import deep_merge, variant_parts

    from conftest import REPO

    config = yaml.safe_load((REPO / "config.yaml").read_text())
    model = model_options()
    authors = effective_options(deep_merge(model, variant_parts(config["variants"]["authors"])[0]))
    cached = effective_options(deep_merge(model, variant_parts(config["variants"]["authorscache"])[0]))
    assert cached["llmesr"]["teacher"] == "epoch_cache" and authors["llmesr"]["teacher"] == "batch"
    cached["llmesr"]["teacher"] = "batch"
    assert {k: v for k, v in cached.items() if k != "paper_compat"} == {
        k: v for k, v in authors.items() if k != "paper_compat"
    }


def sequences(lengths, seed=0):
    frame = pl.DataFrame(
        {
            "user": np.repeat(np.arange(1, len(lengths) + 1), lengths),
            "item": np.random.default_rng(seed).integers(1, N_ITEMS + 1, sum(lengths)),
        }
    )
    return Sequences.from_interactions(frame, N_ITEMS)


def test_keeping_single_item_users():
    seqs = sequences([3, 4, 6, 3])  # users 0 and 3 have one training item (and valid + test)
    assert training_users("next_item", seqs).tolist() == [1, 2]
    assert training_users("next_item", seqs, keep_single_item_users=True).tolist() == [0, 1, 2, 3]
    assert training_users("masked", seqs).tolist() == [0, 1, 2, 3]  # a masked model learns from one item anyway
    rows = np.array([0, 3])
    _, targets = training_batch("next_item", seqs, rows, np.zeros(2, bool), 20, None, None, 0)
    assert (targets == 0).all()  # SASRec: nothing to predict, only the distillation term
    inputs, targets = training_batch("last_item", seqs, rows, np.zeros(2, bool), 20, None, None, 0)
    assert (inputs == 0).all() and targets[:, -1].tolist() == seqs.targets(rows, 3).tolist()  # GRU4Rec: its item
    assert usable_neighbours(seqs, keep_empty=False).tolist() == [False, True, True, False]
    assert usable_neighbours(seqs, keep_empty=True).all()


def test_batches_are_max_len_wide_when_attended():
    seqs = sequences([5, 9, 4])
    rows = np.arange(3)
    last_only = np.ones(3, bool)  # masked training without random draws, so both widths compare
    for objective in ("next_item", "last_item", "masked"):
        narrow, _ = training_batch(objective, seqs, rows, last_only, 20, np.random.default_rng(0), N_ITEMS + 1, 0.5)
        wide, _ = training_batch(
            objective, seqs, rows, last_only, 20, np.random.default_rng(0), N_ITEMS + 1, 0.5, full_width=True
        )
        assert wide.shape == (3, 20) and narrow.shape[1] < 20
        np.testing.assert_array_equal(wide[:, -narrow.shape[1] :], narrow)
        assert (wide[:, : 20 - narrow.shape[1]] == 0).all()


def test_shifted_scoring_positions_move_only_users_of_max_len_or_more():
    seqs = sequences([25, 21, 20, 8])  # test inputs of 24, 20, 19 and 7 items at max_len 20
    rows = np.arange(4)
    trained = built("bert4rec", llmesr=False, dropout=0.0).eval()
    shifted = built(
        "bert4rec",
        llmesr=False,
        dropout=0.0,
        bert4rec={"num_blocks": 2, "num_heads": 1, "mask_prob": 0.6, "scoring_positions": "shifted"},
    ).eval()
    assert shifted.inputs.position.num_embeddings == trained.inputs.position.num_embeddings + 1
    shifted.load_state_dict(
        {
            **trained.state_dict(),
            "inputs.position.weight": torch.cat(
                [trained.inputs.position.weight, shifted.inputs.position.weight[-1:]]
            ).detach(),
        }
    )
    with torch.no_grad():
        ours, theirs = (user_vectors(m, seqs, rows, 1, 20, CPU) for m in (trained, shifted))
    moved = ~torch.isclose(ours, theirs).all(dim=1)
    assert moved.tolist() == [True, True, False, False]
    seq = torch.cat([torch.from_numpy(seqs.padded(rows[:1], 1, 19)), torch.tensor([[N_ITEMS + 1]])], dim=1)
    with torch.no_grad():  # positions 2..max_len+1 for the last 19 items and the mask
        torch.testing.assert_close(theirs[0], shifted.sequence_states(seq, torch.tensor([1]))[0, -1])


def test_second_student_pass_draws_its_own_dropout():
    seqs = sequences([7, 9, 6, 8])
    rows = np.arange(4)
    inputs, targets = training_batch("next_item", seqs, rows, np.zeros(4, bool), 20, None, None, 0)
    negatives = np.where(targets > 0, targets % N_ITEMS + 1, 0)
    teacher = (torch.randn(4, 16), torch.ones(4, dtype=torch.bool))
    for dropout, differs in ((0.0, False), (0.5, True)):
        model = built(dropout=dropout)
        calls = []
        forward = model.sequence_states
        model.sequence_states = lambda seq, *a: calls.append(1) or forward(seq, *a)
        losses = {}
        for second in (False, True):
            torch.manual_seed(5)
            calls.clear()
            total, rec, parts = accumulate_gradients(
                model, inputs, targets, negatives, [(SelfDistillation(0.1, None, second), teacher)], 1, CPU
            )
            losses[second] = (total, rec, parts["distill"])
            assert len(calls) == 1 + second
        assert losses[True][1] == losses[False][1]  # the recommendation term is the first pass's
        assert (losses[True][2] != pytest.approx(losses[False][2])) == differs


def test_dropout_of_copies_has_the_distribution_of_dropping_each_copy():
    dropout = Dropout(0.5).train()
    copies = torch.tensor([1.0, 4.0, 190.0, 0.0]).repeat(20000, 1)
    torch.manual_seed(0)
    factor = dropout.of_copies(copies)
    np.testing.assert_allclose(factor[:, :3].mean(0).numpy(), 1.0, atol=0.02)
    # the mean of n inverted-dropout masks has variance p / ((1 - p) n)
    np.testing.assert_allclose(factor[:, :3].var(0).numpy(), [1.0, 0.25, 1 / 190], rtol=0.05)
    assert (factor[:, 3] == 0).all() and set(factor[:, 0].unique().tolist()) == {0.0, 2.0}
    assert torch.equal(Dropout(0.5).eval().of_copies(copies), torch.ones_like(copies))


def test_authors_mode_trains_with_dropout_and_every_switch():
    from pipeline.train import train

    seqs = sequences([3, 9, 6, 12, 4, 7, 3, 10], seed=2)
    candidates = np.concatenate([seqs.targets(np.arange(8), 2)[:, None], np.ones((8, 3), dtype=np.int64)], axis=1)
    neighbours = np.stack([np.roll(np.arange(1, 9), -i)[1:4] for i in range(8)]).astype(np.int32)
    llm, pca = (t.numpy() for t in tables())
    options = model_options(paper_compat=True)
    options["llmesr"]["num_similar_users"] = 3
    from conftest import train_options

    for backbone in ("sasrec", "gru4rec", "bert4rec"):
        state, history = train(
            backbone,
            options,
            train_options(seed=0, max_epochs=2),
            seqs,
            candidates,
            CPU,
            Artifacts(llm, pca, neighbours),
        )
        assert all(math.isfinite(e["loss"]) and e["distill_loss"] > 0 for e in history["epochs"]), backbone
        if backbone != "bert4rec":  # the ID table's padding row trains under attended padding
            assert backbone == "sasrec" or torch.count_nonzero(state["id_embedding.weight"][0]) > 0
