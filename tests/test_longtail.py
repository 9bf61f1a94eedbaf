"""The long-tail mechanisms (issue: LLM-ESR whose long-tail gain survives full ranking), each
against its distinguishing behaviour on tiny data: hard negatives from the LLM neighbourhood,
popularity-drawn negatives with a per-item log-Q, distillation of tail users only, the gated
two-view score, and the representation diagnostics of the evaluation."""

import math

import numpy as np
import pytest
import torch

from pipeline.checkpoints import load_run
from pipeline.data import TRAIN_CUT, log_popularity, training_counts
from pipeline.evaluate import semantic_shares, user_mean_cosine
from pipeline.losses import make_loss
from pipeline.models import build_model
from pipeline.models.llmesr import self_distillation
from pipeline.models.method import Artifacts
from pipeline.models.terms import Batch
from pipeline.split import input_lengths
from pipeline.train import nearest_items, train

from conftest import CPU, N_ITEMS, candidates_for, loss_config, model_options, sequences, tables, train_options


def test_nearest_items_are_the_most_cosine_similar_others():
    llm = tables()[0].numpy()
    pool = nearest_items(llm, 3)
    unit = llm / np.linalg.norm(llm, axis=1, keepdims=True)
    sims = unit @ unit.T
    np.fill_diagonal(sims, -np.inf)
    np.testing.assert_array_equal(pool[1:], np.argsort(-sims, axis=1, kind="stable")[:, :3] + 1)
    with pytest.raises(ValueError, match="must be below the number of items"):
        nearest_items(llm, N_ITEMS)


def test_hard_negatives_come_from_the_targets_pool_and_never_from_the_users_items():
    seqs = sequences([9, 12, 6, 8], seed=3)
    pool = nearest_items(tables()[0].numpy(), 4)
    exclude = seqs.membership_keys(TRAIN_CUT)
    rows = np.arange(4)
    targets = seqs.training_pairs(rows, 20)[1]
    uniform = make_loss(loss_config(negatives=5), N_ITEMS)
    hard = make_loss(loss_config(negatives=5, hard_negatives=1.0, hard_negative_pool=4), N_ITEMS, hard_pool=pool)
    plain = uniform.negatives(np.random.default_rng(0), rows, targets, exclude)
    drawn = hard.negatives(np.random.default_rng(0), rows, targets, exclude)
    trained = [set(seqs.items[seqs.offsets[r] : seqs.offsets[r + 1] - TRAIN_CUT]) for r in rows]
    for r, position in zip(*np.nonzero(targets)):
        for uniform_item, item in zip(plain[r, position], drawn[r, position]):
            assert item not in trained[r]
            # every slot took a near item unless the near item drawn was one the user trained on
            assert item in pool[targets[r, position]] or item == uniform_item
    in_pool = np.mean([d in pool[targets[r, p]] for r, p in zip(*np.nonzero(targets)) for d in drawn[r, p]])
    assert in_pool > 0.5
    assert not drawn[targets == 0].any()
    none = make_loss(loss_config(negatives=5, hard_negatives=0.0), N_ITEMS, hard_pool=pool)
    np.testing.assert_array_equal(none.negatives(np.random.default_rng(0), rows, targets, exclude), plain)


def test_popularity_negatives_follow_training_counts_and_logq_is_per_item():
    seqs = sequences([9, 12, 6, 8, 10], seed=3)
    counts = training_counts(seqs)
    loss = make_loss(
        loss_config(loss="sampled_softmax", negatives=4, negatives_from="popularity"), N_ITEMS, None, counts
    )
    drawn = np.concatenate([loss.negatives(np.random.default_rng(s), None, None, None) for s in range(2000)])
    assert set(drawn) <= set(np.flatnonzero(counts))  # an item never trained on is never drawn
    frequency = np.bincount(drawn, minlength=N_ITEMS + 1)[1:] / len(drawn)
    np.testing.assert_allclose(frequency, counts[1:] / counts[1:].sum(), atol=0.01)
    # log-Q by hand: each negative's logit minus log(negatives x its probability)
    items = torch.tensor([[0.0, 0.0]] + [[math.cos(i), math.sin(i)] for i in range(1, N_ITEMS + 1)])
    states, targets = torch.tensor([[[0.5, 1.0]]]), torch.tensor([[1]])
    negatives = torch.tensor([int(i) for i in np.flatnonzero(counts)[:4]])

    class Table(torch.nn.Module):
        def item_vectors(self, ids):
            return items[ids]

    corrected = make_loss(
        loss_config(loss="sampled_softmax", negatives=4, negatives_from="popularity", logq=True), N_ITEMS, None, counts
    )
    p = counts / counts[1:].sum()
    logits = [float(states[0, 0] @ items[1])] + [
        float(states[0, 0] @ items[i]) - math.log(4 * p[i]) if i != 1 else -math.inf for i in negatives.tolist()
    ]
    expected = math.log(sum(math.exp(x) for x in logits)) - logits[0]
    assert corrected(states, targets, negatives, Table()).item() == pytest.approx(expected, rel=1e-5)


def test_tail_only_distillation_leaves_head_users_alone():
    seqs = sequences([3, 12, 4, 11, 5, 10], seed=3)
    neighbours = np.array([[2, 3], [1, 3], [4, 5], [3, 6], [6, 1], [5, 2]])
    options = model_options()
    config_all = build_model("sasrec", options, N_ITEMS, *tables()).config
    tail = input_lengths(seqs, 20) < 6
    assert tail.tolist() == [True, False, True, False, True, False]
    model = build_model("sasrec", options, N_ITEMS, *tables())
    batch = Batch(np.arange(6), None, None, None)
    everyone = self_distillation(config_all, seqs, neighbours, 20, CPU, False)
    only_tail = self_distillation(
        type(config_all)(**{**config_all.__dict__, "distill_users": "tail"}),
        seqs,
        neighbours,
        20,
        CPU,
        False,
        {"ts_user": 6},
    )
    everyone.begin_epoch(model, 1)
    only_tail.begin_epoch(model, 1)
    teacher_all, has_all = everyone.prepare(model, batch)
    teacher_tail, has_tail = only_tail.prepare(model, batch)
    torch.testing.assert_close(teacher_all, teacher_tail)  # the same teachers (head users are still teachers)
    assert has_tail.tolist() == (has_all.numpy() & tail).tolist() and has_tail.any() and not has_tail.all()


def test_the_teacher_cache_computes_only_the_distilled_users_neighbours(monkeypatch):
    import pipeline.models.llmesr as llmesr

    seqs = sequences([3, 12, 4, 11, 5, 10, 6, 9], seed=3)
    neighbours = np.array([[2, 3], [1, 3], [1, 2], [3, 1], [2, 1], [1, 2], [3, 2], [2, 3]])  # only 1, 2, 3
    config = build_model("sasrec", model_options(), N_ITEMS, *tables()).config
    model = build_model("sasrec", model_options(), N_ITEMS, *tables())
    computed, last_states = [], llmesr.last_states

    def spy(model, sequences, rows, *args, **kwargs):  # records which users each pass computes
        computed.append(rows.tolist())
        return last_states(model, sequences, rows, *args, **kwargs)

    monkeypatch.setattr(llmesr, "last_states", spy)
    term = self_distillation(config, seqs, neighbours, 20, CPU, False)
    term.begin_epoch(model, 1)
    assert computed[-1] == [0, 1, 2]
    teacher, has = term.prepare(model, Batch(np.arange(8), None, None, None))
    full = llmesr.cached_representations(model, seqs, 20, CPU)
    expected, expected_has = llmesr.cached_teacher(full, seqs, neighbours - 1)
    torch.testing.assert_close(teacher, expected)
    assert has.tolist() == expected_has.tolist()
    # tail-only distillation (users 1, 3, 5, 7, each with neighbours 2, 3): only their neighbours
    tail_only = type(config)(**{**config.__dict__, "distill_users": "tail"})
    term = self_distillation(tail_only, seqs, neighbours[[0, 2, 0, 2, 0, 2, 0, 2]], 20, CPU, False, {"ts_user": 6})
    term.begin_epoch(model, 1)
    assert computed[-1] == [1, 2]
    # above half of the users: the full pass, whose rounding the default runs have always had
    term = self_distillation(config, seqs, np.array([[2, 3], [4, 5], [6, 1], [1, 2]] * 2), 20, CPU, False)
    term.begin_epoch(model, 1)
    assert computed[-1] == list(range(8))


def gated_options(**llmesr):
    options = model_options()
    options["llmesr"] = {**options["llmesr"], "fusion": "gated", **llmesr}
    return options


def test_gated_scores_are_popularity_weighted_cosines_of_the_views():
    seqs = sequences([9, 12, 6, 8, 10], seed=3)
    popularity = torch.from_numpy(log_popularity(seqs))
    model = build_model("sasrec", gated_options(), N_ITEMS, *tables(), log_popularity=popularity).eval()
    with torch.no_grad():
        model.gate_slope.fill_(-1.5)  # tail items lean on the semantic view
        model.gate_bias.fill_(0.2)
    inputs = torch.from_numpy(seqs.padded(np.arange(5), 1, 20))
    states = model.sequence_states(inputs)[:, -1].detach()
    items = torch.arange(1, N_ITEMS + 1)
    scores = (states @ model.item_vectors(items).T).detach()
    d = model.view_split
    ids, semantic = model.id_embedding(items), model.semantic_vectors(items)
    cos = lambda users, vectors: (
        torch.nn.functional.normalize(users, dim=-1) @ torch.nn.functional.normalize(vectors, dim=-1).T
    )
    logged = popularity[1:]
    share = torch.sigmoid(0.2 - 1.5 * (logged - logged.mean()) / logged.std())
    expected = (1 / 0.07) * ((1 - share) * cos(states[:, :d], ids) + share * cos(states[:, d:], semantic))
    torch.testing.assert_close(scores, expected.detach(), rtol=1e-5, atol=1e-5)
    most, least = int(logged.argmax()), int(logged.argmin())
    assert model.semantic_share(items)[least] > model.semantic_share(items)[most]


def test_gated_fusion_trains_reloads_and_needs_both_views(tmp_path):
    seqs = sequences([9, 12, 6, 8, 10, 7, 11, 6, 9, 8], seed=3)
    llm, pca = (t.numpy() for t in tables())
    state, _ = train(
        "sasrec",
        gated_options(),
        train_options(seed=1, max_epochs=2, patience=2, loss="ce"),
        seqs,
        candidates_for(seqs),
        CPU,
        Artifacts(llm, pca, neighbours=np.tile(np.arange(1, 4), (seqs.n_users, 1))),
    )
    assert float(state["gate_slope"]) != 0 and float(state["log_scale"]) != pytest.approx(math.log(1 / 0.07))
    meta = {"backbone": "sasrec", "model": gated_options(), "n_items": N_ITEMS, "llm_dim": llm.shape[1]}
    torch.save({**meta, "state_dict": state}, tmp_path / "model.pt")
    reloaded, _ = load_run(tmp_path / "model.pt", CPU)
    torch.testing.assert_close(reloaded.popularity[1:].std(), torch.tensor(1.0))  # the buffer came with the state
    with pytest.raises(ValueError, match="needs collaborative_view and semantic_view"):
        build_model("sasrec", gated_options(semantic_view=False), N_ITEMS, *tables())


def test_user_spread_and_semantic_share_by_hand():
    users = torch.tensor([[1.0, 0.0], [0.0, 2.0], [3.0, 3.0]])
    pairs = [0.0, 1 / math.sqrt(2), 1 / math.sqrt(2)]  # cosines of (1, 2), (1, 3), (2, 3)
    assert user_mean_cosine(users) == pytest.approx(sum(pairs) / 3, abs=1e-4)
    items = torch.tensor([[0.0, 0.0], [1.0, 1.0], [2.0, -1.0]])
    targets = np.array([1, 2, 2])
    masks = {"overall": np.array([True, True, True]), "tail_item": np.array([False, True, True])}
    # user . target split after coordinate 1: (1, 0) per user 1; (0, -2) user 2; (6, -3) user 3
    shares = semantic_shares(users, items, targets, 1, masks)
    assert shares == {
        "overall": pytest.approx((0 + 1 + 1 / 3) / 3, abs=1e-4),
        "tail_item": pytest.approx(2 / 3, abs=1e-4),
    }


def test_validation_on_a_fixed_sample_scores_those_users_as_the_full_pass_does():
    from pipeline.data import VALID_INPUT_CUT
    from pipeline.metrics import evaluated_users, hr_ndcg
    from pipeline.scoring import full_ranking, representations, sampled_ranks
    from pipeline.train import validation_scores, validation_users

    seqs = sequences([9, 12, 6, 8, 10, 7, 11, 6, 9, 8], seed=3)
    candidates = candidates_for(seqs)
    everyone = evaluated_users(candidates)
    assert validation_users(everyone, 10) is everyone and validation_users(everyone, None) is everyone
    sample = validation_users(everyone, 4)
    assert len(sample) == 4 and np.array_equal(sample, validation_users(everyone, 4))  # the same users each time
    model = build_model("sasrec", model_options(), N_ITEMS, *tables())
    users, items = representations(model, seqs, VALID_INPUT_CUT, 20, CPU)
    ranks, _ = full_ranking(users, items, seqs, VALID_INPUT_CUT, candidates[:, 0], 10)
    expected_full = hr_ndcg(ranks[sample], 10)
    expected_sampled = hr_ndcg(sampled_ranks(users, items, candidates)[sample], 10)
    scores = validation_scores(model, seqs, candidates, sample, 20, CPU, full=True)
    assert (scores["valid_HR@10"], scores["valid_NDCG@10"]) == pytest.approx(expected_sampled)
    assert (scores["valid_full_HR@10"], scores["valid_full_NDCG@10"]) == pytest.approx(expected_full)
