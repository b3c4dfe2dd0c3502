"""Numbers computed from records for the views: class-count entropy (TA-VAAL Fig. 7a), comparisons of
batches of picks (overlap, distance to the decision boundary, spread), rank correlations, and the
learning-curve frame of one session. Plain numpy in, numbers or small DataFrames out."""
from __future__ import annotations

import numpy as np


def class_count_entropy(counts) -> tuple[float, float]:
    """Entropy of the labeled set's class distribution: (natural-log entropy, entropy / log K).
    1.0 normalised means perfectly balanced; 0 means a single class."""
    counts = np.asarray(counts, dtype=np.float64)
    total = counts.sum()
    if total <= 0 or len(counts) < 2:
        return 0.0, 0.0
    p = counts[counts > 0] / total
    h = float(-(p * np.log(p)).sum()) + 0.0  # + 0.0 turns the -0.0 of a single class into 0.0
    return h, h / float(np.log(len(counts)))


# -- comparisons of picks (two-moons "pick your own", what-if) -------------------------------------
def boundary_points(grid_x, grid_y, prob, level: float = 0.5) -> np.ndarray:
    """Points on the ``prob == level`` contour (the vertices of ``contour_paths``), (M, 2)."""
    paths = contour_paths(grid_x, grid_y, prob, level)
    return np.concatenate(paths) if paths else np.zeros((0, 2))


def distance_to_boundary(points, grid_x, grid_y, prob, level: float = 0.5) -> np.ndarray:
    """Euclidean distance of each point (N, 2) to the model's ``prob == level`` contour; NaN when the
    model draws no boundary on the grid (it predicts one class everywhere)."""
    points = np.asarray(points, np.float64).reshape(-1, 2)
    contour = boundary_points(grid_x, grid_y, prob, level)
    if not len(contour):
        return np.full(len(points), np.nan)
    d2 = ((points[:, None, :] - contour[None, :, :]) ** 2).sum(-1)  # (N, M): N is a batch, M a few hundred
    return np.sqrt(d2.min(1))


def mean_pairwise_distance(points) -> float:
    """Spread of a batch: the mean Euclidean distance over all pairs of its points (NaN below 2 points)."""
    points = np.asarray(points, np.float64)
    points = points.reshape(len(points), -1)
    n = len(points)
    if n < 2:
        return float("nan")
    d = np.sqrt(((points[:, None, :] - points[None, :, :]) ** 2).sum(-1))
    return float(d[np.triu_indices(n, 1)].mean())


def pick_overlap(a, b) -> int:
    """How many dataset indices two batches share."""
    return int(np.intersect1d(np.asarray(a), np.asarray(b)).size)


def pairwise_overlap(picks: dict) -> "pd.DataFrame":
    """Square table (method x method) of shared picks; the diagonal is each batch's size."""
    import pandas as pd

    names = list(picks)
    table = np.array([[pick_overlap(picks[a], picks[b]) for b in names] for a in names], dtype=np.int64)
    return pd.DataFrame(table, index=names, columns=names)


def compare_batches(batches: dict, points, boundaries: dict, reference: str | None = None) -> "pd.DataFrame":
    """One row per batch (name -> dataset indices): size, overlap with ``reference``'s batch, mean distance
    to the batch's boundary and spread (mean pairwise distance), all in the data's units.

    ``points``: (N, 2) coordinates by dataset index; ``boundaries``: name -> (grid_x, grid_y, prob) used for
    that batch's distances (a name without one gets NaN)."""
    import pandas as pd

    points = np.asarray(points, np.float64)
    ref = np.asarray(batches[reference]) if reference is not None and reference in batches else None
    rows = []
    for name, idx in batches.items():
        idx = np.asarray(idx, np.int64)
        bound = boundaries.get(name)
        dist = np.nan
        if bound is not None and len(idx) and np.asarray(bound[2]).size:
            d = distance_to_boundary(points[idx], *bound)
            dist = float(d.mean()) if np.isfinite(d).all() else np.nan
        rows.append({
            "batch": name,
            "size": int(len(idx)),
            "overlap": pick_overlap(idx, ref) if ref is not None else np.nan,
            "mean_distance_to_boundary": dist,
            "spread": mean_pairwise_distance(points[idx]) if len(idx) else np.nan,
        })
    return pd.DataFrame(rows)


# -- per-candidate statistics (discriminator / loss views) -----------------------------------------
def spearman(x, y) -> float:
    """Spearman rank correlation of two equally long arrays; NaN when undefined (fewer than 3 finite
    pairs, or a constant input)."""
    from scipy import stats

    x = np.asarray(x, np.float64)
    y = np.asarray(y, np.float64)
    if x.shape != y.shape:
        raise ValueError(f"x and y must have the same shape, got {x.shape} and {y.shape}")
    ok = np.isfinite(x) & np.isfinite(y)
    if ok.sum() < 3 or np.ptp(x[ok]) == 0 or np.ptp(y[ok]) == 0:
        return float("nan")
    return float(stats.spearmanr(x[ok], y[ok]).statistic)


def selection_cutoff(record) -> float:
    """VAAL-family cut-off: the highest discriminator likelihood among the picks (every candidate below
    it would be picked first). NaN when the record has no likelihoods."""
    lik = record.selected_likelihood
    return float(lik.max()) if lik.size else float("nan")


def labeled_counts_after(record, num_classes: int, pixel_counts: np.ndarray | None = None) -> np.ndarray:
    """Class counts of the labeled set after the stage's picks were labeled. Segmentation: give
    ``pixel_counts`` (N, K), the labeled pixels per class of every training image; the counts are pixels."""
    if pixel_counts is not None:
        picks = np.asarray(pixel_counts, np.int64)[np.asarray(record.selected, np.int64)].sum(0)
    else:
        picks = np.bincount(np.asarray(record.selected_labels, np.int64), minlength=num_classes)
    return np.asarray(record.class_counts, np.int64)[:num_classes] + picks[:num_classes]


# -- learning curves from one session (a single trial) ----------------------------------------------
def curves_from_records(records: dict, baseline: str = "random") -> "pd.DataFrame":
    """The tidy learning-curve frame (``statistics.CURVE_COLUMNS``) for one trial of stepped records: the
    same statistics as a saved multi-trial run (``statistics.learning_curve_frame``), with one trial (so std
    and p-values are NaN, improvement over ``baseline`` is the plain difference where it was run). The
    metric is the records' headline one: accuracy, or mean IoU for segmentation."""
    import pandas as pd

    from .statistics import learning_curve_frame

    columns = ["trial", "method", "stage", "labeled_count", "accuracy", "mean_iou"]
    metrics = pd.DataFrame(
        [{"trial": 0, "method": m, "stage": r.stage, "labeled_count": r.labeled_count, "accuracy": float(r.accuracy),
          "mean_iou": float("nan") if r.mean_iou is None else float(r.mean_iou)} for m, recs in records.items() for r in recs],
        columns=columns,
    )
    return learning_curve_frame(metrics, baseline=baseline)


def pick_scores(record) -> np.ndarray:
    """The value that decided each pick, in pick order: its score (top-k methods) or its gain at its turn
    (core-set, MedAL)."""
    return record.pick_gains


def scores_by_index(record, indices) -> np.ndarray:
    """The method's score for each dataset index in ``indices``; NaN where it was not a candidate."""
    indices = np.asarray(indices, np.int64)
    out = np.full(len(indices), np.nan)
    cand = np.asarray(record.candidates, np.int64)
    if not cand.size or not record.candidate_scores.size:
        return out
    pos = np.clip(np.searchsorted(cand, indices), 0, len(cand) - 1)
    hit = cand[pos] == indices
    out[hit] = np.asarray(record.candidate_scores, np.float64)[pos[hit]]
    return out


def contour_paths(grid_x, grid_y, prob, level: float = 0.5) -> list[np.ndarray]:
    """The ``prob == level`` contour of a grid (rows = y, columns = x) as polylines, by marching squares:
    a list of (M, 2) arrays of (x, y). Used to draw a model's decision boundary as a light line trace."""
    gx = np.asarray(grid_x, np.float64)
    gy = np.asarray(grid_y, np.float64)
    p = np.asarray(prob, np.float64)
    if p.ndim != 2 or p.shape != (len(gy), len(gx)):
        raise ValueError(f"prob must have shape (len(grid_y), len(grid_x)), got {p.shape}")
    inside = p >= level

    def point(edge):
        kind, i, j = edge
        if kind == "h":  # (i, j) -> (i, j + 1)
            a, b = p[i, j], p[i, j + 1]
            t = (level - a) / (b - a) if b != a else 0.5
            return gx[j] + t * (gx[j + 1] - gx[j]), gy[i]
        a, b = p[i, j], p[i + 1, j]  # (i, j) -> (i + 1, j)
        t = (level - a) / (b - a) if b != a else 0.5
        return gx[j], gy[i] + t * (gy[i + 1] - gy[i])

    bottom = inside[:-1, :-1] != inside[:-1, 1:]
    top = inside[1:, :-1] != inside[1:, 1:]
    left = inside[:-1, :-1] != inside[1:, :-1]
    right = inside[:-1, 1:] != inside[1:, 1:]
    segments = []
    for i, j in zip(*np.nonzero(bottom | top | left | right)):
        edges = {"b": ("h", i, j), "t": ("h", i + 1, j), "l": ("v", i, j), "r": ("v", i, j + 1)}
        crossed = [k for k, m in (("b", bottom), ("t", top), ("l", left), ("r", right)) if m[i, j]]
        if len(crossed) == 2:
            segments.append((edges[crossed[0]], edges[crossed[1]]))
        elif len(crossed) == 4:  # saddle: the cell's mean decides which corners connect
            centre_in = p[i:i + 2, j:j + 2].mean() >= level
            if centre_in == inside[i, j]:
                segments += [(edges["b"], edges["r"]), (edges["l"], edges["t"])]
            else:
                segments += [(edges["b"], edges["l"]), (edges["r"], edges["t"])]
    # Chain the segments through their shared edge points.
    touching: dict = {}
    for s, (a, b) in enumerate(segments):
        touching.setdefault(a, []).append(s)
        touching.setdefault(b, []).append(s)
    used = np.zeros(len(segments), bool)
    paths = []
    starts = [e for e, segs in touching.items() if len(segs) == 1] + list(touching)  # open ends first
    for start in starts:
        chain, edge = [start], start
        while True:
            nxt = [s for s in touching[edge] if not used[s]]
            if not nxt:
                break
            used[nxt[0]] = True
            a, b = segments[nxt[0]]
            edge = b if a == edge else a
            chain.append(edge)
        if len(chain) > 1:
            paths.append(np.array([point(e) for e in chain]))
    return paths
