import numpy as np
import polars as pl

from pipeline.data import Sequences, epoch_batches, left_pad, length_sorted_chunks, sample_negatives, training_items_of


def sequences():
    # user 1: 1..6; user 2: 7 8 9; user 3: 2 4 6 8
    frame = pl.DataFrame({"user": [1] * 6 + [2] * 3 + [3] * 4, "item": [1, 2, 3, 4, 5, 6, 7, 8, 9, 2, 4, 6, 8]})
    return Sequences.from_interactions(frame, 10)


def test_left_pad_keeps_the_last_items_right_aligned():
    flat = np.arange(10)
    out = left_pad(flat, np.array([0, 5, 9]), np.array([4, 6, 9]), max_len=3)
    assert out.tolist() == [[1, 2, 3], [0, 0, 5], [0, 0, 0]]


def test_splits_of_a_sequence():
    seqs = sequences()
    rows = np.array([0])
    assert seqs.padded(rows, 1, 200).tolist() == [[1, 2, 3, 4, 5]]  # test input
    assert seqs.targets(rows, 1).tolist() == [6]
    assert seqs.padded(rows, 2, 200).tolist() == [[1, 2, 3, 4]]  # validation input
    assert seqs.targets(rows, 2).tolist() == [5]


def test_training_pairs_are_aligned_next_items():
    seqs = sequences()
    inputs, targets = seqs.training_pairs(np.array([0, 1, 2]), max_len=200)
    # training sequences: 1 2 3 4 | 7 | 2 4
    assert inputs.tolist() == [[1, 2, 3], [0, 0, 0], [0, 0, 2]]
    assert targets.tolist() == [[2, 3, 4], [0, 0, 0], [0, 0, 4]]
    inputs, targets = seqs.training_pairs(np.array([0]), max_len=2)
    assert inputs.tolist() == [[2, 3]] and targets.tolist() == [[3, 4]]


def test_negatives_avoid_the_users_training_items():
    seqs = sequences()
    keys = seqs.membership_keys(2)
    rows = np.zeros(5000, dtype=np.int64)
    negatives = sample_negatives(np.random.default_rng(0), rows, (5000,), 10, keys)
    assert set(negatives.tolist()) == {5, 6, 7, 8, 9, 10}  # user 1 trains on 1 2 3 4


def test_a_batchs_training_items_are_looked_up_in_a_matrix_of_its_distinct_users():
    keys = sequences().membership_keys(2)  # training items: user 1: 1 2 3 4, user 2: 7, user 3: 2 4
    matrix, local = training_items_of(keys, np.array([2, 0, 2]), 10)
    assert local.tolist() == [1, 0, 1] and matrix.shape == (2, 11)
    assert np.flatnonzero(matrix[0]).tolist() == [1, 2, 3, 4] and np.flatnonzero(matrix[1]).tolist() == [2, 4]


def test_negatives_are_the_plain_rejection_samplers_draws():
    """The draws the paper's runs were made with: uniform draws, each clash with the user's
    training items redrawn in order, checked here against a set per user."""
    seqs = sequences()
    keys = seqs.membership_keys(2)
    trained = {row: set(seqs.items[seqs.offsets[row] : seqs.offsets[row + 1] - 2].tolist()) for row in range(3)}
    rows = np.array([0, 2, 0, 1])
    for seed in range(5):
        rng = np.random.default_rng(seed)
        expected = rng.integers(1, 11, size=(4, 3))
        while True:
            clash = np.array([[expected[i, j] in trained[rows[i]] for j in range(3)] for i in range(4)])
            if not clash.any():
                break
            expected[clash] = rng.integers(1, 11, size=int(clash.sum()))
        assert (sample_negatives(np.random.default_rng(seed), rows, (4, 3), 10, keys) == expected).all()


def test_length_sorted_chunks_respect_the_budget():
    lengths = np.array([5, 1, 3, 8, 2, 2])
    chunks = length_sorted_chunks(lengths, token_budget=6)
    assert sorted(np.concatenate(chunks).tolist()) == list(range(6))
    for chunk in chunks:
        assert len(chunk) == 1 or len(chunk) * lengths[chunk].max() <= 6
    assert [lengths[c].tolist() for c in chunks] == [[1, 2, 2], [3], [5], [8]]


def test_bucketed_batches_cover_every_user_once_with_less_padding():
    rng = np.random.default_rng(0)
    lengths = np.minimum(rng.geometric(0.1, 5000) + 2, 200)  # long-tailed, like real sequences
    padded = {}
    for pool in (0, 10):
        batches = epoch_batches(np.random.default_rng(1), lengths, 50, pool)
        assert sorted(np.concatenate(batches).tolist()) == list(range(5000))
        padded[pool] = sum(len(b) * lengths[b].max() for b in batches)
    assert padded[10] < 0.5 * padded[0] and padded[10] < 1.5 * lengths.sum()
    first = epoch_batches(np.random.default_rng(1), lengths, 50, 10)
    second = epoch_batches(np.random.default_rng(2), lengths, 50, 10)
    assert [b.tolist() for b in first] != [b.tolist() for b in second]  # still a random epoch
