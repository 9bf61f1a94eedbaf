"""Property tests (hypothesis) for the ingestion parsers and the metric functions."""

import json

import numpy as np
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.datasets import read_dataset, with_defaults
from pipeline.ingest import canonicalise
from pipeline.metrics import ranking_metrics, target_ranks

token = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789_-", min_size=1, max_size=8)
histories = st.dictionaries(token, st.lists(token, min_size=1, max_size=12), min_size=1, max_size=15)
fixture = settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def canonical_histories(spec):
    interactions, items, users, _ = canonicalise(read_dataset(with_defaults(spec)), 1, 1, 1)
    item_ids, user_ids = items["original_id"].to_list(), users["original_id"].to_list()
    result = {}
    for user, item in zip(interactions["user"], interactions["item"]):
        result.setdefault(user_ids[user - 1], []).append(item_ids[item - 1])
    return result, interactions


@fixture
@given(histories)
def test_sequences_format_round_trips(tmp_path, data):
    (tmp_path / "s.txt").write_text("".join(f"{u} {' '.join(items)}\n" for u, items in data.items()))
    (tmp_path / "i.tsv").write_text("item_id\ttitle\n")
    result, interactions = canonical_histories(
        {"format": "sequences", "sequences": str(tmp_path / "s.txt"), "items": str(tmp_path / "i.tsv")}
    )
    assert result == data
    # ids are contiguous and numbered by first appearance
    assert interactions["user"].unique(maintain_order=True).to_list() == list(range(1, len(data) + 1))
    assert interactions["item"].unique(maintain_order=True).to_list() == list(
        range(1, interactions["item"].n_unique() + 1)
    )


@fixture
@given(histories)
def test_llmesr_format_round_trips(tmp_path, data):
    (tmp_path / "inter.txt").write_text("".join(f"{u} {i}\n" for u, items in data.items() for i in items))
    result, _ = canonical_histories({"format": "llmesr", "inter": str(tmp_path / "inter.txt")})
    assert result == data


@fixture
@given(st.lists(st.tuples(st.sampled_from(["u1", "u2", "u3"]), token, st.integers(0, 5)), min_size=1, max_size=40))
def test_json_reviews_come_out_in_time_order_with_ties_in_file_order(tmp_path, rows):
    (tmp_path / "r.json").write_text(
        "".join(json.dumps({"reviewerID": u, "asin": i, "unixReviewTime": t}) + "\n" for u, i, t in rows)
    )
    (tmp_path / "m.json").write_text("{}\n")
    result, _ = canonical_histories(
        {"format": "amazon2018", "reviews": str(tmp_path / "r.json"), "meta": str(tmp_path / "m.json")}
    )
    expected = {}
    for user, item, _ in sorted(rows, key=lambda r: r[2]):  # sorted() is stable: ties keep file order
        expected.setdefault(user, []).append(item)
    assert result == expected


@settings(max_examples=100, deadline=None)
@given(st.lists(st.integers(0, 200), min_size=1, max_size=300), st.lists(st.integers(1, 50), min_size=1, max_size=4))
def test_metric_bounds_and_order(ranks, ks):
    ranks = np.array(ranks)
    values = ranking_metrics(ranks, sorted(set(ks)))
    previous = 0.0
    for k in sorted(set(ks)):
        hr, ndcg, mrr = values[f"HR@{k}"], values[f"NDCG@{k}"], values[f"MRR@{k}"]
        assert 0 <= mrr <= ndcg <= hr <= 1
        assert hr >= previous  # a larger cut-off never loses a hit
        assert hr == np.mean(ranks < k)
        previous = hr


@settings(max_examples=100, deadline=None)
@given(st.lists(st.floats(-5, 5, width=32), min_size=2, max_size=50), st.randoms(use_true_random=False))
def test_target_rank_ignores_order_and_lower_candidates(scores, rng):
    row = torch.tensor([scores])
    rank = int(target_ranks(row)[0])
    assert rank == sum(s >= scores[0] for s in scores[1:])
    negatives = scores[1:]
    rng.shuffle(negatives)
    assert int(target_ranks(torch.tensor([[scores[0], *negatives]]))[0]) == rank
    assert int(target_ranks(torch.tensor([[scores[0], *negatives, scores[0] - 1]]))[0]) == rank
