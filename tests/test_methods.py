"""Table 1's competitors (LLMInit, CITIES, MELT, RLMRec): each one's distinguishing behaviour on
tiny data, over the three backbones."""

import copy

import numpy as np
import pytest
import torch

from pipeline.data import TRAIN_CUT
from pipeline.models import METHODS, build_model, method_config, method_inputs, method_of
from pipeline.models.cities import item_contexts
from pipeline.models.melt import MELT, ItemTransfer, UserTransfer
from pipeline.models.method import Artifacts
from pipeline.models.rlmrec import Alignment, Reconstruction
from pipeline.models.terms import Batch, MicroBatch, TrainingData
from pipeline.train import train, training_batch

from conftest import (
    BACKBONES,
    CPU,
    LLM_DIM,
    N_ITEMS,
    candidates_for,
    method_options,
    model_options,
    sequences,
    tables,
    train_options,
)


def test_method_names_and_what_they_read():
    assert method_of(model_options()) == "llmesr" and method_of(model_options(llmesr=False)) == "base"
    named = ("llminit", "cities", "melt", "rlmrec", "alphafuse")
    assert {name: sorted(method_inputs(method_options(name))) for name in named} == {
        "alphafuse": ["llm_items"],
        "llminit": ["pca_items"],
        "cities": ["base", "stats"],
        "melt": ["base", "stats"],
        "rlmrec": ["llm_items", "llm_users"],
    }
    assert set(METHODS) == {"base", "llmesr", "llminit", "cities", "melt", "rlmrec", "alphafuse"}


@pytest.mark.parametrize("backbone", BACKBONES)
def test_llminit_starts_from_the_pca_vectors_without_semantic_view_or_distillation(backbone):
    llm, pca = tables()
    model = build_model(backbone, method_options("llminit"), N_ITEMS, llm, pca)
    assert torch.equal(model.item_embedding.weight[1 : N_ITEMS + 1].detach(), pca)
    assert torch.count_nonzero(model.item_embedding.weight[0]) == 0
    names = {name for name, _ in model.named_parameters()} | {name for name, _ in model.named_buffers()}
    assert not any(part in name for name in names for part in ("llm_items", "adapter", "id_embedding"))
    assert METHODS["llminit"].terms(None, None) == []
    # the same backbone weights as the plain model built from the same seed, apart from the table
    torch.manual_seed(0)
    plain = build_model(backbone, model_options(llmesr=False), N_ITEMS).state_dict()
    torch.manual_seed(0)
    init = build_model(backbone, method_options("llminit"), N_ITEMS, llm, pca).state_dict()
    assert plain.keys() == init.keys()
    assert all(torch.equal(plain[k], init[k]) for k in plain if k != "item_embedding.weight")


def micro_batch(model, objective, seqs, rows, seed=0):
    inputs, targets = training_batch(
        objective, seqs, rows, np.zeros(len(rows), bool), 20, np.random.default_rng(seed), model.mask_token, 0.5
    )
    negatives = np.where(targets > 0, targets % N_ITEMS + 1, 0)
    batch = Batch(rows, inputs, targets, negatives)
    micro = MicroBatch(
        rows,
        torch.arange(len(rows)),
        torch.from_numpy(inputs),
        torch.from_numpy(targets),
        model.sequence_states(torch.from_numpy(inputs)),
        torch.from_numpy(negatives),
    )
    return batch, micro


OBJECTIVES = {"sasrec": "next_item", "gru4rec": "last_item", "bert4rec": "masked"}


@pytest.mark.parametrize("backbone", BACKBONES)
def test_melt_transfers_tail_users_only_and_only_at_inference(backbone):
    torch.manual_seed(0)
    model = build_model(backbone, method_options("melt"), N_ITEMS, thresholds={"ts_user": 5, "ts_item": 3})
    assert isinstance(model, MELT) and int(model.ts_user) == 5
    with torch.no_grad():
        model.user_transfer.weight.normal_()  # a transfer that visibly moves a representation
    short, long = torch.tensor([[0, 0, 0, 0, 3, 7, 9, 4]]), torch.tensor([[2, 5, 8, 1, 3, 7, 9, 4]])
    if model.mask_token is not None:  # Bert4Rec's user representation: a mask after the items
        short, long = (torch.cat([s, torch.tensor([[model.mask_token]])], dim=1) for s in (short, long))
    model.eval()
    plain = lambda seq: super(MELT, model).sequence_states(seq)[:, -1]
    with torch.no_grad():
        torch.testing.assert_close(model.sequence_states(long)[:, -1], plain(long))  # 8 items: a head user
        r = plain(short)  # 4 items < ts_user: a tail user gets r + W_U(r)
        torch.testing.assert_close(model.sequence_states(short)[:, -1], r + model.user_transfer(r))
        model.train()
        torch.manual_seed(1)
        training = model.sequence_states(short)[:, -1]
        torch.manual_seed(1)
        torch.testing.assert_close(training, super(MELT, model).sequence_states(short)[:, -1])


@pytest.mark.parametrize("backbone", BACKBONES)
def test_melt_recomputes_tail_item_rows_from_their_contexts_every_epoch(backbone):
    seqs = sequences([9, 12, 6, 8, 10, 7, 11, 6], seed=3)
    popularity = np.bincount(seqs.items, minlength=N_ITEMS + 1)
    ts_item = int(np.median(popularity[popularity > 0]))
    torch.manual_seed(0)
    options = method_options("melt")
    model = build_model(backbone, options, N_ITEMS, thresholds={"ts_user": 5, "ts_item": ts_item}).eval()
    data = TrainingData(seqs, 20, CPU, 10, thresholds={"ts_user": 5, "ts_item": ts_item})
    term = ItemTransfer(method_config("melt", options), data)
    before = model.item_embedding.weight.detach().clone()
    as_before = copy.deepcopy(model)  # the contexts are read with the table as it was
    term.begin_epoch(model, 1)
    after = model.item_embedding.weight.detach().clone()
    changed = (before != after).any(dim=1)
    occurring = np.zeros(N_ITEMS + 2, bool)
    for user in range(seqs.n_users):
        occurring[seqs.items[seqs.offsets[user] : seqs.offsets[user + 1] - TRAIN_CUT]] = True
    tail = (popularity < ts_item) & occurring[: N_ITEMS + 1]
    tail[0] = False
    assert changed[: N_ITEMS + 1].tolist() == tail.tolist() and tail.any() and (~tail[1:]).any()
    # each tail row is W_I(mean of its contexts): the raw representations of the sequences ending with it
    item = int(np.flatnonzero(tail)[0])
    contexts = []
    for user in range(seqs.n_users):
        train_items = seqs.items[seqs.offsets[user] : seqs.offsets[user + 1] - TRAIN_CUT]
        for position in np.flatnonzero(train_items == item):
            seq = torch.from_numpy(train_items[: position + 1][None, -19:])
            if model.mask_token is not None:
                seq = torch.cat([seq, torch.tensor([[model.mask_token]])], dim=1)
            with torch.no_grad():
                contexts.append(super(MELT, as_before).sequence_states(seq)[0, -1])
    with torch.no_grad():
        torch.testing.assert_close(
            after[item], model.item_transfer(torch.stack(contexts).mean(0)), rtol=1e-4, atol=1e-5
        )
    # a second epoch recomputes them from the model as it is then
    with torch.no_grad():
        model.item_transfer.bias.add_(1.0)
    term.begin_epoch(model, 2)
    assert not torch.allclose(model.item_embedding.weight[item], after[item])


@pytest.mark.parametrize("backbone", BACKBONES)
def test_melt_branches_give_gradients_to_their_transfers(backbone):
    seqs = sequences([9, 12, 6, 8, 10, 7, 11, 6], seed=3)
    torch.manual_seed(0)
    thresholds = {"ts_user": 6, "ts_item": 3}
    options = method_options("melt")
    model = build_model(backbone, options, N_ITEMS, thresholds=thresholds).train()
    data = TrainingData(seqs, 20, CPU, 10, thresholds=thresholds)
    config = method_config("melt", options)
    for term, transfer in (
        (UserTransfer(config, 6, 20), model.user_transfer),
        (ItemTransfer(config, data), model.item_transfer),
    ):
        batch, micro = micro_batch(model, OBJECTIVES[backbone], seqs, np.arange(8))
        term.begin_epoch(model, 3)
        value = term.loss(model, micro, term.prepare(model, batch))
        assert value.item() > 0
        value.backward()
        assert transfer.weight.grad is not None and transfer.weight.grad.abs().sum() > 0
        model.zero_grad()


@pytest.mark.parametrize("backbone", BACKBONES)
def test_rlmrec_alignment_reads_the_semantic_vectors(backbone):
    seqs = sequences([9, 12, 6, 8, 10, 7], seed=2)
    llm, _ = tables()
    users = np.random.default_rng(5).normal(size=(seqs.n_users, LLM_DIM)).astype(np.float32)
    torch.manual_seed(0)
    options = method_options("rlmrec")
    model = build_model(backbone, options, N_ITEMS, llm).eval()
    values = []
    for item_vectors, user_vectors in (
        (llm.numpy(), users),
        (llm.numpy() * -1, users),
        (llm.numpy(), users[::-1].copy()),
    ):
        data = TrainingData(seqs, 20, CPU, 10, llm_items=item_vectors, llm_users=user_vectors)
        term = Alignment(method_config("rlmrec", options), data)
        torch.manual_seed(0)
        batch, micro = micro_batch(model, OBJECTIVES[backbone], seqs, np.arange(6))
        values.append(term.loss(model, micro, term.prepare(model, batch)).item())
    assert values[0] != pytest.approx(values[1]) and values[0] != pytest.approx(values[2])
    # at inference the model scores as the plain backbone with the same weights does
    plain = build_model(backbone, model_options(llmesr=False), N_ITEMS)
    plain.load_state_dict({k: v for k, v in model.state_dict().items() if not k.startswith("semantic_to_model")})
    seq = torch.tensor([[0, 3, 7, 9, 4]])
    with torch.no_grad():
        torch.testing.assert_close(model.sequence_states(seq), plain.eval().sequence_states(seq))


def test_rlmrec_alignment_is_a_cosine_infonce_written_out():
    seqs = sequences([5, 5, 5], seed=4)
    llm, _ = tables()
    users = np.random.default_rng(6).normal(size=(3, LLM_DIM)).astype(np.float32)
    options = method_options("rlmrec")
    torch.manual_seed(0)
    model = build_model("gru4rec", options, N_ITEMS, llm).eval()
    term = Alignment(
        method_config("rlmrec", options), TrainingData(seqs, 20, CPU, 10, llm_items=llm.numpy(), llm_users=users)
    )
    batch, micro = micro_batch(model, "last_item", seqs, np.arange(3))
    got = term.loss(model, micro, term.prepare(model, batch))

    def nce(anchors, candidates, positive):
        cos = torch.nn.functional.cosine_similarity(anchors[:, None], candidates[None], dim=-1) / 0.2
        return -(cos[torch.arange(len(anchors)), positive] - torch.logsumexp(cos, dim=1)).mean()

    project = model.semantic_to_model
    expected = nce(micro.states[:, -1], project(torch.from_numpy(users)), torch.arange(3))
    for ids in (batch.targets[batch.targets > 0], batch.negatives[batch.negatives > 0]):
        distinct = np.unique(ids)
        expected = expected + nce(
            model.item_embedding(torch.from_numpy(ids)),
            project(llm[distinct - 1]),
            torch.from_numpy(np.searchsorted(distinct, ids)),
        )
    torch.testing.assert_close(got, expected)


@pytest.mark.parametrize("backbone", BACKBONES)
def test_rlmrec_generative_masks_items_and_reconstructs_their_semantic_vectors(backbone):
    seqs = sequences([9, 12, 6, 8, 10, 7], seed=2)
    llm, _ = tables()
    options = method_options("rlmrec", rlmrec={"objective": "generative", "mask_ratio": 0.5})
    torch.manual_seed(0)
    model = build_model(backbone, options, N_ITEMS, llm).train()
    data = TrainingData(seqs, 20, CPU, 10, llm_items=llm.numpy())
    term = Reconstruction(method_config("rlmrec", options), data)
    inputs, targets = training_batch(
        OBJECTIVES[backbone], seqs, np.arange(6), np.zeros(6, bool), 20, np.random.default_rng(0), model.mask_token, 0.5
    )
    n_masked = term.prepare(model, Batch(np.arange(6), inputs, targets, None))
    assert n_masked > 0 and model.masked[0] == False  # noqa: E712
    masked_ids = torch.nonzero(model.masked).flatten()
    embedded = model.embed_items(torch.from_numpy(inputs))
    at = model.masked[torch.from_numpy(inputs)]
    assert torch.equal(embedded[at], model.mask_vector.expand(int(at.sum()), -1))
    assert not torch.isin(torch.from_numpy(inputs[~at.numpy()]), masked_ids).any()
    states = model.sequence_states(torch.from_numpy(inputs))
    micro = MicroBatch(np.arange(6), torch.arange(6), torch.from_numpy(inputs), torch.from_numpy(targets), states)
    value = term.loss(model, micro, n_masked)
    value.backward()
    assert value.item() > 0 and model.model_to_semantic[0].weight.grad.abs().sum() > 0
    model.eval()  # no masking at inference
    torch.testing.assert_close(
        model.embed_items(torch.from_numpy(inputs)), model.item_embedding(torch.from_numpy(inputs))
    )


def test_cities_contexts_hide_the_item_within_its_window():
    seqs = sequences([7, 6], seed=1)
    items, contexts = item_contexts(seqs, 2, None)
    train0 = seqs.items[: 7 - TRAIN_CUT]
    assert items[:5].tolist() == train0.tolist()
    assert contexts[0].tolist() == [0, 0, -1, train0[1], train0[2]]
    assert contexts[2].tolist() == [train0[0], train0[1], -1, train0[3], train0[4]]
    assert contexts[4].tolist() == [train0[2], train0[3], -1, 0, 0]  # the window stops at the training sequence's end
    _, masked = item_contexts(seqs, 2, N_ITEMS + 1)
    assert (masked[:, 2] == N_ITEMS + 1).all()


@pytest.mark.parametrize("backbone", BACKBONES)
def test_cities_changes_only_tail_item_rows_and_leaves_the_backbone_untouched(backbone):
    seqs = sequences([9, 12, 6, 8, 10, 7, 11, 6, 9, 8], seed=3)
    popularity = np.bincount(seqs.items, minlength=N_ITEMS + 1)
    ts_item = int(np.median(popularity[popularity > 0]))
    torch.manual_seed(0)
    base = build_model(backbone, model_options(llmesr=False), N_ITEMS).state_dict()
    options = method_options(
        "cities", cities={"heads": 2, "items_per_step": 8, "warmup_steps": 2, "max_epochs": 3, "held_out": 0.2}
    )
    state, history = train(
        backbone,
        options,
        train_options(seed=0, max_epochs=3, patience=3),
        seqs,
        candidates_for(seqs),
        CPU,
        Artifacts(stats={"ts_user": 5, "ts_item": ts_item}, base=base),
    )
    assert history["epochs_run"] >= 1 and all(
        e["inference_loss"] > 0 and e["held_out_mse"] > 0 for e in history["epochs"]
    )
    assert "valid_NDCG@10" in history["epochs"][-1]  # the substituted model, validated once
    for name, value in base.items():
        if name == "item_embedding.weight":
            in_training = np.zeros(len(value), bool)  # padding, items, and Bert4Rec's mask row
            for user in range(seqs.n_users):
                in_training[seqs.items[seqs.offsets[user] : seqs.offsets[user + 1] - TRAIN_CUT]] = True
            tail = in_training & (np.bincount(seqs.items, minlength=len(value)) < ts_item)
            assert (state[name] != value).any(dim=1).tolist() == tail.tolist() and tail.any()
        else:
            assert torch.equal(state[name], value), name
    assert any(k.startswith("inference.") for k in state)


@pytest.mark.parametrize("method", ["llminit", "melt", "rlmrec"])
@pytest.mark.parametrize("backbone", BACKBONES)
def test_each_joint_method_trains_deterministically(method, backbone):
    seqs = sequences([9, 12, 6, 8, 10, 7, 11, 6, 9, 8], seed=3)
    llm, pca = (t.numpy() for t in tables())
    users = np.random.default_rng(7).normal(size=(seqs.n_users, LLM_DIM)).astype(np.float32)
    runs = []
    for _ in range(2):
        state, history = train(
            backbone,
            method_options(method, melt={"from_base": False}),  # trained from scratch: see test_hardening
            train_options(seed=1, max_epochs=2, patience=2),
            seqs,
            candidates_for(seqs),
            CPU,
            Artifacts(llm, pca, llm_users=users, stats={"ts_user": 8, "ts_item": 4}),
        )
        runs.append((state, history))
    strip = lambda h: [{k: v for k, v in e.items() if not k.endswith("seconds")} for e in h["epochs"]]
    assert strip(runs[0][1]) == strip(runs[1][1])
    assert all(torch.equal(runs[0][0][k], runs[1][0][k]) for k in runs[0][0])
    extra = {"llminit": set(), "melt": {"user_transfer_loss", "item_transfer_loss"}, "rlmrec": {"align_loss"}}[method]
    epoch = runs[0][1]["epochs"][0]
    assert {k for k in epoch if k.endswith("_loss")} == {"rec_loss"} | extra
    assert all(epoch[k] > 0 for k in extra)


def test_cities_context_encoding_cuts_only_all_padding_columns():
    from pipeline.models.cities import CITIESConfig, InferenceFunction

    torch.manual_seed(0)
    function = InferenceFunction(CITIESConfig(window=4, heads=2), 8).eval()
    table = torch.randn(N_ITEMS + 1, 8)
    contexts = torch.tensor([[0, 0, 3, 5, -1, 7, 0, 0, 0], [0, 0, 0, 2, -1, 9, 4, 0, 0]])
    with torch.no_grad():
        got = function.encode(contexts, table)
        # written out over all 9 columns, padding keys masked and left out of the mean
        vectors = torch.where((contexts < 0).unsqueeze(-1), function.mask_vector, table[contexts.clamp(min=0)])
        encoded = function.contexts(
            vectors * function.position_weight + function.positions, src_key_padding_mask=contexts == 0
        )
        keep = (contexts != 0).unsqueeze(-1).float()
        torch.testing.assert_close(got, (encoded * keep).sum(1) / keep.sum(1))
