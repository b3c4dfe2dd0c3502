"""Aggregates over trials on hand-made numbers: mean / std, improvement over random paired by trial, paired
t-test p-values equal to scipy's, NaN where the test is undefined."""
import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from tavaal_core import statistics as st

# accuracy[method][trial] per stage (2 stages, 3 trials)
ACC = {
    "random": [[0.50, 0.52, 0.48], [0.60, 0.61, 0.58]],
    "tavaal": [[0.50, 0.52, 0.48], [0.66, 0.70, 0.61]],
    "coreset": [[0.50, 0.52, 0.48], [0.62, 0.60, 0.63]],
}


def frame(acc=ACC, labeled=(100, 150)):
    rows = []
    for method, per_stage in acc.items():
        for stage, values in enumerate(per_stage):
            for trial, a in enumerate(values):
                if a is None:
                    continue
                rows.append({"trial": trial, "method": method, "stage": stage, "labeled_count": labeled[stage],
                             "accuracy": a})
    return pd.DataFrame(rows)


def test_curve_frame_columns_match_the_figure_contract():
    from tavaal_core import figures

    curves = st.learning_curve_frame(frame())
    assert tuple(curves.columns) == st.CURVE_COLUMNS == tuple(figures.CURVE_COLUMNS)
    assert list(dict.fromkeys(curves["method"])) == ["random", "tavaal", "coreset"]  # first-seen order
    fig = figures.learning_curves(curves)
    roles = {t.meta["role"] for t in fig.data if t.meta}
    assert {"band", "mean", "improvement"} <= roles


def test_mean_std_and_improvement_by_hand():
    curves = st.learning_curve_frame(frame()).set_index(["method", "stage"])
    row = curves.loc[("tavaal", 1)]
    assert row.metric_mean == pytest.approx(np.mean([0.66, 0.70, 0.61]))
    assert row.metric_std == pytest.approx(np.std([0.66, 0.70, 0.61], ddof=1))
    assert row.trials == 3 and row.labeled_count == 150
    assert row.improvement_mean == pytest.approx(np.mean([0.06, 0.09, 0.03]))
    assert row.p_value_vs_random == pytest.approx(stats.ttest_rel([0.66, 0.70, 0.61], [0.60, 0.61, 0.58]).pvalue)
    assert curves.loc[("random", 1)].improvement_mean == 0.0
    assert math.isnan(curves.loc[("random", 1)].p_value_vs_random)
    # stage 0: every method has the same initial labels -> identical accuracies -> zero variance -> NaN
    assert curves.loc[("tavaal", 0)].improvement_mean == pytest.approx(0.0)
    assert math.isnan(curves.loc[("tavaal", 0)].p_value_vs_random)


def test_paired_t_test_matches_scipy_and_is_nan_when_undefined():
    a, b = [0.71, 0.74, 0.69, 0.80], [0.70, 0.70, 0.66, 0.75]
    assert st.paired_t_test(a, b) == pytest.approx(stats.ttest_rel(a, b).pvalue)
    assert math.isnan(st.paired_t_test([0.7], [0.6]))  # one trial
    assert math.isnan(st.paired_t_test([], []))
    assert math.isnan(st.paired_t_test([0.7, 0.8], [0.7, 0.8]))  # identical
    assert math.isnan(st.paired_t_test([0.7, 0.8], [0.6, 0.7]))  # constant shift: zero variance
    assert math.isnan(st.paired_t_test([0.7, float("nan")], [0.6, 0.5]))
    with pytest.raises(ValueError):
        st.paired_t_test([1, 2], [1, 2, 3])


def test_pairing_uses_only_trials_both_methods_have():
    acc = {"random": [[0.5, 0.6, 0.55]], "entropy": [[0.6, None, 0.58]]}
    curves = st.learning_curve_frame(frame(acc, labeled=(100,))).set_index("method")
    assert curves.loc["entropy", "trials"] == 2
    assert curves.loc["entropy", "improvement_mean"] == pytest.approx(np.mean([0.1, 0.03]))
    assert curves.loc["entropy", "p_value_vs_random"] == pytest.approx(stats.ttest_rel([0.6, 0.58], [0.5, 0.55]).pvalue)


def test_single_trial_has_nan_std_and_p_and_no_random_means_nan_improvement():
    one = {"random": [[0.5], [0.6]], "lloss": [[0.5], [0.65]]}
    curves = st.learning_curve_frame(frame(one))
    assert curves["metric_std"].isna().all() and curves["p_value_vs_random"].isna().all()
    assert curves.set_index(["method", "stage"]).loc[("lloss", 1)].improvement_mean == pytest.approx(0.05)
    no_random = st.learning_curve_frame(frame({"lloss": [[0.5, 0.6], [0.7, 0.8]]}))
    assert no_random["improvement_mean"].isna().all() and no_random["p_value_vs_random"].isna().all()
    empty = st.learning_curve_frame(frame({}).reindex(columns=["trial", "method", "stage", "labeled_count", "accuracy"]))
    assert list(empty.columns) == list(st.CURVE_COLUMNS) and empty.empty


def test_pairwise_tests_between_any_two_methods():
    tests = st.pairwise_tests(frame(), stage=1)
    assert len(tests) == 3  # random-tavaal, random-coreset, tavaal-coreset
    row = tests[(tests.method_a == "tavaal") & (tests.method_b == "coreset")].iloc[0]
    assert row.p_value == pytest.approx(stats.ttest_rel([0.66, 0.70, 0.61], [0.62, 0.60, 0.63]).pvalue)
    assert row.mean_difference == pytest.approx(np.mean([0.04, 0.10, -0.02]))
    assert row.trials == 3 and row.labeled_count == 150
    assert len(st.pairwise_tests(frame())) == 6  # both stages
    matrix = st.p_value_matrix(frame(), 1)
    assert matrix.loc["coreset", "tavaal"] == matrix.loc["tavaal", "coreset"] == pytest.approx(row.p_value)
    assert math.isnan(matrix.loc["tavaal", "tavaal"])


def test_significant_cases_name_the_better_method():
    acc = {"random": [[0.50, 0.52, 0.48, 0.51]], "tavaal": [[0.60, 0.63, 0.57, 0.615]]}
    sig = st.significant_cases(frame(acc, labeled=(100,)))
    assert len(sig) == 1
    assert sig.iloc[0].better == "tavaal" and sig.iloc[0].worse == "random" and sig.iloc[0].p_value < 0.05
    assert sig.iloc[0].mean_difference > 0


def test_final_summary_is_the_last_stage():
    final = st.final_summary(frame(), methods=["coreset", "random", "tavaal"])
    assert final["stage"].unique().tolist() == [1]
    assert final["method"].tolist() == ["coreset", "random", "tavaal"]


def test_missing_columns_are_refused():
    with pytest.raises(ValueError, match="accuracy"):
        st.learning_curve_frame(pd.DataFrame({"trial": [0], "method": ["a"], "stage": [0], "labeled_count": [1]}))


def test_segmentation_frames_use_mean_iou_and_relative_improvement():
    rows = []
    for trial, (r, t) in enumerate([(0.40, 0.44), (0.50, 0.52)]):
        for method, miou in (("random", r), ("tavaal", t)):
            rows.append(dict(trial=trial, method=method, stage=0, labeled_count=200, accuracy=0.9, mean_iou=miou))
    frame = pd.DataFrame(rows)
    assert st.headline_metric(frame) == "mean_iou"
    row = st.learning_curve_frame(frame).set_index("method").loc["tavaal"]
    assert row.metric == "mean_iou" and row.metric_mean == pytest.approx(0.48)
    assert row.improvement_mean == pytest.approx(0.03)
    assert row.relative_improvement_mean == pytest.approx((0.04 / 0.40 + 0.02 / 0.50) / 2)
    # a classification frame (mean_iou all NaN) keeps accuracy
    assert st.headline_metric(frame.assign(mean_iou=np.nan)) == "accuracy"
    assert "mean IoU %" in st.curve_table(st.learning_curve_frame(frame)).columns
