import math

import numpy as np
import polars as pl
import pytest
import torch

from pipeline.data import Sequences
from pipeline.datasets import DataError
from pipeline.metrics import group_masks, group_metrics, hr_ndcg, target_ranks
from pipeline.split import input_lengths, item_popularity, pareto_threshold, sample_candidates


def test_target_rank_counts_ties_against_the_target():
    scores = torch.tensor([[5.0, 1, 2, 3], [1.0, 5, 0.5, 2], [2.0, 2, 1, 0]])
    assert target_ranks(scores).tolist() == [0, 2, 1]


def test_nan_scores_never_count_as_hits():
    nan = float("nan")
    # NaN target: every candidate counts against it; a NaN candidate counts like a tie.
    scores = torch.tensor([[nan, 1.0, 2.0, 3.0], [3.0, nan, 1.0, 2.0], [3.0, 1.0, 2.0, 0.0]])
    assert target_ranks(scores).tolist() == [3, 1, 0]


def test_hr_and_ndcg_by_hand():
    hr, ndcg = hr_ndcg(np.array([0, 2, 1]), k=2)
    assert hr == pytest.approx(2 / 3)
    assert ndcg == pytest.approx((1 / math.log2(2) + 1 / math.log2(3)) / 3)
    assert hr_ndcg(np.array([0, 2, 1]), k=3) == (
        pytest.approx(1.0),
        pytest.approx((1 + 1 / math.log2(4) + 1 / math.log2(3)) / 3),
    )


def test_groups_and_empty_group():
    ranks = np.array([0, 5, 20, 1])
    masks = group_masks(np.array([True, True, False, False]), np.zeros(4, dtype=bool))
    result = group_metrics(ranks, masks, [10])
    assert result["overall"] == {
        "n": 4,
        "HR@10": 0.75,
        "NDCG@10": pytest.approx((1 + 1 / math.log2(7) + 1 / math.log2(3)) / 4),
        "MRR@10": pytest.approx((1 + 1 / 6 + 1 / 2) / 4),
    }
    assert result["tail_user"]["n"] == 2 and result["tail_user"]["HR@10"] == 1.0
    assert result["head_user"]["HR@10"] == 0.5
    assert result["tail_item"] == {"n": 0, "HR@10": None, "NDCG@10": None, "MRR@10": None}
    assert result["head_item"]["n"] == 4


def test_pareto_threshold_cuts_at_the_top_share():
    values = np.array([10, 9, 8, 1, 1, 1, 1, 1, 1, 1])
    assert pareto_threshold(values, 0.2) == 9  # two of ten are >= 9: the head
    assert pareto_threshold(values, 0.5) == 1


def sequences():
    # user 1: 1 2 3 4 5 6; user 2: 3 3 7; 9 items
    frame = pl.DataFrame({"user": [1] * 6 + [2] * 3, "item": [1, 2, 3, 4, 5, 6, 3, 3, 7]})
    return Sequences.from_interactions(frame, 9)


def test_popularity_and_input_lengths():
    seqs = sequences()
    assert item_popularity(seqs).tolist() == [0, 1, 1, 3, 1, 1, 1, 1, 0, 0]
    assert input_lengths(seqs, 200).tolist() == [5, 2]
    assert input_lengths(seqs, 3).tolist() == [3, 2]


def test_candidates_are_the_target_then_distinct_unseen_items():
    seqs = sequences()
    targets = seqs.targets(np.arange(2), 1)
    cands = sample_candidates(seqs, targets, 3, np.random.default_rng(0))
    assert cands[:, 0].tolist() == [6, 7]
    assert set(cands[0, 1:]) <= {7, 8, 9} and len(set(cands[0, 1:])) == 3
    assert set(cands[1, 1:]).isdisjoint({3, 7}) and len(set(cands[1, 1:])) == 3
    again = sample_candidates(seqs, targets, 3, np.random.default_rng(0))
    np.testing.assert_array_equal(cands, again)


def test_too_many_negatives_is_an_error():
    seqs = sequences()
    with pytest.raises(DataError, match="lower eval.negatives"):
        sample_candidates(seqs, seqs.targets(np.arange(2), 1), 4, np.random.default_rng(0))


def test_a_saturated_user_is_named_or_left_out_of_evaluation():
    from pipeline.metrics import evaluated_users

    seqs = sequences()  # user 1 has seen 6 of the 9 items, user 2 only 2
    targets = seqs.targets(np.arange(2), 1)
    with pytest.raises(
        DataError,
        match=r"1 user\(s\) have not seen that many of the 9 items: alice \(3 unseen\)\. "
        r"Set eval.saturated: drop",
    ):
        sample_candidates(seqs, targets, 4, np.random.default_rng(0), user_names=np.array(["alice", "bob"]))
    cands = sample_candidates(seqs, targets, 4, np.random.default_rng(0), saturated="drop")
    assert cands[0].tolist() == [6, 0, 0, 0, 0] and (cands[1, 1:] > 0).all()
    assert evaluated_users(cands).tolist() == [False, True]
    masks = group_masks(np.array([True, True]), np.array([False, True]), evaluated_users(cands))
    assert {name: int(mask.sum()) for name, mask in masks.items()} == {
        "overall": 1,
        "tail_item": 1,
        "head_item": 0,
        "tail_user": 1,
        "head_user": 0,
    }
