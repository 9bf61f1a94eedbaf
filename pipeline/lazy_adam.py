"""Adam for embedding tables with row-sparse gradients, computed lazily (`train.sparse_embeddings`).

torch's Adam updates every row of an item table at every step: a row no batch looked up still
moves, by its decaying first moment over the square root of its decaying second moment. So a
step costs the whole table, and at a million users (191k items) that is most of the step.
torch's SparseAdam updates only the looked-up rows and drops those in-between moves: a row
looked up once moves about one tenth as far as under Adam (the moves of the following steps sum
to about 1 / (1 - beta1) times the first), which on Beauty cost the tail items a third of their
full-ranking HR@10 (docs/results/scale.md).

Here a row that was not looked up for n steps receives, just before it is next looked up (a
forward pre-hook on its table, `watch`) or when the epoch ends (`flush`), the n moves Adam would
have made from its moments meanwhile, so every lookup reads the row Adam would have: with
moments m and v at its last step t0, the move at step t0 + j is
lr / (1 - beta1^(t0+j)) * beta1^j m / (sqrt(beta2^j v) / sqrt(1 - beta2^(t0+j)) + eps),
summed over j (summed_steps: for all but the rows of the first steps, as a short power
series per weight, so the cost does not grow with j). The moves shrink at least as fast as
(beta1 / sqrt(beta2))^j = 0.90^j, so those past 160 skipped steps (below 5e-8 of the first,
under float32's resolution) are left out. So it is Adam up to float rounding, and a step costs
the rows it looks up, not the table. Weight decay and amsgrad are not supported.
"""

from __future__ import annotations

import math

import torch

HORIZON = 160  # skipped steps summed: (beta1 / sqrt(beta2))^160 < 5e-8
CHUNK_ROWS = 4096  # rows caught up at once (memory: rows x HORIZON doubles)
EXACT_ROWS = 256  # rows summed term by term at once (memory: rows x width x HORIZON doubles)
SERIES_SPREAD, SERIES_TERMS = 0.2, 12  # see summed_steps: 0.2^12 / 0.8 < 1e-8


class LazyAdam:
    """Adam over 2-D parameters whose gradients are row-sparse (nn.Embedding(sparse=True))."""

    def __init__(self, params: list[torch.nn.Parameter], lr: float, betas=(0.9, 0.999), eps: float = 1e-8):
        self.params, self.lr, (self.beta1, self.beta2), self.eps = list(params), lr, betas, eps
        self.steps = 0
        self.states = [
            {
                "exp_avg": torch.zeros_like(p),
                "exp_avg_sq": torch.zeros_like(p),
                "last": torch.zeros(len(p), dtype=torch.long, device=p.device),  # the step a row is up to date at
            }
            for p in self.params
        ]
        # Adam's bias corrections by step number, grown as the steps go
        self.corrections = torch.ones(2, 1, dtype=torch.float64, device=self.params[0].device)

    def watch(self, table: torch.nn.Embedding) -> None:
        """Bring the rows a lookup of `table` reads up to date before it reads them (training only)."""
        p = table.weight
        index = next(i for i, q in enumerate(self.params) if q is p)

        def before_lookup(module: torch.nn.Embedding, args: tuple) -> None:
            if module.training:  # the states as they are then (load_state_dict replaces them)
                self.catch_up(p, self.states[index], args[0].flatten().unique(), self.steps)

        table.register_forward_pre_hook(before_lookup)

    def zero_grad(self) -> None:
        for p in self.params:
            p.grad = None

    def bias_corrections(self, steps: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """1 / (1 - beta1^s) and 1 / sqrt(1 - beta2^s) of the step numbers `steps` (>= 1)."""
        needed = int(steps.max()) + 1
        if needed > self.corrections.shape[1]:
            s = torch.arange(1, 2 * needed, dtype=torch.float64, device=self.corrections.device)
            grown = torch.stack([1 / (1 - self.beta1**s), 1 / (1 - self.beta2**s).sqrt()])
            self.corrections = torch.cat([torch.ones(2, 1, dtype=torch.float64, device=s.device), grown], dim=1)
        return self.corrections[0, steps], self.corrections[1, steps]

    @torch.no_grad()
    def catch_up(self, p: torch.Tensor, state: dict, rows: torch.Tensor, until: int) -> None:
        """Give `rows` the moves Adam would have made from their moments up to step `until`."""
        last = state["last"][rows]
        state["last"][rows[last == 0]] = until  # never stepped: no moments, nothing to move
        behind = (last > 0) & (last < until)
        chunks = zip(rows[behind].split(CHUNK_ROWS), last[behind].split(CHUNK_ROWS)) if behind.any() else ()
        for chunk, last in chunks:
            skipped = until - last
            j = torch.arange(1, min(int(skipped.max()), HORIZON) + 1, device=p.device)
            correction1, correction2 = self.bias_corrections(last[:, None] + j)  # (rows, J)
            counted = j <= skipped[:, None]
            numerator = self.beta1 ** j.double() * correction1 * counted
            scale = math.sqrt(self.beta2) ** j.double() * correction2
            m, v = state["exp_avg"][chunk], state["exp_avg_sq"][chunk]
            p[chunk] -= self.lr * m * self.summed_steps(v.sqrt().double(), numerator, scale, counted).to(p.dtype)
            state["exp_avg"][chunk] = m * (self.beta1 ** skipped.double()).to(m.dtype)[:, None]
            state["exp_avg_sq"][chunk] = v * (self.beta2 ** skipped.double()).to(v.dtype)[:, None]
            state["last"][chunk] = until

    def summed_steps(
        self, root: torch.Tensor, numerator: torch.Tensor, scale: torch.Tensor, counted: torch.Tensor
    ) -> torch.Tensor:
        """(rows, width) sum over j of numerator_j / (root * scale_j + eps), the per-row
        (rows, J) weights given. Where a row's scales lie within +-SERIES_SPREAD of their middle
        c (every row but those of the first steps, whose bias corrections still change fast),
        as a power series around root * c + eps: with D = root * c + eps,
        sum_j numerator_j / (D + root (scale_j - c)) = sum_k (-root / D)^k M_k / D, where
        M_k = sum_j numerator_j (scale_j - c)^k and |root (scale_j - c) / D| <= SERIES_SPREAD:
        SERIES_TERMS terms leave less than 1e-8 of the sum out, at the cost of a polynomial per
        weight instead of a sum over J. Other rows are summed term by term."""
        high = torch.where(counted, scale, -math.inf).amax(1)
        low = torch.where(counted, scale, math.inf).amin(1)
        middle = (high + low) / 2
        series = (high - low) / (high + low) <= SERIES_SPREAD
        out = torch.empty_like(root)
        if series.any():
            deviation = torch.where(counted[series], scale[series] - middle[series, None], 0.0)
            term, moments = numerator[series], []
            for _ in range(SERIES_TERMS):
                moments.append(term.sum(1))
                term = term * deviation
            moments = torch.stack(moments, dim=1)  # (rows, K)
            a = root[series]
            denominator = a * middle[series, None] + self.eps
            x = -a / denominator
            total = moments[:, -1:].expand_as(a)
            for k in range(SERIES_TERMS - 2, -1, -1):
                total = total * x + moments[:, k : k + 1]
            out[series] = total / denominator
        for rest in torch.nonzero(~series).flatten().split(EXACT_ROWS):
            terms = numerator[rest, None, :] / (root[rest, :, None] * scale[rest, None, :] + self.eps)
            out[rest] = terms.sum(2)
        return out

    @torch.no_grad()
    def step(self) -> None:
        self.steps += 1
        t = self.steps
        bias1, bias2_sqrt = 1 - self.beta1**t, math.sqrt(1 - self.beta2**t)
        for p, state in zip(self.params, self.states):
            if p.grad is None:
                continue
            if not p.grad.is_sparse:
                raise ValueError("train.sparse_embeddings: an embedding table got a dense gradient")
            grad = p.grad.coalesce()
            rows, values = grad.indices()[0], grad.values()
            self.catch_up(p, state, rows, t - 1)
            m = state["exp_avg"][rows].mul_(self.beta1).add_(values, alpha=1 - self.beta1)
            v = state["exp_avg_sq"][rows].mul_(self.beta2).addcmul_(values, values, value=1 - self.beta2)
            p[rows] -= (self.lr / bias1) * m / (v.sqrt() / bias2_sqrt + self.eps)
            state["exp_avg"][rows], state["exp_avg_sq"][rows], state["last"][rows] = m, v, t

    @torch.no_grad()
    def flush(self) -> None:
        """Every row up to date (before validation, a checkpoint or the end of training)."""
        for p, state in zip(self.params, self.states):
            self.catch_up(p, state, torch.arange(len(p), device=p.device), self.steps)

    def state_dict(self) -> dict:
        return {"steps": self.steps, "states": self.states}

    def load_state_dict(self, state: dict) -> None:
        self.steps = state["steps"]
        self.states = [
            {key: value.to(p.device) for key, value in own.items()}
            for p, own in zip(self.params, state["states"], strict=True)
        ]
