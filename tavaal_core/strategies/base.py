"""The strategy interface: a strategy declares what it needs and scores the candidates.

The engine trains what a strategy declares (task learner with or without a loss head, a VAE) and hands
the strategy a ``SelectionContext`` from which it reads predictions lazily; strategies never train the
task learner themselves. Top-k strategies only compute per-candidate scores; the base class owns the
direction and the ranking. Greedy strategies (core-set, MedAL) override ``select``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from ..constraints import Boolean, Options, check_fields

HEADS = ("none", "margin", "ranking")
VAES = ("none", "adversarial", "rank_conditioned", "unsupervised")
FEATURES = ("task", "task+vae")
NEEDS_RULES = {"head": Options(HEADS), "vae": Options(VAES), "features": Options(FEATURES),
               "mc_dropout": Boolean(), "head_extra": Boolean()}


@dataclass(frozen=True)
class Needs:
    head: str = "none"  # none | margin (Learning Loss) | ranking (TA-VAAL eq. 1)
    vae: str = "none"  # none | adversarial (VAAL) | rank_conditioned (TA-VAAL) | unsupervised (Godwin et al. 2022)
    features: str = "task"  # task | task+vae (Godwin et al. 2022: concat(task_features, alpha * mu))
    mc_dropout: bool = False
    head_extra: bool = False  # Godwin et al. 2022: VAE mu appended inside the loss head

    def __post_init__(self):
        # a strategy's declaration is checked like a user's setting: a typo names the field and the choices
        check_fields(self, NEEDS_RULES)


@dataclass
class Selection:
    """What a strategy chose. ``indices`` are dataset indices in pick order; ``scores`` line up with the
    context's candidates (``higher_is_better`` says which end is picked first).

    ``gains`` holds, per pick, the value that decided it: its score for a top-k method, its gain at its
    turn for a greedy one (``greedy=True``: core-set, MedAL), where every score is re-computed after each
    pick. For a greedy method ``scores`` explains the order: a pick's gain, an unpicked candidate's score
    at the last pick's turn."""

    indices: np.ndarray
    scores: np.ndarray
    score_name: str
    higher_is_better: bool = True
    diagnostics: dict[str, np.ndarray] = field(default_factory=dict)
    gains: np.ndarray | None = None
    greedy: bool = False

    def pick_gains(self, candidates: np.ndarray) -> np.ndarray:
        """``gains`` in pick order; for a top-k method, the picks' scores."""
        if self.gains is not None:
            return np.asarray(self.gains, np.float64)
        order = np.argsort(candidates, kind="stable")
        pos = order[np.searchsorted(candidates[order], self.indices)]
        return np.asarray(self.scores, np.float64)[pos]


class SelectionContext(Protocol):
    """What the engine offers a strategy at one stage. Everything is computed lazily and cached."""

    candidates: np.ndarray  # dataset indices of the candidate subset (sorted)
    labeled: np.ndarray  # dataset indices already labeled
    budget: int
    rng: np.random.Generator  # derived from (seed, stage, method)

    def predictions(self): ...  # training.Predictions for the candidates (probs, embedding, predicted_loss)
    def predictive_entropy(self) -> np.ndarray: ...  # (N,) entropy (segmentation: mean per-pixel entropy)
    def bald(self) -> np.ndarray: ...  # (N,) BALD mutual information (segmentation: mean over pixels)
    def mc_probs(self) -> np.ndarray: ...  # (T, N, K) MC-dropout probabilities (classification only)
    def features(self): ...  # (candidate_features, labeled_features) torch tensors on the device
    def discriminator_likelihood(self) -> np.ndarray: ...  # (N,) D's probability "labeled", candidates


class Strategy:
    name: str = ""
    label: str = ""  # for legends
    paper: str = ""  # reference
    description: str = ""  # one sentence a teacher can read out
    needs: Needs = Needs()
    score_name: str = "score"
    higher_is_better: bool = True

    def scores(self, ctx: SelectionContext) -> np.ndarray:
        raise NotImplementedError

    def diagnostics(self, ctx: SelectionContext) -> dict[str, np.ndarray]:
        return {}

    def select(self, ctx: SelectionContext) -> Selection:
        scores = np.asarray(self.scores(ctx), dtype=np.float64)
        return Selection(top_k(ctx.candidates, scores, ctx.budget, self.higher_is_better), scores,
                         self.score_name, self.higher_is_better, self.diagnostics(ctx))


def top_k(candidates: np.ndarray, scores: np.ndarray, k: int, higher_is_better: bool = True) -> np.ndarray:
    """The k candidates with the best scores, best first. A stable sort, so ties go to the lower index
    and the result is deterministic."""
    order = np.argsort(-scores if higher_is_better else scores, kind="stable")
    return candidates[order[:k]]


_REGISTRY: dict[str, Strategy] = {}


def register(cls):
    """Class decorator: add a strategy to the registry under ``cls.name``."""
    _REGISTRY[cls.name] = cls()
    return cls


def get_strategy(name: str) -> Strategy:
    from ..errors import ConfigError

    if name not in _REGISTRY:
        raise ConfigError("method", f"unknown method {name!r}; choose one of: {', '.join(_REGISTRY)}")
    return _REGISTRY[name]


def available_methods() -> list[str]:
    return list(_REGISTRY)
