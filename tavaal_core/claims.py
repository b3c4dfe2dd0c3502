"""Claim metrics: the papers' qualitative claims as numbers, pure functions of stage records and the dataset.

Every function here takes plain arrays (or :class:`~tavaal_core.records.StageRecord` objects, which hold
plain arrays) and returns numbers, so the same metric applies to a live session, a saved run, or a run
made on a GPU elsewhere. Nothing here trains a model; the audit runner (:mod:`tavaal_core.audit`)
decides which records to feed in and how to summarise over seeds.

Definitions and why
-------------------
Most metrics compare the picks with the **candidates they were chosen from** (the same stage's
candidate subset), as a mid-rank percentile: ``0.5`` is what a uniformly random batch of candidates
scores in expectation, ``0`` means "the candidates with the smallest values", ``1`` "the largest".
Percentiles make stages, seeds and datasets comparable (a raw distance depends on the stage's
candidates and the data's units) and give every metric an obvious "no better than random" value.

- **Nearness to the oracle boundary** (:func:`boundary_distance_rank`): each candidate's Euclidean
  distance to the 0.5-contour of the *oracle* model (the same task learner trained on every label,
  the dashed line of the two-moons views), then the picks' mean percentile among the candidates.
  Lower = closer to the boundary. Measured against the oracle, not the stage's own model, so every
  method is judged against the same line (TA-VAAL Fig. 1 speaks of "the decision boundary").
- **Spread** (:func:`spread_ratio`): mean pairwise distance of the picks divided by the mean pairwise
  distance of the candidates. ``1`` = as spread as the candidates (a random batch), below 1 =
  clustered. Scale-free, so it compares stages.
- **Coverage** (:func:`regions_covered`): the pool is cut into ``k = budget`` regions by k-means
  (fixed seed); coverage is the share of regions holding at least one pick. ``b`` spread picks can
  reach 1; a random batch reaches about ``1 - (1 - 1/k)^k`` (0.65 for k = 10); a cluster stays low.
  It answers "spread over the set" where mean pairwise distance can be fooled by two far clusters.
- **Minority share** (:func:`minority_share`): share of the picks from the minority classes (those
  with fewer pool samples than the largest class).
- **Class-count entropy** (:func:`labeled_entropy`): normalised entropy (``/ log K``) of the labeled
  set's class counts *after* the stage's picks (TA-VAAL Fig. 7a plots the labeled set per stage).
- **Spread of the discriminator's outputs** (:func:`value_spread`): the 5th-95th percentile range
  of ``D`` on the stage's unlabeled candidates. TA-VAAL Fig. 7b speaks of outputs "concentrated" vs
  "spread over a wide range"; a percentile range says that without being moved by a few outliers.
- **Real loss of the picks** (:func:`loss_rank`, :func:`loss_rank_spread`): the picks' mean
  percentile of true per-sample loss among the candidates (high = hard samples; 0.5 = random), and
  the interquartile range of those percentiles (how wide a range of losses the picks span; a random
  batch has about 0.5).
- **Overlap of picks** (:func:`pick_overlap_fraction`): shared picks / batch size. Two methods'
  batches are only comparable where they start from the same labeled set: stage 0 of a trial.
- **Accuracy differences with paired tests** (:func:`accuracy_differences`): per stage, the mean over
  seeds of ``accuracy(a) - accuracy(b)`` and the two-sided paired t-test p-value
  (:func:`tavaal_core.statistics.paired_t_test`; seeds pair the methods, as in Godwin et al.).

Summaries over seeds (:func:`mean_ci`, :func:`ordering_verdict`) live here too, so the CLI and the
app say the same thing: a claim part **holds** when the paper's ordering held in at least
``HOLD_SHARE`` (80%) of the seeds *and* a paired t-test on the per-seed differences gives
p < 0.05; it **does not hold** when the ordering held in at most half of the seeds (no better than
a coin); anything in between is **mixed**.
"""
from __future__ import annotations

import math
from typing import Iterable, Sequence

import numpy as np

from .analysis import class_count_entropy, distance_to_boundary, labeled_counts_after

HOLD_SHARE = 0.8
SIGNIFICANCE = 0.05
HOLDS, MIXED, FAILS = "holds", "mixed", "does not hold"
VERDICTS = (HOLDS, MIXED, FAILS)


# -- building blocks ---------------------------------------------------------------------------------
def percentile_in(values, reference) -> np.ndarray:
    """Mid-rank percentile of each value among ``reference``: ``P(ref < v) + 0.5 P(ref == v)``.

    0 = below every reference value, 1 = above every one, 0.5 = in the middle (and the expected mean for
    values drawn at random from ``reference``). NaN for an empty reference."""
    values = np.asarray(values, np.float64).ravel()
    ref = np.sort(np.asarray(reference, np.float64).ravel())
    if not ref.size:
        return np.full(values.shape, np.nan)
    below = np.searchsorted(ref, values, side="left")
    not_above = np.searchsorted(ref, values, side="right")
    return (below + 0.5 * (not_above - below)) / ref.size


def mean_pairwise_distance(points) -> float:
    """Mean Euclidean distance over all pairs (NaN below two points)."""
    points = np.asarray(points, np.float64)
    points = points.reshape(len(points), -1)
    n = len(points)
    if n < 2:
        return math.nan
    sq = (points ** 2).sum(1)
    d2 = np.clip(sq[:, None] + sq[None, :] - 2 * points @ points.T, 0, None)
    np.fill_diagonal(d2, 0.0)
    return float(np.sqrt(d2).sum() / (n * (n - 1)))  # every pair twice, the diagonal 0


def _positions(record, indices) -> np.ndarray:
    """Positions of dataset ``indices`` in ``record.candidates`` (sorted)."""
    return np.searchsorted(np.asarray(record.candidates), np.asarray(indices))


# -- two-moons geometry (TA-VAAL Fig. 1) ----------------------------------------------------------------
def boundary_distance_rank(pick_points, candidate_points, grid_x, grid_y, prob) -> float:
    """Mean percentile of the picks' distance to the ``prob == 0.5`` contour among the candidates'.
    0 = the picks are the candidates closest to the boundary, 0.5 = like random candidates.
    NaN when the grid holds no boundary."""
    d_cand = distance_to_boundary(candidate_points, grid_x, grid_y, prob)
    if not np.isfinite(d_cand).all():
        return math.nan
    d_pick = distance_to_boundary(pick_points, grid_x, grid_y, prob)
    return float(percentile_in(d_pick, d_cand).mean())


def spread_ratio(pick_points, candidate_points) -> float:
    """Mean pairwise distance of the picks / that of the candidates (1 = as spread as the candidates)."""
    cand = mean_pairwise_distance(candidate_points)
    if not cand or not math.isfinite(cand):
        return math.nan
    return mean_pairwise_distance(pick_points) / cand


def pool_regions(points, k: int, seed: int = 0) -> np.ndarray:
    """Region of every pool point: k-means with ``k`` clusters (fixed seed, so runs agree)."""
    from sklearn.cluster import KMeans

    points = np.asarray(points, np.float64).reshape(len(points), -1)
    k = int(max(1, min(k, len(points))))
    return KMeans(n_clusters=k, n_init=4, random_state=seed).fit_predict(points).astype(np.int64)


def regions_covered(pick_regions, k: int) -> float:
    """Share of the ``k`` regions that hold at least one pick."""
    pick_regions = np.asarray(pick_regions, np.int64)
    return float(np.unique(pick_regions).size / k) if k else math.nan


# -- classes (TA-VAAL Fig. 7a) -----------------------------------------------------------------------
def minority_classes(pool_counts) -> np.ndarray:
    """Classes with fewer pool samples than the largest class (empty for a balanced pool)."""
    counts = np.asarray(pool_counts)
    return np.flatnonzero(counts < counts.max()) if counts.size else np.zeros(0, np.int64)


def minority_share(pick_labels, minority) -> float:
    """Share of the picks whose class is in ``minority`` (NaN without picks)."""
    pick_labels = np.asarray(pick_labels)
    if not pick_labels.size:
        return math.nan
    return float(np.isin(pick_labels, np.asarray(minority)).mean())


def labeled_entropy(record, num_classes: int) -> float:
    """Normalised class-count entropy of the labeled set after the stage's picks (1 = balanced)."""
    return class_count_entropy(labeled_counts_after(record, num_classes))[1]


# -- distributions of scores and losses (TA-VAAL Figs. 7b and 8) -------------------------------------------
def value_spread(values, low: float = 5.0, high: float = 95.0) -> float:
    """The ``low``-``high`` percentile range of ``values`` (NaN when empty)."""
    values = np.asarray(values, np.float64)
    values = values[np.isfinite(values)]
    if not values.size:
        return math.nan
    lo, hi = np.percentile(values, [low, high])
    return float(hi - lo)


def loss_rank(pick_loss, candidate_loss) -> float:
    """Mean percentile of the picks' true loss among the candidates' (1 = the hardest, 0.5 = random)."""
    return float(percentile_in(pick_loss, candidate_loss).mean()) if np.size(pick_loss) else math.nan


def loss_rank_spread(pick_loss, candidate_loss) -> float:
    """Interquartile range of the picks' loss percentiles: how wide a range of losses the batch spans
    (a random batch: about 0.5; picks of one narrow band: near 0)."""
    ranks = percentile_in(pick_loss, candidate_loss)
    if ranks.size < 2:
        return math.nan
    q1, q3 = np.percentile(ranks, [25, 75])
    return float(q3 - q1)


# -- comparisons of two methods (Godwin et al. 2022) ----------------------------------------------------
def pick_overlap_fraction(a, b) -> float:
    """Shared picks of two batches / the smaller batch's size (1 = the same batch)."""
    a, b = np.asarray(a), np.asarray(b)
    size = min(a.size, b.size)
    return float(np.intersect1d(a, b).size / size) if size else math.nan


def accuracy_differences(acc_a: np.ndarray, acc_b: np.ndarray) -> list[dict]:
    """Per stage: mean over seeds of ``a - b``, how many seeds had ``a > b``, and the paired t-test p.

    ``acc_a``, ``acc_b``: (seeds, stages) accuracies, seeds paired by row."""
    from .statistics import paired_t_test

    acc_a, acc_b = np.asarray(acc_a, np.float64), np.asarray(acc_b, np.float64)
    if acc_a.shape != acc_b.shape or acc_a.ndim != 2:
        raise ValueError(f"accuracies must be (seeds, stages) of one shape, got {acc_a.shape} and {acc_b.shape}")
    rows = []
    for s in range(acc_a.shape[1]):
        diff = acc_a[:, s] - acc_b[:, s]
        rows.append({"stage": s, "mean_difference": float(diff.mean()) if diff.size else math.nan,
                     "seeds_a_better": int((diff > 0).sum()), "seeds": int(diff.size),
                     "p_value": paired_t_test(acc_a[:, s], acc_b[:, s])})
    return rows


# -- record-level metrics (what the audit computes per method, seed and stage) ----------------------------
class DatasetFacts:
    """What the record-level metrics need about the training set, by dataset index: labels, the pool's
    class counts, 2-d coordinates (two moons), the oracle's boundary grid and the pool's regions."""

    def __init__(self, labels, points=None, oracle_grid=None, num_classes: int | None = None):
        self.labels = np.asarray(labels, np.int64)
        self.num_classes = int(num_classes if num_classes is not None else self.labels.max() + 1)
        self.pool_counts = np.bincount(self.labels, minlength=self.num_classes)
        self.points = None if points is None else np.asarray(points, np.float64)
        self.oracle_grid = oracle_grid  # (grid_x, grid_y, prob) or None
        self._regions: dict[int, np.ndarray] = {}
        self._boundary_distance: np.ndarray | None = None

    @property
    def minority(self) -> np.ndarray:
        return minority_classes(self.pool_counts)

    def regions(self, k: int) -> np.ndarray:
        if k not in self._regions:
            self._regions[k] = pool_regions(self.points, k)
        return self._regions[k]

    def boundary_distance(self) -> np.ndarray:
        """Every pool point's distance to the oracle boundary, once."""
        if self._boundary_distance is None:
            self._boundary_distance = distance_to_boundary(self.points, *self.oracle_grid)
        return self._boundary_distance


def record_metrics(record, facts: DatasetFacts) -> dict[str, float]:
    """Every claim metric that ``record`` supports, by name (``METRICS`` says what each means)."""
    out: dict[str, float] = {"accuracy": float(record.accuracy),
                             "class_entropy": labeled_entropy(record, facts.num_classes)}
    picks = np.asarray(record.selected, np.int64)
    cands = np.asarray(record.candidates, np.int64)
    if facts.minority.size:
        out["minority_share"] = minority_share(facts.labels[picks], facts.minority)
    if facts.points is not None and facts.points.shape[1] == 2 and picks.size:
        if facts.oracle_grid is not None:
            dist = facts.boundary_distance()
            out["boundary_rank"] = float(percentile_in(dist[picks], dist[cands]).mean()) \
                if np.isfinite(dist).all() else math.nan
        out["spread"] = spread_ratio(facts.points[picks], facts.points[cands])
        k = len(picks)
        out["coverage"] = regions_covered(facts.regions(k)[picks], k)
    if np.size(record.candidate_likelihood):
        out["d_spread"] = value_spread(record.candidate_likelihood)
    if np.size(record.candidate_loss) and picks.size:
        pick_loss = np.asarray(record.candidate_loss)[_positions(record, picks)]
        out["loss_rank"] = loss_rank(pick_loss, record.candidate_loss)
        out["loss_rank_iqr"] = loss_rank_spread(pick_loss, record.candidate_loss)
    return out


METRICS = {
    "accuracy": ("test accuracy", "higher is better"),
    "class_entropy": ("class-count entropy of the labeled set after the picks (/ log K)", "1 = balanced"),
    "minority_share": ("share of the picks from minority classes", "pool share = like random"),
    "boundary_rank": ("picks' percentile of distance to the oracle boundary among the candidates",
                      "0 = closest, 0.5 = like random"),
    "spread": ("picks' mean pairwise distance / the candidates'", "1 = like random, < 1 = clustered"),
    "coverage": ("share of the pool's k-means regions (k = budget) holding a pick", "1 = every region"),
    "d_spread": ("5th-95th percentile range of D's outputs on the unlabeled candidates", "wide = spread"),
    "loss_rank": ("picks' percentile of true loss among the candidates", "1 = hardest, 0.5 = like random"),
    "loss_rank_iqr": ("interquartile range of the picks' loss percentiles", "about 0.5 for a random batch"),
    "overlap": ("shared picks of two methods at stage 0 (same labeled set) / budget", "1 = same batch"),
}


# -- summaries over seeds --------------------------------------------------------------------------------
def mean_ci(values, level: float = 0.95) -> tuple[float, float, float]:
    """(mean, low, high): Student-t confidence interval of the mean over seeds; NaN bounds below 2 values."""
    from scipy import stats

    values = np.asarray(values, np.float64)
    values = values[np.isfinite(values)]
    if not values.size:
        return math.nan, math.nan, math.nan
    mean = float(values.mean())
    if values.size < 2:
        return mean, math.nan, math.nan
    sem = float(values.std(ddof=1) / math.sqrt(values.size))
    half = float(stats.t.ppf(0.5 + level / 2, values.size - 1)) * sem
    return mean, mean - half, mean + half


def ordering_verdict(held: int, seeds: int, p_value: float, mean_difference: float) -> str:
    """Holds / mixed / does not hold for one claimed ordering (see the module doc for the rule).

    ``held``: seeds where the paper's ordering held; ``mean_difference``: mean over seeds of the difference
    in the paper's direction (positive = the paper's way); ``p_value``: paired t-test on those differences."""
    if seeds <= 0:
        return MIXED
    share = held / seeds
    if share <= 0.5 or not (mean_difference > 0):
        return FAILS
    if share >= HOLD_SHARE and p_value < SIGNIFICANCE:
        return HOLDS
    return MIXED


def no_difference_verdict(p_values: Iterable[float]) -> str:
    """For a claim of *no* significant difference: holds when no stage has p < 0.05, does not hold when
    most stages do, mixed otherwise (NaN p-values, e.g. identical results, count as no difference)."""
    p = np.asarray(list(p_values), np.float64)
    if not p.size:
        return MIXED
    significant = int((p < SIGNIFICANCE).sum())
    if significant == 0:
        return HOLDS
    return FAILS if significant > p.size / 2 else MIXED


def combine_verdicts(verdicts: Sequence[str]) -> str:
    """A claim of several parts: holds when every part holds, does not hold when none holds (every part
    fails), mixed otherwise."""
    verdicts = list(verdicts)
    if not verdicts:
        return MIXED
    if all(v == HOLDS for v in verdicts):
        return HOLDS
    if all(v == FAILS for v in verdicts):
        return FAILS
    return MIXED
