import json
from pathlib import Path

import numpy as np
import pytest

from pipeline.datasets import DataError
from pipeline.pca import pca_reduce
from pipeline.retrieve import exact_neighbours, hnsw_neighbours, recall_against_exact


def pairwise(x):
    return np.linalg.norm(x[:, None, :] - x[None, :, :], axis=-1)


def test_pca_is_an_isometry_on_data_of_that_rank():
    rng = np.random.default_rng(0)
    data = rng.normal(size=(200, 5)) @ rng.normal(size=(5, 24)) + 3.0  # rank 5 around an offset
    reduced = pca_reduce(data.astype(np.float32), 5)
    assert reduced.shape == (200, 5) and reduced.dtype == np.float32
    np.testing.assert_allclose(pairwise(reduced), pairwise(data), rtol=1e-3, atol=1e-3)
    np.testing.assert_allclose(reduced.mean(axis=0), 0, atol=1e-3)
    # Components come out in order of decreasing variance.
    assert np.all(np.diff(reduced.var(axis=0)) <= 1e-6)


def test_pca_refuses_more_dims_than_the_data_has():
    with pytest.raises(DataError, match="hidden_size"):
        pca_reduce(np.ones((10, 8), np.float32), 16)


def brute_force(vectors, k):
    unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    sims = unit @ unit.T
    np.fill_diagonal(sims, -np.inf)
    return np.argsort(-sims, axis=1, kind="stable")[:, :k]


def test_exact_search_matches_brute_force_and_excludes_self():
    vectors = np.random.default_rng(1).normal(size=(300, 16)).astype(np.float32)
    found = exact_neighbours(vectors, 10)
    np.testing.assert_array_equal(found, brute_force(vectors, 10))
    assert not (found == np.arange(300)[:, None]).any()


def test_hnsw_equals_exact_search_on_small_data():
    vectors = np.random.default_rng(2).normal(size=(400, 16)).astype(np.float32)
    found = hnsw_neighbours(vectors, 20, m=32, ef_construction=200, ef_search=200, seed=0, threads=2)
    assert not (found == np.arange(400)[:, None]).any()
    np.testing.assert_array_equal(np.sort(found, axis=1), np.sort(brute_force(vectors, 20), axis=1))
    assert recall_against_exact(vectors, found, sample=100, seed=0) == 1.0


def test_a_duplicate_user_is_the_nearest_other_user():
    vectors = np.random.default_rng(3).normal(size=(50, 8)).astype(np.float32)
    vectors[7] = vectors[3]
    found = hnsw_neighbours(vectors, 5, m=16, ef_construction=100, ef_search=100, seed=0, threads=1)
    assert found[3, 0] == 7 and found[7, 0] == 3


def test_recall_counts_a_tie_at_the_kth_similarity_as_found_and_a_worse_neighbour_as_missed():
    # user 0's nearest are 1 (cos 1) and then 2 and 3 (cos 0.6 each, a tie); 4 is farther (0)
    vectors = np.array([[1, 0], [1, 0], [0.6, 0.8], [0.6, 0.8], [0, 1]], dtype=np.float32)
    exact = exact_neighbours(vectors, 2, np.array([0]))[0]
    assert exact[0] == 1 and exact[1] in (2, 3)
    found = exact_neighbours(vectors, 2)  # every user's, all right
    found[0] = [1, 5 - exact[1]]  # the other user of the tie
    assert recall_against_exact(vectors, found, sample=5, seed=0) == 1.0
    found[0] = [1, 4]  # one of user 0's two is wrong: 9 of 10 found
    assert recall_against_exact(vectors, found, sample=5, seed=0) == 0.9


def test_a_threaded_hnsw_build_keeps_the_recall_and_the_single_threaded_one_repeats():
    vectors = np.random.default_rng(4).normal(size=(3000, 24)).astype(np.float32)
    options = dict(m=16, ef_construction=100, ef_search=100, seed=0, threads=2)
    threaded = hnsw_neighbours(vectors, 10, deterministic=False, **options)
    assert recall_against_exact(vectors, threaded, sample=300, seed=0) >= 0.95
    once, again = (hnsw_neighbours(vectors, 10, deterministic=True, **options) for _ in range(2))
    np.testing.assert_array_equal(once, again)


def test_hnsw_calls_in_blocks_give_the_neighbours_of_one_call(monkeypatch):
    from pipeline import retrieve

    vectors = np.random.default_rng(5).normal(size=(2000, 16)).astype(np.float32)
    options = dict(m=16, ef_construction=100, ef_search=100, seed=0, threads=2, deterministic=True)
    whole = hnsw_neighbours(vectors, 10, **options)  # one add_items and one knn_query call
    monkeypatch.setattr(retrieve, "HNSW_BLOCK", 300)
    np.testing.assert_array_equal(hnsw_neighbours(vectors, 10, **options), whole)


@pytest.mark.parametrize("method", ["exact", "hnsw"])
def test_sharded_retrieval_equals_the_unsharded_one(tmp_path, method):
    from pipeline.retrieve import BLOCK, index_main, merge_main, shard_main
    from pipeline.retrieve import main as retrieve_main

    users = 2 * BLOCK + 700  # three blocks of the exact search, the last one short
    np.save(tmp_path / "users.npy", np.random.default_rng(3).normal(size=(users, 16)).astype(np.float32))
    embeddings, options = str(tmp_path / "users.npy"), ["--k", "20", "--method", method, "--exact-max-users", "1"]
    options += ["--hnsw-m", "16", "--hnsw-ef-construction", "100", "--hnsw-ef-search", "100"]
    options += ["--recall-sample", "50", "--deterministic", "true", "--threads", "2"]
    whole = [str(tmp_path / "whole.npy"), str(tmp_path / "whole.json")]
    retrieve_main(["--embeddings", embeddings, "--out-neighbours", whole[0], "--out-report", whole[1], *options])
    plan = [str(tmp_path / "index.bin"), str(tmp_path / "plan.json")]
    index_main(["--embeddings", embeddings, "--out-index", plan[0], "--out-plan", plan[1], *options])
    shards = [str(tmp_path / f"shard_{i}.npy") for i in range(4)]  # more shards than blocks: one is empty
    for i, shard in enumerate(shards):
        shard_main(
            ["--embeddings", embeddings, "--index", plan[0], "--plan", plan[1], "--out-neighbours", shard]
            + ["--shard", str(i), "--shards", "4", "--hnsw-ef-search", "100", "--threads", "2"]
        )
    assert sorted(len(np.load(shard)) for shard in shards) == [0, 700, BLOCK, BLOCK]
    merged = [str(tmp_path / "merged.npy"), str(tmp_path / "merged.json")]
    merge_main(
        [*shards, "--embeddings", embeddings, "--plan", plan[1], "--out-neighbours", merged[0]]
        + ["--out-report", merged[1], *options]
    )
    np.testing.assert_array_equal(np.load(merged[0]), np.load(whole[0]))
    report = json.loads(Path(merged[1]).read_text())
    assert report["method"] == method and report["shards"] == 4
    assert report["recall_vs_exact"] == json.loads(Path(whole[1]).read_text())["recall_vs_exact"]
