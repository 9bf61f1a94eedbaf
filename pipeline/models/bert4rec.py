"""Bert4Rec (Sun et al., CIKM 2019) as in the LLM-ESR authors' code: the SASRec transformer
stack without a causal mask (every position sees the whole sequence), trained to recover
masked items.

Training (see `mask_items`): each user's training sequence appears twice per epoch, once with
every item masked with probability `mask_prob` (of those: 80% become the mask token, 10% a
random item, 10% stay), once with only its last item masked. The mask token is item id
n_items + 1 with its own zero-initialised embedding row. A user's representation for scoring
is the state at a mask token appended after the sequence: after its last max_len - 1 items,
at positions 1..n+1. `scoring_positions="shifted"` is the authors' quirk: for users whose
input has at least max_len items they score with positions 2..max_len+1 (one more row of the
positional table, never trained).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .sasrec import SASRecConfig, SASRecEncoder

SCORING_POSITIONS = ("trained", "shifted")


@dataclass(frozen=True)
class Bert4RecConfig:
    hidden_size: int
    num_blocks: int
    num_heads: int
    dropout: float
    mask_prob: float
    padding: str
    max_len: int
    scoring_positions: str  # "trained" or "shifted" (the authors')

    def __post_init__(self):
        if self.scoring_positions not in SCORING_POSITIONS:
            raise ValueError(f"scoring_positions must be one of {SCORING_POSITIONS}, not {self.scoring_positions!r}")


class Bert4RecEncoder(SASRecEncoder):
    """The transformer stack of SASRec, bidirectional."""

    def __init__(self, config: Bert4RecConfig):
        super().__init__(
            SASRecConfig(
                hidden_size=config.hidden_size,
                num_blocks=config.num_blocks,
                num_heads=config.num_heads,
                dropout=config.dropout,
                causal=False,
                padding=config.padding,
                max_len=config.max_len,
            )
        )
        self.mask_prob = config.mask_prob
        self.shifted_scoring_positions = config.scoring_positions == "shifted"


def mask_items(
    rng: np.random.Generator, tokens: np.ndarray, last_only: np.ndarray, mask_prob: float, mask_token: int, n_items: int
) -> tuple[np.ndarray, np.ndarray]:
    """(inputs, targets) for masked-item training. `tokens` (B, L) are left-padded training
    sequences; rows with `last_only` mask exactly their last item, the others each real item
    with probability `mask_prob` (80% mask token, 10% random item, 10% unchanged). `targets`
    holds the original item at masked positions and 0 elsewhere; padding is never masked."""
    real = tokens > 0
    draw = rng.random(tokens.shape)
    masked = real & (draw < mask_prob) & ~last_only[:, None]
    masked[last_only, -1] = real[last_only, -1]
    # Below mask_prob, draw / mask_prob is again uniform on [0, 1): it picks the 80/10/10 branch.
    branch = np.where(last_only[:, None], 0.0, draw / mask_prob)
    inputs = tokens.copy()
    inputs[masked & (branch < 0.8)] = mask_token
    randomised = masked & (branch >= 0.8) & (branch < 0.9)
    inputs[randomised] = rng.integers(1, n_items + 1, size=int(randomised.sum()))
    return inputs, np.where(masked, tokens, 0)
