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


def test_a_threaded_hnsw_build_keeps_the_recall_and_the_single_threaded_one_repeats():
    vectors = np.random.default_rng(4).normal(size=(3000, 24)).astype(np.float32)
    options = dict(m=16, ef_construction=100, ef_search=100, seed=0, threads=2)
    threaded = hnsw_neighbours(vectors, 10, deterministic=False, **options)
    assert recall_against_exact(vectors, threaded, sample=300, seed=0) >= 0.95
    once, again = (hnsw_neighbours(vectors, 10, deterministic=True, **options) for _ in range(2))
    np.testing.assert_array_equal(once, again)
