"""Claim metrics on hand-made data where the answer is known: percentiles, nearness to a boundary, spread,
coverage, classes, score and loss distributions, overlaps, paired accuracy tests, and the verdict rules."""
import math

import numpy as np
import pytest
from scipy import stats

from tavaal_core import claims as cm
from tavaal_core.records import StageRecord


def test_percentile_in_is_the_mid_rank_among_the_reference():
    ref = [1, 2, 3, 4]
    assert cm.percentile_in([0, 5], ref).tolist() == [0.0, 1.0]
    assert cm.percentile_in([2.5], ref).tolist() == [0.5]
    assert cm.percentile_in([2], ref).tolist() == [0.375]  # one below (0.25) + half of the tie (0.125)
    # a random draw from the reference scores 0.5 on average
    rng = np.random.default_rng(0)
    values = rng.normal(size=500)
    assert cm.percentile_in(values, values).mean() == pytest.approx(0.5)
    assert np.isnan(cm.percentile_in([1.0], [])).all()


def _vertical_boundary_grid():
    """P(class 1) = 1 right of x = 0: the boundary is the line x = 0."""
    gx = np.linspace(-2, 2, 41)
    gy = np.linspace(-2, 2, 41)
    prob = np.tile((gx > 0).astype(float), (len(gy), 1))
    return gx, gy, prob


def test_boundary_distance_rank_is_low_for_the_points_nearest_the_boundary():
    grid = _vertical_boundary_grid()
    xs = np.array([-1.5, -1.0, -0.5, -0.1, 0.15, 0.6, 1.1, 1.6])
    candidates = np.stack([xs, np.zeros_like(xs)], 1)
    nearest = candidates[[3, 4]]  # |x| = 0.1 and 0.15
    farthest = candidates[[0, 7]]
    assert cm.boundary_distance_rank(nearest, candidates, *grid) == pytest.approx(0.125)  # ranks 1/16, 3/16
    assert cm.boundary_distance_rank(farthest, candidates, *grid) == pytest.approx(0.875)
    # no boundary on the grid (one class everywhere): undefined
    gx, gy, _ = grid
    assert math.isnan(cm.boundary_distance_rank(nearest, candidates, gx, gy, np.zeros((41, 41))))


def test_spread_ratio_below_one_for_a_cluster_and_above_for_the_extremes():
    rng = np.random.default_rng(1)
    candidates = rng.uniform(-1, 1, size=(200, 2))
    cluster = candidates[np.argsort(np.linalg.norm(candidates - [0.5, 0.5], axis=1))[:10]]
    corners = candidates[np.argsort(-np.linalg.norm(candidates, axis=1))[:10]]
    assert cm.spread_ratio(cluster, candidates) < 0.3
    assert cm.spread_ratio(corners, candidates) > 1.3
    assert cm.spread_ratio(candidates, candidates) == pytest.approx(1.0)
    assert cm.mean_pairwise_distance([[0, 0], [3, 4]]) == pytest.approx(5.0)
    assert math.isnan(cm.mean_pairwise_distance([[0, 0]]))


def test_regions_covered_counts_the_pool_regions_holding_a_pick():
    centers = np.array([[0, 0], [10, 0], [0, 10], [10, 10]], float)
    rng = np.random.default_rng(2)
    points = np.concatenate([c + rng.normal(scale=0.3, size=(25, 2)) for c in centers])
    regions = cm.pool_regions(points, 4)
    one_per_cluster = [0, 25, 50, 75]
    all_in_one = [0, 1, 2, 3]
    assert cm.regions_covered(regions[one_per_cluster], 4) == 1.0
    assert cm.regions_covered(regions[all_in_one], 4) == 0.25
    assert np.array_equal(regions, cm.pool_regions(points, 4))  # fixed seed: the same regions every time


def test_minority_classes_and_share():
    assert cm.minority_classes([500, 50]).tolist() == [1]
    assert cm.minority_classes([10, 10, 10]).tolist() == []
    assert cm.minority_classes([5, 50, 5, 50]).tolist() == [0, 2]
    assert cm.minority_share([1, 1, 0, 0], [1]) == 0.5
    assert cm.minority_share([0, 0], [1]) == 0.0
    assert math.isnan(cm.minority_share([], [1]))


def _record(**kw):
    base = dict(stage=0, method="m", labeled_count=4, accuracy=0.5, per_class_accuracy=np.zeros(2),
                class_counts=np.array([4, 0]), class_entropy=0.0, class_entropy_normalized=0.0,
                selected=np.array([5, 6]), selected_labels=np.array([1, 1]), score_name="s", higher_is_better=True,
                labeled=np.array([0, 1, 2, 3]), candidates=np.array([4, 5, 6, 7]),
                candidate_scores=np.zeros(4), candidate_loss=np.array([0.1, 2.0, 3.0, 0.2]))
    base.update(kw)
    return StageRecord(**base)


def test_labeled_entropy_counts_the_picks():
    # 4 of class 0 labeled, 2 picks of class 1 -> counts (4, 2): H = -(2/3 ln 2/3 + 1/3 ln 1/3) / ln 2
    expected = -(2 / 3 * np.log(2 / 3) + 1 / 3 * np.log(1 / 3)) / np.log(2)
    assert cm.labeled_entropy(_record(), 2) == pytest.approx(expected)
    balanced = _record(class_counts=np.array([2, 0]), selected_labels=np.array([1, 1]))
    assert cm.labeled_entropy(balanced, 2) == pytest.approx(1.0)


def test_value_spread_is_the_5_to_95_percentile_range():
    assert cm.value_spread(np.linspace(0, 1, 101)) == pytest.approx(0.9)
    assert cm.value_spread(np.full(50, 0.3)) == 0.0  # concentrated: VAAL's Fig. 7b
    assert math.isnan(cm.value_spread([]))


def test_loss_rank_and_its_spread():
    candidates = np.arange(100, dtype=float)
    hardest = candidates[-10:]
    assert cm.loss_rank(hardest, candidates) == pytest.approx(0.95)  # percentiles 0.905 ... 0.995
    assert cm.loss_rank(candidates[:10], candidates) == pytest.approx(0.05)
    assert cm.loss_rank_spread(hardest, candidates) == pytest.approx(0.045)  # a narrow band
    wide = candidates[::10]
    assert cm.loss_rank_spread(wide, candidates) == pytest.approx(0.45)


def test_pick_overlap_fraction():
    assert cm.pick_overlap_fraction([1, 2, 3, 4], [3, 4, 5, 6]) == 0.5
    assert cm.pick_overlap_fraction([1, 2], [1, 2]) == 1.0
    assert math.isnan(cm.pick_overlap_fraction([], [1]))


def test_accuracy_differences_match_scipys_paired_test():
    a = np.array([[0.5, 0.70], [0.5, 0.72], [0.5, 0.69], [0.5, 0.75]])
    b = np.array([[0.5, 0.60], [0.5, 0.66], [0.5, 0.64], [0.5, 0.61]])
    rows = cm.accuracy_differences(a, b)
    assert rows[0]["mean_difference"] == 0 and math.isnan(rows[0]["p_value"])  # identical: undefined
    assert rows[1]["mean_difference"] == pytest.approx(0.0875)
    assert rows[1]["seeds_a_better"] == 4
    assert rows[1]["p_value"] == pytest.approx(stats.ttest_rel(a[:, 1], b[:, 1]).pvalue)
    with pytest.raises(ValueError):
        cm.accuracy_differences(a, b[:2])


def test_mean_ci_is_the_student_t_interval():
    values = [0.2, 0.4, 0.5, 0.3]
    mean, low, high = cm.mean_ci(values)
    lo, hi = stats.t.interval(0.95, 3, loc=np.mean(values), scale=stats.sem(values))
    assert (mean, low, high) == pytest.approx((0.35, lo, hi))
    assert math.isnan(cm.mean_ci([0.3])[1])


@pytest.mark.parametrize("held, seeds, p, diff, expected", [
    (10, 10, 0.001, 0.2, cm.HOLDS),
    (8, 10, 0.01, 0.1, cm.HOLDS),
    (8, 10, 0.2, 0.1, cm.MIXED),  # most seeds, but not significant
    (7, 10, 0.01, 0.1, cm.MIXED),
    (5, 10, 0.01, 0.1, cm.FAILS),  # a coin
    (9, 10, 0.01, -0.1, cm.FAILS),  # mean the other way
    (0, 10, 0.001, -0.3, cm.FAILS),
])
def test_ordering_verdict(held, seeds, p, diff, expected):
    assert cm.ordering_verdict(held, seeds, p, diff) == expected


def test_no_difference_and_combined_verdicts():
    assert cm.no_difference_verdict([0.3, 0.8, float("nan")]) == cm.HOLDS
    assert cm.no_difference_verdict([0.01, 0.8, 0.5]) == cm.MIXED
    assert cm.no_difference_verdict([0.01, 0.02, 0.5]) == cm.FAILS
    assert cm.combine_verdicts([cm.HOLDS, cm.HOLDS]) == cm.HOLDS
    assert cm.combine_verdicts([cm.FAILS, cm.FAILS]) == cm.FAILS
    assert cm.combine_verdicts([cm.HOLDS, cm.FAILS]) == cm.MIXED


def test_record_metrics_on_a_hand_made_record():
    labels = np.array([0, 0, 0, 0, 1, 1, 1, 0])
    points = np.array([[-1, 0], [-1, 1], [-1, -1], [-2, 0], [0.1, 0], [0.2, 0.5], [1.5, 0], [-1.5, 0.5]], float)
    facts = cm.DatasetFacts(labels, points, _vertical_boundary_grid(), num_classes=2)
    record = _record(candidate_likelihood=np.array([0.1, 0.2, 0.3, 0.4]))
    out = cm.record_metrics(record, facts)
    assert set(out) >= {"accuracy", "class_entropy", "minority_share", "boundary_rank", "spread", "coverage",
                        "d_spread", "loss_rank", "loss_rank_iqr"}
    assert out["minority_share"] == 1.0  # picks 5, 6 are class 1; class 1 is the minority (3 vs 5)
    # the grid's contour lies at x = 0.05 (between the grid columns 0 and 0.1): candidates 4..7 are 0.05, 0.15,
    # 1.45 and 1.55 from it; the picks 5 and 6 rank (1 + 0.5) / 4 and (2 + 0.5) / 4
    assert out["boundary_rank"] == pytest.approx((0.375 + 0.625) / 2)
    assert out["loss_rank"] == pytest.approx((0.625 + 0.875) / 2)  # losses 2.0 and 3.0: the two highest
    assert out["d_spread"] == pytest.approx(0.27)
