"""LLM-ESR (Liu et al., NeurIPS 2024): one wrapper that enhances any backbone encoder.

Two views of the same item sequence:
- collaborative: a trainable item ID table initialised from the PCA of the items' LLM
  embeddings (`id_init: random` is the paper's ablation);
- semantic: the items' LLM embeddings, FROZEN (a buffer, never trained), through an adapter
  of two linear layers (LLM dim -> LLM dim / 2 -> d; no activation, no dropout).
Each view is embedded as the backbone expects, mixed by cross-attention (queries from one
view, keys and values from the other), then run through ONE shared encoder. The user is
concat(collaborative state, semantic state) at the last position, the item is
concat(ID vector, adapted LLM vector), and the score is their dot product.

Every part can be switched off for the paper's ablations: either view (the other then works
alone, without cross-attention), the cross-attention, the sharing of the encoder (each view
gets its own), the second adapter layer, the PCA initialisation.

Retrieval-augmented self-distillation (`SelfDistillation`, the training term at the end of
this file): the teacher is the mean of the model's own (detached) representations of the
user's `num_similar_users` most similar users (their training inputs), the student the user's
representation; loss = rec + alpha * MSE(student, teacher) (alpha 0 switches it off).
`teacher: batch` (the authors' way) computes the teacher for every batch in training mode,
each (user, neighbour) pair its own forward with its own dropout draw; the default,
`epoch_cache`, takes the neighbours' representations from a cache computed once per epoch in
evaluation mode: several times cheaper (each user is a neighbour of about ten others), with a
teacher that lags by up to an epoch. `student: second_pass` (the authors') takes the student
from a second forward with its own dropout draw instead of the recommendation forward.

The cross-attention masks padding keys (as the authors' does) and is causal only when
`causal` is set, which the builder does for SASRec's next-item objective alone: GRU4Rec
trains on the last position and Bert4Rec is bidirectional. Under `padding: attended` the ID
table's padding row is trainable, as in the authors' code (GRU4Rec reads it on padding steps).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..data import TRAIN_CUT, Sequences
from ..options import option
from ..scoring import last_states
from ..split import input_lengths
from .layers import InputEmbedding, attend, attention_mask, init_weights, left_pad_to
from .method import BuildInputs, Method, divides
from .terms import Batch, MicroBatch, TrainingData, TrainingTerm


@dataclass(frozen=True)
class LLMESRConfig:
    enabled: bool = option(True, "false = the plain backbone.")
    collaborative_view: bool = option(True, "The ID view (false: the semantic view alone, the paper's w/o co-view).")
    semantic_view: bool = option(True, "The LLM view (false: the ID view alone, the paper's w/o se-view).")
    cross_attention: bool = option(True, "Cross-attention between the views; only when both views are on.")
    cross_attention_heads: int = option(2, "Heads of each cross-attention (hidden_size must divide by it).", minimum=1)
    shared_encoder: bool = option(True, "false = a separate encoder per view.")
    adapter_layers: Literal[1, 2] = option(2, "Linear layers of the adapter (1 is the paper's ablation).")
    id_init: Literal["pca", "random"] = option(
        "pca", "The ID table starts from the PCA of the item embeddings, or random (the paper's ablation)."
    )
    alpha: float = option(0.1, "Weight of the self-distillation loss; 0 switches it off.", minimum=0)
    num_similar_users: int = option(10, "Similar users whose mean representation is the teacher.", minimum=1)
    teacher: Literal["epoch_cache", "batch"] = option(
        "epoch_cache",
        "How the distillation teacher (the mean representation of the similar users) is computed: "
        "epoch_cache = once per epoch for all users, in evaluation mode (several times faster); batch = fresh for "
        "every batch with the model as it trains (the authors' way, dropout included).",
    )
    student: Literal["same_pass", "second_pass"] = option(
        "same_pass",
        "Where the distilled user representation comes from: same_pass = the forward that gives the "
        "recommendation loss; second_pass = a second forward with its own dropout draw (the authors').",
    )
    distill_users: Literal["all", "tail"] = option(
        "all",
        "Who is distilled: all users (the paper), or tail users only (input shorter than ts_user, the groups' "
        "cut): head users keep their own representation instead of being pulled to their neighbours' mean.",
    )
    fusion: Literal["concat", "gated"] = option(
        "concat",
        "How the views' scores add up: concat = the paper's dot product of concatenated views; gated = each "
        "view's cosine similarity, weighted per item by a learned gate on the item's training popularity "
        "(sigmoid(bias + slope x standardised log count): the semantic view's share), times a learned scale. "
        "Needs both views.",
    )

    def __post_init__(self):
        if not (self.collaborative_view or self.semantic_view):
            raise ValueError("LLM-ESR needs at least one of collaborative_view and semantic_view")
        if self.adapter_layers not in (1, 2):
            raise ValueError(f"adapter_layers must be 1 or 2, not {self.adapter_layers}")
        if self.id_init not in ("pca", "random"):
            raise ValueError(f"id_init must be 'pca' or 'random', not {self.id_init!r}")
        if self.teacher not in ("epoch_cache", "batch"):
            raise ValueError(f"teacher must be 'epoch_cache' or 'batch', not {self.teacher!r}")
        if self.student not in ("same_pass", "second_pass"):
            raise ValueError(f"student must be 'same_pass' or 'second_pass', not {self.student!r}")
        if self.distill_users not in ("all", "tail"):
            raise ValueError(f"distill_users must be 'all' or 'tail', not {self.distill_users!r}")
        if self.fusion not in ("concat", "gated"):
            raise ValueError(f"fusion must be 'concat' or 'gated', not {self.fusion!r}")
        if self.fusion == "gated" and not (self.collaborative_view and self.semantic_view):
            raise ValueError("fusion 'gated' weighs two views: it needs collaborative_view and semantic_view")

    @property
    def mixes_views(self) -> bool:
        return self.cross_attention and self.collaborative_view and self.semantic_view

    @property
    def uses_pca(self) -> bool:
        return self.collaborative_view and self.id_init == "pca"


class CrossAttention(nn.Module):
    """Multi-head attention from one view (queries) to the other (keys, values): bias-free
    Q/K/V projections and an output projection; no residual, no LayerNorm, no dropout."""

    def __init__(self, hidden_size: int, num_heads: int):
        super().__init__()
        if hidden_size % num_heads:
            raise ValueError(f"hidden_size {hidden_size} is not divisible by {num_heads} cross-attention heads")
        self.num_heads = num_heads
        self.query = nn.Linear(hidden_size, hidden_size, bias=False)
        self.key = nn.Linear(hidden_size, hidden_size, bias=False)
        self.value = nn.Linear(hidden_size, hidden_size, bias=False)
        self.out = nn.Linear(hidden_size, hidden_size)

    def forward(self, queries: torch.Tensor, keys: torch.Tensor, allowed: torch.Tensor) -> torch.Tensor:
        batch, length, hidden = queries.shape
        heads = self.num_heads

        def split(x: torch.Tensor) -> torch.Tensor:
            return x.view(batch, length, heads, hidden // heads).transpose(1, 2)

        mixed = attend(split(self.query(queries)), split(self.key(keys)), split(self.value(keys)), allowed)
        return self.out(mixed.transpose(1, 2).reshape(batch, length, hidden))


class LLMESR(nn.Module):
    def __init__(
        self,
        config: LLMESRConfig,
        make_encoder: Callable[[], nn.Module],
        n_items: int,
        llm_items: torch.Tensor | None,
        pca_items: torch.Tensor | None,
        hidden_size: int,
        max_len: int,
        dropout: float,
        causal: bool,
        mask_token: bool = False,
        padding: str = "masked",
        log_popularity: torch.Tensor | None = None,
    ):
        """`llm_items` (n_items, D) and `pca_items` (n_items, hidden_size): row i = item i+1.
        `make_encoder` builds a backbone encoder (twice when the views do not share one);
        `causal` applies to the cross-attention; `log_popularity` (n_items + 1,) feeds the
        gate of `fusion: gated`."""
        super().__init__()
        self.config = config
        self.causal = causal
        self.n_items = n_items
        self.mask_token = self.n_items + 1 if mask_token else None

        def with_special_rows(table: torch.Tensor) -> torch.Tensor:
            # Row 0 = padding and the mask token's row (if any) start at zero.
            zero = table.new_zeros(1, table.shape[1])
            return torch.cat([zero, table.float()] + [zero] * mask_token)

        if config.semantic_view:
            llm_dim = llm_items.shape[1]
            self.register_buffer("llm_items", with_special_rows(llm_items))
            widths = [llm_dim, llm_dim // 2, hidden_size] if config.adapter_layers == 2 else [llm_dim, hidden_size]
            self.adapter = nn.Sequential(*(nn.Linear(a, b) for a, b in zip(widths, widths[1:])))
        if config.collaborative_view:
            self.id_embedding = nn.Embedding(
                self.n_items + 1 + mask_token, hidden_size, padding_idx=0 if padding == "masked" else None
            )
        if config.mixes_views:
            self.id_from_semantic = CrossAttention(hidden_size, config.cross_attention_heads)
            self.semantic_from_id = CrossAttention(hidden_size, config.cross_attention_heads)
        self.encoder = make_encoder()
        if not config.shared_encoder and config.collaborative_view and config.semantic_view:
            self.semantic_encoder = make_encoder()
        self.shifts_long_positions = self.encoder.shifted_scoring_positions
        self.inputs = InputEmbedding(
            hidden_size,
            max_len,
            dropout,
            positional=self.encoder.uses_positions,
            extra_positions=int(self.shifts_long_positions),
        )

        if config.fusion == "gated":
            popularity = log_popularity[1 : n_items + 1].float()
            standardised = (popularity - popularity.mean()) / popularity.std().clamp(min=1e-6)
            self.register_buffer(
                "popularity",
                torch.cat([standardised.new_zeros(1), standardised] + [standardised.new_zeros(1)] * mask_token),
            )
            self.gate_bias = nn.Parameter(torch.zeros(()))  # share 0.5 for every item at first
            self.gate_slope = nn.Parameter(torch.zeros(()))
            self.log_scale = nn.Parameter(torch.tensor(math.log(1 / 0.07)))  # cosines x 14.3, as a 0.07 temperature
        # Width of the collaborative half of states and item vectors (two views), for diagnostics.
        self.view_split = hidden_size if config.collaborative_view and config.semantic_view else None

        init_weights(self)
        if config.collaborative_view:
            with torch.no_grad():
                if config.id_init == "pca":
                    self.id_embedding.weight.copy_(with_special_rows(pca_items))
                else:
                    self.id_embedding.weight[0].zero_()
                    if mask_token:
                        self.id_embedding.weight[self.mask_token].zero_()

    def semantic_vectors(self, items: torch.Tensor) -> torch.Tensor:
        """adapter(LLM embedding), computed once per distinct item in `items`."""
        distinct, where = torch.unique(items, return_inverse=True)
        # index_select, not `[where]`: the backward of indexing with repeated indices adds up
        # the gradients in a thread-dependent order on CPU, so runs would not repeat bit for bit.
        return self.adapter(self.llm_items[distinct]).index_select(0, where.flatten()).view(*where.shape, -1)

    def sequence_states(self, seq: torch.Tensor, position_shift: torch.Tensor | None = None) -> torch.Tensor:
        """(B, L) item ids, 0 = padding -> (B, L, views x d). `position_shift` (B,) moves each row's positions."""
        width = seq.shape[1]
        seq = left_pad_to(seq, self.encoder.full_width)
        valid = seq > 0
        views = []
        if self.config.collaborative_view:
            views.append(self.inputs(self.id_embedding(seq), valid, position_shift))
        if self.config.semantic_view:
            views.append(self.inputs(self.semantic_vectors(seq), valid, position_shift))
        if self.config.mixes_views:
            allowed = attention_mask(valid, self.causal)
            id_view, semantic_view = views
            views = [
                self.id_from_semantic(semantic_view, id_view, allowed),
                self.semantic_from_id(id_view, semantic_view, allowed),
            ]
        if hasattr(self, "semantic_encoder"):
            states = [self.encoder(views[0], valid), self.semantic_encoder(views[1], valid)]
        else:  # one call of the shared encoder over the views stacked along the batch
            states = self.encoder(torch.cat(views), valid.repeat(len(views), 1)).chunk(len(views))
        if self.config.fusion == "gated":  # each view's state on the unit sphere: scores are cosines
            states = [F.normalize(state, dim=-1) for state in states]
        return torch.cat(states, dim=-1)[:, -width:]

    def semantic_share(self, items: torch.Tensor) -> torch.Tensor:
        """`fusion: gated`: the weight of each item's semantic cosine in its score."""
        return torch.sigmoid(self.gate_bias + self.gate_slope * self.popularity[items])

    def item_vectors(self, items: torch.Tensor) -> torch.Tensor:
        vectors = []
        if self.config.collaborative_view:
            vectors.append(self.id_embedding(items))
        if self.config.semantic_view:
            vectors.append(self.semantic_vectors(items))
        if self.config.fusion == "gated":
            share = self.semantic_share(items).unsqueeze(-1)
            scale = self.log_scale.clamp(max=math.log(100)).exp()  # CLIP's cap on a learned scale
            ids, semantic = (F.normalize(vector, dim=-1) for vector in vectors)
            return scale * torch.cat([(1 - share) * ids, share * semantic], dim=-1)
        return torch.cat(vectors, dim=-1)


# ---------------------------------------------------------------- self-distillation


def mean_of_neighbours(
    states: torch.Tensor, usable: torch.Tensor, where: torch.Tensor, shape: tuple[int, int]
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean of `states[where]` per row of a (B, n) neighbour grid, over usable neighbours only."""
    weights = usable[where].view(shape).float()
    gathered = states[where].view(*shape, -1)
    count = weights.sum(1, keepdim=True)
    return (gathered * weights.unsqueeze(-1)).sum(1) / count.clamp(min=1), count.squeeze(1) > 0


def usable_neighbours(sequences: Sequences, keep_empty: bool) -> np.ndarray:
    """Which users' representations enter a teacher: those with a training input (the
    training sequence without its last item), or with `keep_empty` everyone, as the authors'
    code does (an empty input is all padding and still has a representation)."""
    return np.ones(sequences.n_users, bool) if keep_empty else sequences.lengths > TRAIN_CUT + 1


def distillation_teacher(
    model: torch.nn.Module,
    sequences: Sequences,
    neighbours: np.ndarray,
    max_len: int,
    device: torch.device,
    keep_empty: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean representation of each row's neighbours (0-based rows, (B, n)), from their
    training inputs, skipping neighbours whose training input is empty unless `keep_empty`.
    Every (row, neighbour) pair is its own forward, with its own dropout draw, as in the
    authors' code (a neighbour shared by two rows is not computed once for both).
    Returns (teacher, has_teacher)."""
    flat = neighbours.reshape(-1)
    with torch.no_grad():
        states = last_states(model, sequences, flat, TRAIN_CUT + 1, max_len, device)
    usable = torch.from_numpy(usable_neighbours(sequences, keep_empty)).to(device)
    return mean_of_neighbours(states, usable[flat], torch.arange(len(flat), device=device), neighbours.shape)


@torch.no_grad()
def cached_representations(
    model: torch.nn.Module, sequences: Sequences, max_len: int, device: torch.device, rows: np.ndarray | None = None
) -> torch.Tensor:
    """`teacher: epoch_cache`: the users' representations of their training inputs, computed
    once at the start of an epoch (evaluation mode, so without dropout noise), as an
    (n_users, d) table. `rows` (sorted, unique): the only users computed, the others' rows are
    zero; all of them give the same table as None. A subset's chunks pad differently, so its
    rows match the full pass's up to float rounding."""
    was_training = model.training
    model.eval()
    rows = np.arange(sequences.n_users) if rows is None else rows
    states = last_states(model, sequences, rows, TRAIN_CUT + 1, max_len, device)
    model.train(was_training)
    if len(rows) == sequences.n_users:
        return states
    table = states.new_zeros((sequences.n_users, states.shape[1]))
    table[torch.from_numpy(rows).to(device)] = states
    return table


def cached_teacher(
    cached: torch.Tensor, sequences: Sequences, neighbours: np.ndarray, keep_empty: bool = False
) -> tuple[torch.Tensor, torch.Tensor]:
    usable = torch.from_numpy(usable_neighbours(sequences, keep_empty)).to(cached.device)
    return mean_of_neighbours(
        cached, usable, torch.from_numpy(neighbours.reshape(-1)).to(cached.device), neighbours.shape
    )


SUBSET_CACHE_SHARE = 0.5  # the teacher cache computes only the neighbours when they are at most this share of users
Teacher = tuple[torch.Tensor, torch.Tensor]  # (B, d) teacher states, (B,) whether a row has one


class SelfDistillation(TrainingTerm):
    """alpha * MSE(student, teacher) over the batch's users that have a teacher. `teacher`
    gives (teacher, has_teacher) for a batch's rows; `begin_epoch` runs `on_epoch` (the cache)."""

    name = "distill"

    def __init__(
        self,
        alpha: float,
        teacher: Callable[[nn.Module, np.ndarray], Teacher],
        second_pass: bool = False,
        on_epoch: Callable[[nn.Module], None] | None = None,
        taught: np.ndarray | None = None,
    ):
        """`taught` (n_users,) bool: the only users distilled (None: everyone with a teacher)."""
        self.weight, self.teacher, self.second_pass, self.on_epoch = alpha, teacher, second_pass, on_epoch
        self.taught = taught

    def begin_epoch(self, model: nn.Module, epoch: int) -> None:
        if self.on_epoch is not None:
            self.on_epoch(model)

    def prepare(self, model: nn.Module, batch: Batch) -> Teacher:
        teacher_states, has_teacher = self.teacher(model, batch.rows)
        if self.taught is not None:
            has_teacher = has_teacher & torch.from_numpy(self.taught[batch.rows]).to(has_teacher.device)
        return teacher_states, has_teacher

    def loss(self, model: nn.Module, micro: MicroBatch, prepared: Teacher) -> torch.Tensor:
        teacher_states, has_teacher = prepared
        n_taught = int(has_teacher.sum())
        if not n_taught:
            return micro.states.new_zeros(())
        taught = has_teacher[micro.where]
        last = model.sequence_states(micro.inputs)[:, -1] if self.second_pass else micro.states[:, -1]
        students, goals = last[taught], teacher_states[micro.where][taught]
        return ((students - goals) ** 2).sum() / (n_taught * students.shape[-1])  # the batch's MSE, in parts


def self_distillation(
    config: LLMESRConfig,
    sequences: Sequences,
    neighbours: np.ndarray,
    max_len: int,
    device: torch.device,
    keep_empty: bool,
    thresholds: dict | None = None,
) -> SelfDistillation:
    """The term as configured: `neighbours` (n_users, >= num_similar_users) are 1-based user
    ids; `thresholds` the groups' cuts (`distill_users: tail`)."""
    similar = neighbours[:, : config.num_similar_users].astype(np.int64) - 1
    taught = None
    if config.distill_users == "tail":
        taught = input_lengths(sequences, max_len) < thresholds["ts_user"]
    second_pass = config.student == "second_pass"
    if config.teacher == "batch":
        teacher = lambda model, rows: distillation_teacher(model, sequences, similar[rows], max_len, device, keep_empty)
        return SelfDistillation(config.alpha, teacher, second_pass, taught=taught)
    cache = {}
    # Only the users that are a distilled user's neighbour enter a teacher. A subset's chunks pad
    # differently, which moves its states by float rounding; so the cache keeps to the subset
    # only where that saves most of the pass (on Beauty 95% of the users are someone's neighbour).
    needed = np.unique(similar if taught is None else similar[taught])
    if len(needed) > SUBSET_CACHE_SHARE * sequences.n_users:
        needed = None

    def refresh(model: nn.Module) -> None:
        cache["states"] = cached_representations(model, sequences, max_len, device, rows=needed)

    teacher = lambda model, rows: cached_teacher(cache["states"], sequences, similar[rows], keep_empty)
    return SelfDistillation(config.alpha, teacher, second_pass, on_epoch=refresh, taught=taught)


def build(config: LLMESRConfig, inputs: BuildInputs) -> LLMESR:
    if config.semantic_view and inputs.llm_items is None:
        raise ValueError("LLM-ESR's semantic view needs the item LLM embeddings")
    if config.uses_pca and inputs.pca_items is None:
        raise ValueError("id_init 'pca' needs the PCA vectors of the item embeddings")
    # Causal only under a next-item objective at every position (SASRec, and only when causal).
    causal = inputs.model["causal"] and inputs.backbone.predicts_every_position
    if config.fusion == "gated" and inputs.log_popularity is None:
        raise ValueError("fusion 'gated' needs the items' training popularity")
    return LLMESR(
        config,
        inputs.encoder,
        inputs.n_items,
        inputs.llm_items,
        inputs.pca_items,
        causal=causal,
        log_popularity=inputs.log_popularity,
        **inputs.common,
    )


def needs(config: LLMESRConfig) -> set[str]:
    return (
        ({"llm_items"} if config.semantic_view else set())
        | ({"pca_items"} if config.uses_pca else set())
        | ({"neighbours"} if config.alpha > 0 else set())
        | ({"stats"} if config.alpha > 0 and config.distill_users == "tail" else set())
    )


def terms(config: LLMESRConfig, data: TrainingData) -> list[TrainingTerm]:
    if config.alpha == 0:
        return []
    return [
        self_distillation(
            config,
            data.sequences,
            data.neighbours,
            data.max_len,
            data.device,
            data.keep_single_item_users,
            data.thresholds,
        )
    ]


METHOD = Method(
    "llmesr",
    "LLM-ESR",
    build,
    LLMESRConfig,
    "LLM-ESR's options (Liu et al., NeurIPS 2024).",
    needs,
    terms,
    role=None,
    plain_when=lambda config: not config.enabled,
    group_analysis=True,
    order=90,
    check=lambda config, model: (
        divides(model, "llmesr.cross_attention_heads", config.cross_attention_heads) if config.mixes_views else []
    ),
)
