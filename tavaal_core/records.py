"""StageRecord: everything a view needs about one stage, as plain numpy arrays and scalars.

Arrays are keyed by dataset index (``candidates``, ``labeled``, ``analysis_indices`` say which), so any
view can be drawn for any stage of any saved run without re-running a model. Fields that a method does
not produce (e.g. discriminator likelihoods for core-set) are empty arrays, never None.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np

_EMPTY = np.zeros(0, dtype=np.float32)


def _empty():
    return _EMPTY.copy()


@dataclass
class StageRecord:
    stage: int
    method: str
    labeled_count: int  # size of the labeled set the model was trained on
    accuracy: float  # test accuracy of that model (segmentation: pixel accuracy)
    per_class_accuracy: np.ndarray  # (K,) (segmentation: per-class pixel recall)
    class_counts: np.ndarray  # (K,) labeled-set class counts (before this stage's picks); segmentation: pixels
    class_entropy: float  # natural log
    class_entropy_normalized: float  # / log K
    selected: np.ndarray  # dataset indices picked this stage, in pick order
    selected_labels: np.ndarray  # their (hidden) labels, revealed by the oracle (segmentation: dominant class)
    score_name: str
    higher_is_better: bool
    labeled: np.ndarray  # dataset indices labeled before this stage's picks
    candidates: np.ndarray  # dataset indices scored this stage (sorted)
    candidate_scores: np.ndarray  # the method's score per candidate
    candidate_loss: np.ndarray  # true per-sample task loss (hidden labels; analysis only)
    candidate_predicted_loss: np.ndarray = field(default_factory=_empty)  # l_hat (loss head / Ranker)
    candidate_rank: np.ndarray = field(default_factory=_empty)  # r = sigmoid(l_hat) fed to TA-VAAL's VAE/D
    candidate_likelihood: np.ndarray = field(default_factory=_empty)  # D(mu[, r]) probability "labeled"
    labeled_likelihood: np.ndarray = field(default_factory=_empty)  # D output for the labeled set
    candidate_entropy: np.ndarray = field(default_factory=_empty)  # H(mean p) of the model's prediction
    candidate_expected_entropy: np.ndarray = field(default_factory=_empty)  # BALD: mean over passes of H(p_t)
    candidate_nearest_labeled: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))  # dataset index
    analysis_indices: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    analysis_features: np.ndarray = field(default_factory=_empty)  # (A, E) penultimate task features
    analysis_vae_mu: np.ndarray = field(default_factory=_empty)  # (A, Z) VAE mu, when the method has a VAE
    analysis_probs: np.ndarray = field(default_factory=_empty)  # (A, K) predicted probabilities
    boundary_x: np.ndarray = field(default_factory=_empty)  # 2-D data: grid axes and P(class 1) on the grid
    boundary_y: np.ndarray = field(default_factory=_empty)
    boundary_prob: np.ndarray = field(default_factory=_empty)
    task_loss_history: np.ndarray = field(default_factory=_empty)
    timings: dict = field(default_factory=dict)  # phase -> seconds
    # Per pick, in pick order: the value that decided it (a top-k method's score; a greedy method's gain
    # at its turn, after every earlier pick counted as labeled).
    selection_gain: np.ndarray = field(default_factory=_empty)
    greedy: bool = False  # core-set / MedAL: scores are re-computed after each pick
    device: str = ""  # where this stage ran ("cpu", "cuda", ...): a run may resume on another device
    precision: str = "fp32"  # training precision ("fp32" or "bf16"); selection is always scored in fp32
    task_dropout: float = 0.0  # dropout rate of the task learner this stage trained
    task_init: str = "random"  # the task learner's initial weights: "random" or "imagenet"
    # Segmentation only: test mean IoU (None for classification) and per-class IoU (NaN for a class absent
    # from truth and prediction), and the predicted masks (uint8, (M, H, W)) of the first M picks, in pick order.
    mean_iou: float | None = None
    per_class_iou: np.ndarray = field(default_factory=_empty)
    selected_predicted_masks: np.ndarray = field(default_factory=lambda: np.zeros((0, 0, 0), np.uint8))

    @property
    def metric_name(self) -> str:
        """The headline test metric: "mean_iou" for segmentation, else "accuracy"."""
        return "accuracy" if self.mean_iou is None else "mean_iou"

    @property
    def metric(self) -> float:
        """The headline test metric's value (see ``metric_name``)."""
        return self.accuracy if self.mean_iou is None else float(self.mean_iou)

    @property
    def selected_likelihood(self) -> np.ndarray:
        """D output of the picks (a view of ``candidate_likelihood``)."""
        if not self.candidate_likelihood.size:
            return _empty()
        pos = np.searchsorted(self.candidates, self.selected)
        return self.candidate_likelihood[pos]

    @property
    def pick_gains(self) -> np.ndarray:
        """Per pick, in pick order, the value that decided it (records written before ``selection_gain``
        existed: the picks' candidate scores)."""
        if self.selection_gain.size or not self.selected.size:
            return np.asarray(self.selection_gain, np.float64)
        pos = np.searchsorted(self.candidates, self.selected)
        return np.asarray(self.candidate_scores, np.float64)[pos] if self.candidate_scores.size else _empty()

    def view_order(self) -> np.ndarray:
        """Positions into ``candidates`` in the order the views describe: the picks in pick order, then the
        rest by score, best first (``higher_is_better``). For a top-k method this is plain score order."""
        n = len(self.candidates)
        picked = np.searchsorted(self.candidates, self.selected)
        rest = np.setdiff1d(np.arange(n), picked)
        if self.candidate_scores.size == n and rest.size:
            key = np.asarray(self.candidate_scores, np.float64)[rest]
            rest = rest[np.argsort(-key if self.higher_is_better else key, kind="stable")]
        return np.concatenate([picked, rest]).astype(np.int64)

    @property
    def selected_mask(self) -> np.ndarray:
        """Boolean mask over ``candidates``: True for this stage's picks."""
        return np.isin(self.candidates, self.selected)

    # -- plain serialisation (the run store writes scalars as JSON, arrays as NPZ) ------------------
    def split(self) -> tuple[dict, dict[str, np.ndarray]]:
        scalars, arrays = {}, {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, np.ndarray):
                arrays[f.name] = value
            else:
                scalars[f.name] = value
        return scalars, arrays

    @classmethod
    def join(cls, scalars: dict, arrays: dict) -> "StageRecord":
        names = {f.name for f in dataclasses.fields(cls)}
        kwargs = {k: v for k, v in scalars.items() if k in names}
        kwargs.update({k: np.asarray(v) for k, v in arrays.items() if k in names})
        return cls(**kwargs)
