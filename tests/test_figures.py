"""Figure builders (tavaal_core.figures) and the numbers behind the views (tavaal_core.analysis).

Records are built by hand here (no training), so every case is exact and fast."""
import json
import math

import numpy as np
import pandas as pd
import pytest

from tavaal_core import analysis, figures
from tavaal_core.records import StageRecord


def make_record(method="random", stage=0, n=60, labeled=range(10), selected=(10, 11, 12), likelihood=False,
                predicted=False, boundary=True, accuracy=0.8, k=2, seed=0):
    rng = np.random.default_rng(seed)
    labeled = np.asarray(list(labeled), np.int64)
    selected = np.asarray(selected, np.int64)
    candidates = np.setdiff1d(np.arange(n), labeled)
    counts = np.bincount(np.arange(len(labeled)) % k, minlength=k)
    h, hn = analysis.class_count_entropy(counts)
    extra = {}
    if likelihood:
        lik = rng.uniform(0.3, 0.9, len(candidates))
        lik[np.isin(candidates, selected)] = [0.1, 0.2, 0.25][: len(selected)]
        extra.update(candidate_likelihood=lik.astype(np.float32),
                     labeled_likelihood=rng.uniform(0.5, 1.0, len(labeled)).astype(np.float32))
    if predicted:
        extra["candidate_predicted_loss"] = rng.normal(size=len(candidates)).astype(np.float32)
    if boundary:
        gx = np.linspace(-1, 1, 21, dtype=np.float32)
        gy = np.linspace(-1, 1, 21, dtype=np.float32)
        xx, _ = np.meshgrid(gx, gy)
        extra.update(boundary_x=gx, boundary_y=gy, boundary_prob=(1 / (1 + np.exp(-8 * xx))).astype(np.float32))
    return StageRecord(
        stage=stage, method=method, labeled_count=len(labeled), accuracy=accuracy,
        per_class_accuracy=np.full(k, accuracy), class_counts=counts, class_entropy=h, class_entropy_normalized=hn,
        selected=selected, selected_labels=selected % k, score_name="score", higher_is_better=True, labeled=labeled,
        candidates=candidates, candidate_scores=rng.uniform(size=len(candidates)),
        candidate_loss=rng.exponential(size=len(candidates)).astype(np.float32), **extra,
    )


def spec(fig):
    return json.loads(fig.to_json())


def roles(fig, role, method=None):
    return [t for t in fig.data if (t.meta or {}).get("role") == role
            and (method is None or (t.meta or {}).get("method") == method)]


@pytest.fixture
def moons():
    rng = np.random.default_rng(0)
    points = rng.uniform(-1, 1, size=(60, 2))
    labels = (points[:, 0] > 0).astype(np.int64)
    return points, labels


# -- two moons ------------------------------------------------------------------------------------------
def test_moons_small_multiples_one_panel_per_method(moons):
    points, labels = moons
    recs = [make_record(m) for m in ("random", "coreset", "vaal")]
    panels = [figures.moons_panel(r, n_points=len(points)) for r in recs]
    oracle = (recs[0].boundary_x, recs[0].boundary_y, recs[0].boundary_prob)
    fig = figures.moons_small_multiples(points, labels, panels, oracle, ["left", "right"])
    titles = [a.text for a in fig.layout.annotations]
    assert len(titles) == 3 and titles[0].startswith("Random") and "acc 80.0%" in titles[0]
    for m in ("random", "coreset", "vaal"):
        picks = roles(fig, "picks", m)
        assert len(picks) == 1 and len(picks[0].x) == 3
        assert len(roles(fig, "boundary", m)) == 1
        assert roles(fig, "oracle", m)[0].line.dash == "dash"
    # each legend entry once
    names = [t.name for t in fig.data if t.showlegend]
    assert len(names) == len(set(names))
    # the three panels share their axes
    assert fig.layout.xaxis2.matches == "x" or fig.layout.xaxis2.matches is None
    assert list(fig.layout.xaxis.range) == pytest.approx([-1, 1])


def test_moons_panel_without_boundary_draws_no_line(moons):
    points, labels = moons
    rec = make_record()
    rec.boundary_prob = np.zeros_like(rec.boundary_prob)  # one class everywhere: nothing to draw
    fig = figures.moons_small_multiples(points, labels, [figures.moons_panel(rec, n_points=60)])
    assert not roles(fig, "boundary")


def test_moons_hover_names_index_class_and_score(moons):
    points, labels = moons
    rec = make_record()
    fig = figures.moons_small_multiples(points, labels, [figures.moons_panel(rec, n_points=60)], class_names=["L", "R"])
    picks = roles(fig, "picks")[0]
    assert [int(c[0]) for c in picks.customdata] == [10, 11, 12]
    expected = analysis.scores_by_index(rec, [10, 11, 12])
    assert [c[1] for c in picks.customdata] == pytest.approx(expected)
    assert "index" in picks.hovertemplate and "score" in picks.hovertemplate
    labeled = roles(fig, "labeled")[0]
    cls = "L" if labels[int(labeled.customdata[0][0])] == 0 else "R"
    assert f"class {cls}" in labeled.hovertemplate


def test_pick_chart_rings_user_picks(moons):
    points, labels = moons
    panel = figures.moons_panel(make_record(), n_points=60)
    fig = figures.moons_pick_chart(points, labels, panel, user_picks=[20, 21])
    user = roles(fig, "user")
    assert len(user) == 1 and len(user[0].x) == 2
    assert fig.layout.dragmode == "select"


# -- feature map ------------------------------------------------------------------------------------------
def test_feature_map_marks_labeled_unlabeled_picked():
    idx = np.arange(40)
    labels = np.arange(40) % 3
    coords = np.random.default_rng(0).normal(size=(40, 2))
    fig = figures.feature_map(coords, idx, labels, ["a", "b", "c"], labeled=range(5), selected=[30, 31])
    assert sum(len(t.x) for t in roles(fig, "labeled")) == 5
    assert sum(len(t.x) for t in roles(fig, "unlabeled")) == 35
    assert len(roles(fig, "picks")[0].x) == 2


# -- discriminator ------------------------------------------------------------------------------------------
def test_discriminator_histograms_three_pools_per_vaal_method_shared_axes():
    recs = {"random": make_record("random"), "vaal": make_record("vaal", likelihood=True),
            "tavaal": make_record("tavaal", likelihood=True, seed=1)}
    fig = figures.discriminator_histograms(recs)
    hist = [t for t in fig.data if t.type == "histogram"]
    assert len(hist) == 6  # random has no discriminator: skipped
    assert {(t.meta["method"], t.meta["role"]) for t in hist} == {
        (m, r) for m in ("vaal", "tavaal") for r in ("labeled", "unlabeled", "picks")}
    picks = [t for t in hist if t.meta["role"] == "picks" and t.meta["method"] == "vaal"][0]
    assert len(picks.x) == 3
    unlabeled = [t for t in hist if t.meta["role"] == "unlabeled" and t.meta["method"] == "vaal"][0]
    assert len(unlabeled.x) == len(recs["vaal"].candidates) - 3
    # cut-off line at the highest likelihood among the picks, one per panel
    lines = [s for s in fig.layout.shapes if s.type == "line"]
    assert len(lines) == 2 and lines[0].x0 == pytest.approx(0.25)
    assert list(fig.layout.xaxis.range) == [0, 1] and list(fig.layout.xaxis2.range) == [0, 1]
    assert fig.layout.yaxis2.matches == "y"


def test_selection_cutoff_and_nan_without_discriminator():
    assert analysis.selection_cutoff(make_record(likelihood=True)) == pytest.approx(0.25)
    assert math.isnan(analysis.selection_cutoff(make_record()))


# -- loss views ----------------------------------------------------------------------------------------------
def test_loss_vs_likelihood_title_holds_spearman():
    rec = make_record("tavaal", likelihood=True, predicted=True)
    fig = figures.loss_vs_likelihood({"tavaal": rec, "random": make_record()}, labels=np.arange(60) % 2)
    rho = analysis.spearman(rec.candidate_likelihood, rec.candidate_loss)
    assert [a.text for a in fig.layout.annotations] == [f"TA-VAAL: Spearman ρ = {rho:+.2f}"]
    assert len(roles(fig, "picks", "tavaal")[0].x) == 3
    fig = figures.predicted_vs_real_loss({"tavaal": rec}, labels=np.arange(60) % 2)
    rho = analysis.spearman(rec.candidate_loss, rec.candidate_predicted_loss)
    assert f"{rho:+.2f}" in fig.layout.annotations[0].text


def test_spearman():
    x = np.arange(10.0)
    assert analysis.spearman(x, x ** 3) == pytest.approx(1.0)
    assert analysis.spearman(x, -x) == pytest.approx(-1.0)
    assert math.isnan(analysis.spearman(x, np.ones(10)))
    assert math.isnan(analysis.spearman([1, 2], [2, 1]))
    with pytest.raises(ValueError):
        analysis.spearman([1, 2, 3], [1, 2])


# -- class balance ----------------------------------------------------------------------------------------
def test_class_entropy_bars_one_series_per_method():
    records = {m: [make_record(m, stage=s) for s in range(3)] for m in ("random", "tavaal")}
    fig = figures.class_entropy_bars(records)
    assert [t.meta["method"] for t in fig.data] == ["random", "tavaal"]
    assert list(fig.data[0].x) == [0, 1, 2]
    assert fig.data[0].y[0] == pytest.approx(records["random"][0].class_entropy_normalized)


def test_class_counts_bars_pool_beside_labeled_sets():
    fig = figures.class_counts_bars({"vaal": [3, 1]}, pool_counts=[500, 50], class_names=["up", "down"])
    pool, vaal = fig.data
    assert pool.meta["role"] == "pool" and list(pool.y) == pytest.approx([100 * 500 / 550, 100 * 50 / 550])
    assert list(vaal.y) == pytest.approx([75, 25]) and list(vaal.customdata) == [3, 1]


def test_labeled_counts_after_adds_the_picks():
    rec = make_record(k=2)  # 10 labeled: 5 + 5; picks 10, 11, 12 -> labels 0, 1, 0
    assert list(analysis.labeled_counts_after(rec, 2)) == [7, 6]


# -- learning curves --------------------------------------------------------------------------------------
def curves_frame(trials=3, p=0.01):
    rows = []
    for m, base in (("random", 0.6), ("tavaal", 0.65)):
        for s in range(3):
            rows.append(dict(method=m, stage=s, labeled_count=20 + 10 * s, metric="accuracy",
                             metric_mean=base + 0.05 * s, metric_std=0.02, trials=trials,
                             improvement_mean=0.0 if m == "random" else 0.05,
                             relative_improvement_mean=0.0 if m == "random" else 0.05 / (0.6 + 0.05 * s),
                             p_value_vs_random=np.nan if m == "random" else p))
    return pd.DataFrame(rows)


def test_learning_curves_contract_bands_improvement_and_pvalues():
    fig = figures.learning_curves(curves_frame())
    means = roles(fig, "mean")
    assert [t.meta["method"] for t in means] == ["random", "tavaal"]
    assert list(means[1].y) == pytest.approx([65, 70, 75])
    assert len(roles(fig, "band")) == 2  # trials > 1: a std band per method
    assert len(roles(fig, "improvement")) == 2
    stars = roles(fig, "significant")
    assert len(stars) == 1 and stars[0].meta["method"] == "tavaal" and len(stars[0].x) == 3
    assert "p vs random" in means[1].customdata[0][3]
    assert fig.layout.annotations[0].text == "Test accuracy" and "percentage points" in fig.layout.annotations[1].text


def test_learning_curves_of_mean_iou_show_relative_improvement_like_figure_5():
    curves = curves_frame().assign(metric="mean_iou")
    fig = figures.learning_curves(curves)
    assert fig.layout.annotations[0].text == "Test mean IoU"
    assert "Relative improvement" in fig.layout.annotations[1].text
    tavaal = [t for t in roles(fig, "improvement") if t.meta["method"] == "tavaal"][0]
    assert list(tavaal.y) == pytest.approx([100 * 0.05 / (0.6 + 0.05 * s) for s in range(3)])
    points = figures.learning_curves(curves, relative=False)
    assert list([t for t in roles(points, "improvement") if t.meta["method"] == "tavaal"][0].y) == pytest.approx([5, 5, 5])


def test_learning_curves_single_trial_has_no_band_and_optional_panel():
    fig = figures.learning_curves(curves_frame(trials=1, p=np.nan), improvement=False)
    assert not roles(fig, "band") and not roles(fig, "improvement") and not roles(fig, "significant")
    with pytest.raises(ValueError, match="lacks columns"):
        figures.learning_curves(curves_frame().drop(columns=["trials"]))


def test_curves_from_records_single_trial():
    records = {"random": [make_record("random", s, accuracy=0.5 + 0.1 * s) for s in range(2)],
               "coreset": [make_record("coreset", s, accuracy=0.6 + 0.1 * s) for s in range(2)]}
    curves = figures.curves_from_records(records)
    assert tuple(curves.columns) == figures.CURVE_COLUMNS
    row = curves[(curves.method == "coreset") & (curves.stage == 1)].iloc[0]
    assert row.metric_mean == pytest.approx(0.7) and row.improvement_mean == pytest.approx(0.1)
    assert row.trials == 1 and math.isnan(row.metric_std) and math.isnan(row.p_value_vs_random)
    no_random = figures.curves_from_records({"coreset": records["coreset"]})
    assert no_random.improvement_mean.isna().all()
    spec(figures.learning_curves(curves))  # serialises


# -- what-if --------------------------------------------------------------------------------------------
def test_pairwise_overlap_and_heatmap():
    table = analysis.pairwise_overlap({"a": [1, 2, 3], "b": [2, 3, 4], "c": [9]})
    assert table.loc["a", "b"] == 2 and table.loc["a", "a"] == 3 and table.loc["a", "c"] == 0
    fig = figures.overlap_heatmap(table)
    assert fig.data[0].z[0][1] == pytest.approx(2 / 3)


# -- comparisons of batches -----------------------------------------------------------------------------------
def test_contour_paths_trace_a_circle():
    g = np.linspace(-2, 2, 81)
    xx, yy = np.meshgrid(g, g)
    prob = 1 / (1 + np.exp(-4 * (xx ** 2 + yy ** 2 - 1)))
    paths = analysis.contour_paths(g, g, prob)
    assert len(paths) == 1
    r = np.hypot(paths[0][:, 0], paths[0][:, 1])
    assert np.abs(r - 1).max() < 0.01
    assert np.allclose(paths[0][0], paths[0][-1])  # closed
    assert analysis.contour_paths(g, g, np.zeros_like(prob)) == []


def test_distance_to_boundary_and_spread():
    g = np.linspace(-1, 1, 41)
    xx, _ = np.meshgrid(g, g)
    prob = 1 / (1 + np.exp(-10 * xx))  # boundary: x = 0
    d = analysis.distance_to_boundary([[0.5, 0.0], [-0.25, 0.3]], g, g, prob)
    assert d == pytest.approx([0.5, 0.25], abs=1e-6)
    assert np.isnan(analysis.distance_to_boundary([[0, 0]], g, g, np.zeros_like(prob))).all()
    assert analysis.mean_pairwise_distance([[0, 0], [3, 4]]) == pytest.approx(5)
    assert math.isnan(analysis.mean_pairwise_distance([[0, 0]]))


def test_compare_batches_table():
    g = np.linspace(-1, 1, 41)
    xx, _ = np.meshgrid(g, g)
    bound = (g, g, 1 / (1 + np.exp(-10 * xx)))
    points = np.array([[0.1, 0], [0.2, 0], [0.9, 0], [-0.5, 0]])
    table = analysis.compare_batches({"you": [0, 1], "m": [1, 2]}, points, {"you": bound, "m": bound}, reference="you")
    you, m = table.to_dict("records")
    assert you["size"] == 2 and you["overlap"] == 2 and you["mean_distance_to_boundary"] == pytest.approx(0.15)
    assert m["overlap"] == 1 and m["spread"] == pytest.approx(0.7)


def test_pick_scores_follow_pick_order():
    rec = make_record(selected=(12, 10))
    pos = np.searchsorted(rec.candidates, [12, 10])
    assert list(analysis.pick_scores(rec)) == pytest.approx(list(rec.candidate_scores[pos]))
    assert np.isnan(analysis.scores_by_index(rec, [0])).all()  # labeled: not a candidate


def test_timings_bars_stack_phases_per_method():
    recs = {"random": make_record("random"), "vaal": make_record("vaal")}
    recs["random"].timings = {"task training": 0.1, "scoring": 0.01}
    recs["vaal"].timings = {"task training": 0.1, "VAE / discriminator": 0.5, "scoring": 0.01}
    fig = figures.timings_bars(recs)
    phases = [t.meta["phase"] for t in fig.data]
    assert phases == ["task training", "scoring", "VAE / discriminator"]
    assert list(fig.data[2].x) == [0.0, 0.5]
