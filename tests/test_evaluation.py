"""Both evaluation protocols against brute-force references on random score matrices."""

import numpy as np
import polars as pl
import pytest
import torch

from pipeline.data import Sequences
from pipeline.metrics import beyond_accuracy, count_against, cutoffs, group_masks, ranking_metrics
from pipeline.scoring import full_ranking, sampled_ranks


def random_setup(seed=0, n_users=40, n_items=30, dim=4):
    rng = np.random.default_rng(seed)
    # Coarse values make ties common, so the tie rule is exercised.
    users = torch.from_numpy(rng.integers(-2, 3, (n_users, dim)).astype(np.float32))
    items = torch.from_numpy(rng.integers(-2, 3, (n_items + 1, dim)).astype(np.float32))
    lengths = rng.integers(3, 9, n_users)
    frame = pl.DataFrame(
        {"user": np.repeat(np.arange(1, n_users + 1), lengths), "item": rng.integers(1, n_items + 1, lengths.sum())}
    )
    return users, items, Sequences.from_interactions(frame, n_items), rng


def test_sampled_ranks_match_brute_force():
    users, items, _, rng = random_setup()
    candidates = rng.integers(1, 31, (40, 11))
    ranks = sampled_ranks(users, items, candidates, batch_size=7)
    for u in range(40):
        scores = [float(users[u] @ items[c]) for c in candidates[u]]
        assert ranks[u] == sum(s >= scores[0] for s in scores[1:])


def test_full_ranking_excludes_history_keeps_the_target_and_matches_brute_force():
    users, items, seqs, _ = random_setup(1)
    targets = seqs.targets(np.arange(40), 1)
    ranks, top = full_ranking(users, items, seqs, 1, targets, k=5, batch_size=6)
    kept_in_history = 0
    for u in range(40):
        history = set(seqs.items[seqs.offsets[u] : seqs.offsets[u + 1] - 1].tolist())
        kept_in_history += targets[u] in history
        scores = (items @ users[u]).numpy()
        allowed = [i for i in range(1, 31) if i not in history or i == targets[u]]
        assert ranks[u] == sum(scores[i] >= scores[targets[u]] for i in allowed if i != targets[u])
        assert not (set(top[u].tolist()) - set(allowed))
        best = sorted(scores[allowed], reverse=True)[:5]
        np.testing.assert_allclose(np.sort(scores[top[u]])[::-1], best)
    assert kept_in_history > 0, "the random data should hold targets that are also in the history"


def test_a_user_with_nan_scores_gets_the_worst_full_ranking_rank():
    users, items, seqs, _ = random_setup(3)
    targets = seqs.targets(np.arange(40), 1)
    users[5] = float("nan")
    ranks, _ = full_ranking(users, items, seqs, 1, targets, k=5)
    assert ranks[5] == seqs.n_items  # below every item (ids 1..n_items) and the padding column
    assert (ranks[np.arange(40) != 5] < seqs.n_items).all()


def test_count_against_counts_higher_scores_ties_and_nan_on_either_side():
    nan = float("nan")
    scores = torch.tensor([[1.0, 2.0, 2.0, 3.0, nan], [1.0, 2.0, 3.0, 4.0, 5.0], [0.0, 1.0, 2.0, 3.0, 4.0]])
    targets = torch.tensor([[2.0], [nan], [4.5]])
    # row 0: 2, 2 (ties), 3 and NaN rank above 2; row 1: every score against a NaN target; row 2: none
    assert count_against(scores, targets).tolist() == [4, 5, 0]
    assert count_against(scores, targets).dtype == torch.int64


def test_top_k_longer_than_the_catalogue_is_refused_with_the_key_to_change():
    from pipeline.errors import DataError

    users, items, seqs, _ = random_setup(4)
    _, top = full_ranking(users, items, seqs, 1, None, k=30)  # the whole catalogue is allowed
    assert top.shape == (40, 30)
    with pytest.raises(DataError, match="catalogue has only 30 items: evaluation ranks"):
        full_ranking(users, items, seqs, 1, None, k=31)


def test_recommendation_lists_exclude_the_whole_history():
    users, items, seqs, _ = random_setup(2)
    _, top = full_ranking(users, items, seqs, 0, None, k=5)
    for u in range(40):
        assert set(top[u].tolist()).isdisjoint(seqs.items[seqs.offsets[u] : seqs.offsets[u + 1]].tolist())
        assert 0 not in top[u]


def test_mrr_and_cutoffs():
    values = ranking_metrics(np.array([0, 3, 12]), [5])
    assert values == {
        "HR@5": pytest.approx(2 / 3),
        "NDCG@5": pytest.approx((1 + 1 / np.log2(5)) / 3),
        "MRR@5": pytest.approx((1 + 1 / 4) / 3),
    }
    assert cutoffs([20, 5]) == [5, 10, 20] and cutoffs(3) == [3, 10]


def test_coverage_and_tail_share_on_hand_made_lists():
    top = np.array([[1, 2], [2, 3], [4, 1]])
    tail = np.array([False, True, False, False, True, False])  # items 1 and 4 are tail
    masks = group_masks(np.array([True, True, False]), np.array([False, False, False]))
    result = beyond_accuracy(top, masks, [1, 2], n_items=5, tail_items=tail)
    assert result["overall"]["coverage@2"] == pytest.approx(4 / 5)
    assert result["overall"]["coverage@1"] == pytest.approx(3 / 5)  # items 1, 2, 4
    assert result["overall"]["tail_share@2"] == pytest.approx(3 / 6)
    assert result["tail_user"]["tail_share@1"] == pytest.approx(1 / 2)
    assert result["head_user"]["coverage@2"] == pytest.approx(2 / 5)
    assert result["tail_item"] == {"coverage@1": None, "tail_share@1": None, "coverage@2": None, "tail_share@2": None}


def test_the_popularity_correction_subtracts_gamma_log_training_popularity():
    from pipeline.data import log_popularity

    # user 1 trains on 1 2 1 (then validation 3, test 4); user 2 on 1 3 (then 2, 4): item 1 seen 3 times in training
    seqs = Sequences.from_interactions(
        pl.DataFrame({"user": [1] * 5 + [2] * 4, "item": [1, 2, 1, 3, 4, 1, 3, 2, 4]}), 4
    )
    assert np.allclose(log_popularity(seqs), np.log1p([0.0, 3, 1, 1, 0]))
    users = torch.tensor([[1.0, 0.0]])
    items = torch.tensor([[0.0, 0.0], [2.0, 0.0], [1.0, 0.0], [1.5, 0.0], [0.5, 0.0]])  # item 1 scores highest
    one = Sequences(np.array([4, 4, 4]), np.array([0, 3]), 4)  # a history of item 4 only (excluded)
    plain, _ = full_ranking(users, items, one, 1, np.array([2]), 2)
    bias = -1.0 * torch.tensor([0.0, 3.0, 0.0, 0.0, 0.0])  # item 1 pushed down by 3
    corrected, top = full_ranking(users, items, one, 1, np.array([2]), 2, item_bias=bias)
    assert plain.tolist() == [2] and corrected.tolist() == [1] and top.tolist() == [[3, 2]]
    assert sampled_ranks(users, items, np.array([[2, 1, 3]]), item_bias=bias).tolist() == [1]


def test_gamma_for_accuracy_or_for_the_reference_breadth():
    from pipeline.evaluate import chosen_gamma

    # validation (NDCG@10, coverage@10) by gamma
    tried = {"0": (0.10, 0.80), "0.1": (0.11, 0.85), "0.3": (0.11, 0.90), "1": (0.07, 0.97)}
    assert chosen_gamma(tried, None) == 0.1  # the best NDCG@10, the smaller of the tie
    assert chosen_gamma(tried, 0.80) == 0.0  # the plain scores are already as broad
    assert chosen_gamma(tried, 0.86) == 0.3  # the smallest gamma that reaches it
    assert chosen_gamma(tried, 0.97) == 1.0
    assert chosen_gamma(tried, 0.99) == 1.0  # none reaches it: the broadest tried
