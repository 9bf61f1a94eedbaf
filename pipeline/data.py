"""User sequences in memory and the batches cut from them.

All sequences live in one flat array (`items`, 1-based item ids, user by user in time order)
with `offsets` marking where each user's sequence starts. Leave-one-out splits are views:
a user's sequence without its last `cut` items. Batches are left-padded with 0 and trimmed
to their longest row, so no compute is spent on padding beyond that.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from .errors import DataError

# How many trailing items each split removes from a user's full sequence.
TEST_INPUT_CUT = 1  # the test target is the last item
VALID_INPUT_CUT = 2  # the validation target is the second to last
TRAIN_CUT = 2  # the training sequence is everything before both


@dataclass
class Sequences:
    items: np.ndarray  # (total,) int64
    offsets: np.ndarray  # (n_users + 1,) int64
    n_items: int

    @classmethod
    def from_interactions(cls, interactions: pl.DataFrame, n_items: int) -> "Sequences":
        """`interactions` sorted by user (1..N, contiguous) then time."""
        users = interactions["user"].to_numpy()
        counts = np.bincount(users)[1:]
        offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        return cls(interactions["item"].to_numpy().astype(np.int64), offsets, n_items)

    @property
    def n_users(self) -> int:
        return len(self.offsets) - 1

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    def bounds(self, rows: np.ndarray, cut: int, skip: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """[start, end) of each user's sequence without its last `cut` and first `skip` items.
        `rows` are 0-based (user id - 1)."""
        return self.offsets[rows] + skip, self.offsets[rows + 1] - cut

    def padded(self, rows: np.ndarray, cut: int, max_len: int, skip: int = 0, full_width: bool = False) -> np.ndarray:
        """Left-padded rows, as wide as the longest (or, with `full_width`, exactly max_len)."""
        starts, ends = self.bounds(rows, cut, skip)
        return left_pad(self.items, starts, ends, max_len, width=max_len if full_width else None)

    def targets(self, rows: np.ndarray, cut: int) -> np.ndarray:
        """The item that follows the input left by `cut` (cut=1: test target, cut=2: validation)."""
        return self.items[self.offsets[rows + 1] - cut]

    def training_pairs(self, rows: np.ndarray, max_len: int, full_width: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """Inputs and next-item targets over each user's training sequence (SASRec's objective):
        input = train[:-1], target = train[1:], aligned position by position."""
        inputs = self.padded(rows, TRAIN_CUT + 1, max_len, full_width=full_width)
        targets = self.padded(rows, TRAIN_CUT, max_len, skip=1, full_width=full_width)
        return inputs, targets

    def occurrences(self, cut: int) -> tuple[np.ndarray, np.ndarray]:
        """Every item position of each sequence without its last `cut`, user by user:
        (0-based user row, position within the user's sequence); the item is
        items[offsets[row] + position]."""
        lengths = np.maximum(self.lengths - cut, 0)
        rows = np.repeat(np.arange(self.n_users), lengths)
        return rows, np.arange(lengths.sum()) - np.repeat(np.cumsum(lengths) - lengths, lengths)

    def membership_keys(self, cut: int) -> np.ndarray:
        """Sorted keys user_row * (n_items + 1) + item over each sequence without its last `cut`."""
        rows, positions = self.occurrences(cut)
        return np.unique(rows * (self.n_items + 1) + self.items[self.offsets[rows] + positions])


def log_popularity(sequences: Sequences) -> np.ndarray:
    """(n_items + 1,) log(1 + each item's count in the training sequences): what the
    popularity correction subtracts and LLM-ESR's gate reads (training counts only, so validation leaks nothing)."""
    return np.log1p(training_counts(sequences)).astype(np.float32)


def training_counts(sequences: Sequences) -> np.ndarray:
    """(n_items + 1,) each item's count in the training sequences (index 0 unused)."""
    rows, positions = sequences.occurrences(TRAIN_CUT)
    return np.bincount(sequences.items[sequences.offsets[rows] + positions], minlength=sequences.n_items + 1)


def left_pad(
    flat: np.ndarray, starts: np.ndarray, ends: np.ndarray, max_len: int, width: int | None = None
) -> np.ndarray:
    """Rows flat[start:end], keeping the last `max_len`, right-aligned in a zero matrix whose
    width is the longest kept row (at least 1), or `width` when given (at least max_len)."""
    lengths = np.clip(ends - starts, 0, max_len)
    width = width or max(int(lengths.max(initial=0)), 1)
    out = np.zeros((len(starts), width), dtype=np.int64)
    total = int(lengths.sum())
    if total:
        row = np.repeat(np.arange(len(starts)), lengths)
        within = np.arange(total) - np.repeat(np.cumsum(lengths) - lengths, lengths)
        out[row, width - np.repeat(lengths, lengths) + within] = flat[np.repeat(ends - lengths, lengths) + within]
    return out


def training_items_of(keys: np.ndarray, rows: np.ndarray, n_items: int) -> tuple[np.ndarray, np.ndarray]:
    """A (distinct rows x items + 1) bool matrix, True where that user has the item in `keys`
    (see Sequences.membership_keys), and each of `rows`' index into it. A batch's few rows make
    it small (128 users x 12k items = 1.5 MB), and a lookup in it is one memory access, where a
    binary search over every user's keys is ~17 of them, scattered."""
    distinct, local = np.unique(rows, return_inverse=True)
    first = np.searchsorted(keys, distinct * (n_items + 1))
    counts = np.searchsorted(keys, (distinct + 1) * (n_items + 1)) - first
    owner = np.repeat(np.arange(len(distinct)), counts)
    within = np.arange(int(counts.sum())) - np.repeat(np.cumsum(counts) - counts, counts)
    matrix = np.zeros((len(distinct), n_items + 1), dtype=bool)
    matrix[owner, keys[first[owner] + within] - distinct[owner] * (n_items + 1)] = True
    return matrix, local.reshape(rows.shape)


def sample_negatives(
    rng: np.random.Generator, rows: np.ndarray, shape: tuple[int, ...], n_items: int, exclude: np.ndarray
) -> np.ndarray:
    """Uniform items in 1..n_items, redrawn where the user (row of `rows`) has the item in `exclude`."""
    trained, local = training_items_of(exclude, rows, n_items)
    row_grid = np.broadcast_to(local.reshape((-1,) + (1,) * (len(shape) - 1)), shape)
    negatives = rng.integers(1, n_items + 1, size=shape)
    for _ in range(1000):
        clash = trained[row_grid, negatives]
        if not clash.any():
            return negatives
        negatives[clash] = rng.integers(1, n_items + 1, size=int(clash.sum()))
    # Users who have seen nearly every item: draw among the few they have not, directly.
    for where in zip(*np.nonzero(trained[row_grid, negatives])):
        unseen = np.flatnonzero(~trained[row_grid[where], 1:]) + 1
        if not len(unseen):
            raise DataError("a user who has trained on every item cannot get a negative: leave such users out")
        negatives[where] = unseen[rng.integers(len(unseen))]
    return negatives


def length_sorted_chunks(lengths: np.ndarray, token_budget: int) -> list[np.ndarray]:
    """Indices into `lengths`, shortest first, cut into chunks of at most `token_budget`
    padded positions (rows x longest row) each: short sequences go in large chunks, long ones
    in small chunks, which keeps the attention matrices cache-sized."""
    order = np.argsort(lengths, kind="stable")
    widths = np.maximum(lengths[order], 1)
    chunks, start = [], 0
    while start < len(order):
        # The chunk's width is its last (longest) row's; take rows while rows x width fits.
        end = start + 1
        while end < len(order) and (end + 1 - start) * widths[end] <= token_budget:
            end += 1
        chunks.append(order[start:end])
        start = end
    return chunks


def epoch_batches(rng: np.random.Generator, lengths: np.ndarray, batch_size: int, bucket_pool: int) -> list[np.ndarray]:
    """Indices into `lengths` for one epoch, cut into batches. With `bucket_pool` > 0 the
    shuffled indices are sorted by length within pools of that many batches and the batches
    are then shuffled: each batch holds sequences of similar length (little padding to trim)
    while which users meet in a batch, and the batch order, stay random. 0 = plain random batches."""
    order = rng.permutation(len(lengths))
    if bucket_pool > 0:
        pool = batch_size * bucket_pool
        for start in range(0, len(order), pool):
            chunk = order[start : start + pool]
            order[start : start + pool] = chunk[np.argsort(lengths[chunk], kind="stable")]
    batches = [order[start : start + batch_size] for start in range(0, len(order), batch_size)]
    if bucket_pool > 0:
        batches = [batches[i] for i in rng.permutation(len(batches))]
    return batches


def shard_bounds(count: int, shard: int, shards: int, block: int = 1) -> tuple[int, int]:
    """[start, stop) of contiguous slice `shard` of `shards` near-equal slices of `count` rows,
    each a run of whole blocks of `block` rows (the last block may be short): the sharded
    embedding, retrieval and evaluation jobs."""
    if not 0 <= shard < shards:
        raise ValueError(f"shard {shard} is not in 0..{shards - 1}")
    blocks = -(-count // block)
    return min(shard * blocks // shards * block, count), min((shard + 1) * blocks // shards * block, count)
