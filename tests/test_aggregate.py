import pytest

from pipeline.aggregate import aggregate
from pipeline.compare import table


def run(seed, hr, ndcg, tail_n=0):
    groups = {g: {"n": 4, "HR@10": hr, "NDCG@10": ndcg} for g in ("overall", "head_item", "tail_user", "head_user")}
    groups["tail_item"] = {"n": tail_n, "HR@10": None if tail_n == 0 else hr, "NDCG@10": None if tail_n == 0 else ndcg}
    training = {"best_epoch": seed, "epochs_run": 10, "stopped_early": False}
    record = {"config": {"train": {"max_epochs": 10, "patience": 20, "seed": seed}}, "device": "cpu"}
    return {
        "dataset": "d",
        "backbone": "sasrec",
        "variant": "llmesr",
        "seed": seed,
        "protocol": {"k": 10},
        "thresholds": {"ts_user": 5, "ts_item": 3},
        "groups": groups,
        "training": training,
        "record": record,
    }


def test_mean_and_std_over_seeds():
    result = aggregate([run(42, 0.5, 0.25), run(43, 0.7, 0.35)])
    assert result["seed"] == [42, 43] and result["seeds"] == [42, 43]
    assert result["groups"]["overall"] == {"n": 4, "HR@10": pytest.approx(0.6), "NDCG@10": pytest.approx(0.3)}
    assert result["std"]["overall"]["HR@10"] == pytest.approx(0.1)
    assert result["groups"]["tail_item"] == {"n": 0, "HR@10": None, "NDCG@10": None}
    assert result["per_seed"]["43"]["groups"]["overall"]["HR@10"] == 0.7
    assert result["per_seed"]["42"]["training"]["best_epoch"] == 42


def test_one_seed_keeps_the_seed_as_a_number():
    result = aggregate([run(42, 0.5, 0.25)])
    assert result["seed"] == 42 and result["std"]["overall"]["HR@10"] == 0


def test_comparison_table_shows_every_group_and_missing_values():
    text = table([aggregate([run(42, 0.5, 0.25)])])
    assert "0.5000" in text and "0.2500" in text and "  -   " in text and "ts_item=3" in text
    # the budget behind the numbers: a capped run says so
    assert "sasrec llmesr seed 42: 10 epochs of at most 10 (best 42, patience 20); stopped by max_epochs" in text
