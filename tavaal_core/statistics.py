"""Aggregates over trials: learning curves, improvement over random, paired t-tests.

Input: a metrics frame with one row per (trial, method, stage) and at least the columns ``trial``,
``method``, ``stage``, ``labeled_count`` and the metric: ``accuracy`` for classification, ``mean_iou``
for segmentation (``store.load_metrics`` gives one; :func:`headline_metric` says which a frame is
about). Trials share their seed across methods (trial t starts every method from the same initial
labels), so two methods' values at a stage are paired by trial; improvements and t-tests use only the
trials both have.

- Mean and standard deviation of the metric per (method, stage). ``std`` is the sample standard
  deviation (ddof = 1) and NaN with a single trial.
- Improvement over random per stage (TA-VAAL Figures 3 and 4): mean over trials of
  ``metric(method, trial) - metric(random, trial)``; relative improvement (TA-VAAL Figure 5, mean IoU
  on Cityscapes): mean over trials of ``(metric(method, trial) - metric(random, trial)) / metric(random, trial)``.
- Paired t-test p-values (``scipy.stats.ttest_rel``, two-sided) per stage against random and between
  any two methods (Godwin et al. 2022 reports p < 0.05 cases). NaN when fewer than 2 paired trials or when the
  paired differences have zero variance (the test is undefined there).

A sweep's metrics carry ``setting`` (index) and ``setting_label``: curves and tests between methods are
then computed within each setting (a ``setting`` and ``setting_label`` column lead the result), and
:func:`setting_tests` compares the settings of each method. Trial t uses the same seed under every setting,
so settings are paired by trial as methods are.
"""
from __future__ import annotations

import itertools
import math
import warnings

import numpy as np
import pandas as pd

BASELINE = "random"
# The headline metrics a metrics frame can hold, with how views name them.
METRIC_LABELS = {"accuracy": "test accuracy", "mean_iou": "test mean IoU"}
CURVE_COLUMNS = ("method", "stage", "labeled_count", "metric", "metric_mean", "metric_std", "trials",
                 "improvement_mean", "relative_improvement_mean", "p_value_vs_random")
PAIRWISE_COLUMNS = ("stage", "labeled_count", "method_a", "method_b", "trials", "mean_difference", "p_value")
_REQUIRED = ("trial", "method", "stage", "labeled_count")


def headline_metric(metrics: pd.DataFrame) -> str:
    """"mean_iou" when the frame holds segmentation results (a finite ``mean_iou``), else "accuracy"."""
    if "mean_iou" in metrics.columns and pd.to_numeric(metrics["mean_iou"], errors="coerce").notna().any():
        return "mean_iou"
    return "accuracy"


def paired_t_test(a, b) -> float:
    """Two-sided paired t-test p-value of ``a`` vs ``b`` (same trials, same order).

    NaN when fewer than two pairs, when any value is not finite, or when the differences have zero
    variance up to rounding (then ``ttest_rel`` is undefined: NaN for identical samples, 0 for a
    constant shift)."""
    from scipy import stats

    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"paired samples must be 1-d and of equal length, got {a.shape} and {b.shape}")
    if len(a) < 2 or not (np.isfinite(a).all() and np.isfinite(b).all()):
        return math.nan
    diff = a - b
    # zero variance up to rounding (accuracies are multiples of 1 / test size; 0.7 - 0.6 != 0.8 - 0.7 in floats)
    if np.ptp(diff) <= 1e-12 * max(1.0, float(np.abs(diff).max())):
        return math.nan
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        p = float(stats.ttest_rel(a, b).pvalue)
    return p if math.isfinite(p) else math.nan


def _check(metrics: pd.DataFrame, metric: str | None = None) -> str:
    """Check the columns; return the metric to use (``metric``, or the frame's :func:`headline_metric`)."""
    metric = metric or headline_metric(metrics)
    if metric not in METRIC_LABELS:
        raise ValueError(f"unknown metric {metric!r}; choose one of: {', '.join(METRIC_LABELS)}")
    missing = [c for c in (*_REQUIRED, metric) if c not in metrics.columns]
    if missing:
        raise ValueError(f"metrics frame lacks the columns {', '.join(missing)}")
    return metric


SETTING_TEST_COLUMNS = ("method", "stage", "labeled_count", "setting_a", "setting_b", "trials", "mean_difference",
                        "p_value")


def has_settings(metrics: pd.DataFrame) -> bool:
    """Whether ``metrics`` come from a sweep (a ``setting`` column with values)."""
    return "setting" in metrics.columns and bool(metrics["setting"].notna().any())


def setting_groups(metrics: pd.DataFrame):
    """(setting index, label, rows) per sweep setting in index order; one ``(None, "", metrics)`` without a sweep."""
    if not has_settings(metrics):
        yield None, "", metrics
        return
    for setting, rows in metrics.groupby("setting", sort=True):
        label = str(rows["setting_label"].iloc[0]) if "setting_label" in rows.columns else f"setting {setting}"
        yield int(setting), label, rows


def _per_setting(metrics: pd.DataFrame, compute, columns) -> pd.DataFrame:
    """``compute(rows without the setting column)`` per setting, with ``setting, setting_label`` in front."""
    frames = []
    for setting, label, rows in setting_groups(metrics):
        frame = compute(rows.drop(columns=["setting"]))
        frame.insert(0, "setting_label", label)
        frame.insert(0, "setting", setting)
        frames.append(frame)
    if not frames:
        return pd.DataFrame(columns=["setting", "setting_label", *columns])
    return pd.concat(frames, ignore_index=True)


def _method_order(metrics: pd.DataFrame, methods=None) -> list[str]:
    present = list(dict.fromkeys(metrics["method"].tolist()))
    if methods is None:
        return present
    return [m for m in methods if m in present] + [m for m in present if m not in methods]


def metric_table(metrics: pd.DataFrame, stage: int, metric: str | None = None) -> pd.DataFrame:
    """The metric (default: the frame's headline metric) at one stage as a (trial x method) table."""
    metric = _check(metrics, metric)
    at = metrics[metrics["stage"] == stage]
    return at.pivot_table(index="trial", columns="method", values=metric, aggfunc="first")


def learning_curve_frame(metrics: pd.DataFrame, baseline: str = BASELINE, methods=None,
                         metric: str | None = None) -> pd.DataFrame:
    """The tidy frame ``tavaal_core.figures.learning_curves`` draws: one row per (method, stage) with
    ``method, stage, labeled_count, metric`` (its name), ``metric_mean, metric_std, trials,
    improvement_mean, relative_improvement_mean, p_value_vs_random``. ``metric`` defaults to the frame's
    :func:`headline_metric`. Improvements and p-value are against ``baseline`` (random), paired by trial;
    the baseline's own rows have improvement 0 and p NaN; without a baseline they are NaN."""
    metric = _check(metrics, metric)
    if has_settings(metrics):  # a sweep: one curve per (setting, method), against random under the same setting
        return _per_setting(metrics, lambda rows: learning_curve_frame(rows, baseline, methods, metric), CURVE_COLUMNS)
    rows = []
    if metrics.empty:
        return pd.DataFrame(columns=list(CURVE_COLUMNS))
    order = _method_order(metrics, methods)
    for stage, at in metrics.groupby("stage", sort=True):
        table = at.pivot_table(index="trial", columns="method", values=metric, aggfunc="first")
        labeled = at.groupby("method")["labeled_count"].first()
        for method in order:
            if method not in table.columns:
                continue
            acc = table[method].dropna()
            n = len(acc)
            improvement = relative = p = math.nan
            if baseline in table.columns:
                if method == baseline:
                    improvement = relative = 0.0 if n else math.nan
                else:
                    paired = table[[method, baseline]].dropna()
                    if len(paired):
                        diff = paired[method] - paired[baseline]
                        improvement = float(diff.mean())
                        base = paired[baseline].to_numpy(np.float64)
                        if (base > 0).all():
                            relative = float((diff.to_numpy(np.float64) / base).mean())
                        p = paired_t_test(paired[method].to_numpy(), paired[baseline].to_numpy())
            rows.append({
                "method": method,
                "stage": int(stage),
                "labeled_count": int(labeled[method]),
                "metric": metric,
                "metric_mean": float(acc.mean()) if n else math.nan,
                "metric_std": float(acc.std(ddof=1)) if n >= 2 else math.nan,
                "trials": int(n),
                "improvement_mean": improvement,
                "relative_improvement_mean": relative,
                "p_value_vs_random": p,
            })
    frame = pd.DataFrame(rows, columns=list(CURVE_COLUMNS))
    frame["method"] = pd.Categorical(frame["method"], categories=order, ordered=True)
    frame = frame.sort_values(["method", "stage"], kind="stable").reset_index(drop=True)
    frame["method"] = frame["method"].astype(str)
    return frame


def pairwise_tests(metrics: pd.DataFrame, stage: int | None = None, methods=None,
                   metric: str | None = None) -> pd.DataFrame:
    """Paired t-tests of the metric (default: the headline one) between every two methods, per stage (or at
    one stage): ``stage, labeled_count, method_a, method_b, trials, mean_difference (a - b), p_value``."""
    metric = _check(metrics, metric)
    if has_settings(metrics):  # within each setting of a sweep
        return _per_setting(metrics, lambda rows: pairwise_tests(rows, stage, methods, metric), PAIRWISE_COLUMNS)
    rows = []
    if metrics.empty:
        return pd.DataFrame(columns=list(PAIRWISE_COLUMNS))
    order = _method_order(metrics, methods)
    stages = sorted(metrics["stage"].unique()) if stage is None else [stage]
    for s in stages:
        at = metrics[metrics["stage"] == s]
        rows += [{"stage": int(s), "labeled_count": n, "method_a": a, "method_b": b, **test}
                 for a, b, n, test in _paired_by_trial(at, "method", order, metric)]
    return pd.DataFrame(rows, columns=list(PAIRWISE_COLUMNS))


def _paired_by_trial(at: pd.DataFrame, column: str, order, metric: str):
    """For every two values a, b of ``column`` (in ``order``) at one stage: (a, b, labeled count, {trials,
    mean_difference (a - b), p_value}) of the paired t-test of ``metric`` over the trials both have."""
    table = at.pivot_table(index="trial", columns=column, values=metric, aggfunc="first")
    labeled = at.groupby(column)["labeled_count"].first()
    for a, b in itertools.combinations([v for v in order if v in table.columns], 2):
        paired = table[[a, b]].dropna()
        yield a, b, int(labeled[a]), {
            "trials": int(len(paired)),
            "mean_difference": float((paired[a] - paired[b]).mean()) if len(paired) else math.nan,
            "p_value": paired_t_test(paired[a].to_numpy(), paired[b].to_numpy()),
        }


def setting_tests(metrics: pd.DataFrame, stage: int | None = None, methods=None,
                  metric: str | None = None) -> pd.DataFrame:
    """A sweep's settings against each other: for every method and stage, paired t-tests (by trial) of the
    metric between every two settings: ``method, stage, labeled_count, setting_a, setting_b, trials,
    mean_difference (a - b), p_value``. Empty without a sweep."""
    metric = _check(metrics, metric)
    groups = list(setting_groups(metrics))
    if not has_settings(metrics) or len(groups) < 2:
        return pd.DataFrame(columns=list(SETTING_TEST_COLUMNS))
    labels = [label for _, label, _ in groups]
    rows = []
    for method in _method_order(metrics, methods):
        at_method = metrics[metrics["method"] == method]
        stages = sorted(at_method["stage"].unique()) if stage is None else [stage]
        for s in stages:
            at = at_method[at_method["stage"] == s]
            rows += [{"method": method, "stage": int(s), "labeled_count": n, "setting_a": a, "setting_b": b, **test}
                     for a, b, n, test in _paired_by_trial(at, "setting_label", labels, metric)]
    return pd.DataFrame(rows, columns=list(SETTING_TEST_COLUMNS))


def p_value_matrix(metrics: pd.DataFrame, stage: int, methods=None, metric: str | None = None) -> pd.DataFrame:
    """Symmetric (method x method) matrix of paired t-test p-values at one stage (NaN on the diagonal).
    Give a sweep's metrics one setting at a time (``setting_groups``)."""
    if has_settings(metrics) and metrics["setting"].nunique() > 1:
        raise ValueError("p_value_matrix takes one setting of a sweep; split the metrics with setting_groups")
    metrics = metrics.drop(columns=["setting"]) if "setting" in metrics.columns else metrics
    tests = pairwise_tests(metrics, stage=stage, methods=methods, metric=metric)
    order = _method_order(metrics, methods)
    present = [m for m in order if m in set(metrics.loc[metrics["stage"] == stage, "method"])]
    matrix = pd.DataFrame(np.nan, index=present, columns=present)
    for row in tests.itertuples():
        matrix.loc[row.method_a, row.method_b] = row.p_value
        matrix.loc[row.method_b, row.method_a] = row.p_value
    return matrix


def significant_cases(metrics: pd.DataFrame, alpha: float = 0.05, methods=None, metric: str | None = None) -> pd.DataFrame:
    """The pairwise tests with p < alpha (Godwin et al. 2022's 'p < 0.05 cases'), the better method first."""
    tests = pairwise_tests(metrics, methods=methods, metric=metric)
    sig = tests[tests["p_value"] < alpha].copy()
    swap = sig["mean_difference"] < 0
    sig.loc[swap, ["method_a", "method_b"]] = sig.loc[swap, ["method_b", "method_a"]].to_numpy()
    sig.loc[swap, "mean_difference"] = -sig.loc[swap, "mean_difference"]
    return sig.rename(columns={"method_a": "better", "method_b": "worse"}).reset_index(drop=True)


def final_summary(metrics: pd.DataFrame, baseline: str = BASELINE, methods=None, metric: str | None = None) -> pd.DataFrame:
    """The last stage's row of the learning-curve frame per method (for a CLI summary)."""
    curves = learning_curve_frame(metrics, baseline=baseline, methods=methods, metric=metric)
    if curves.empty:
        return curves
    last = curves["stage"].max()
    return curves[curves["stage"] == last].reset_index(drop=True)


def metric_label(metric: str) -> str:
    """"accuracy" -> "accuracy", "mean_iou" -> "mean IoU" (axis titles and table headers)."""
    return METRIC_LABELS.get(metric, metric).removeprefix("test ")


def curve_metric(curves: pd.DataFrame) -> str:
    """The metric a learning-curve frame holds ("accuracy" for an empty one)."""
    return str(curves["metric"].iloc[0]) if len(curves) and "metric" in curves.columns else "accuracy"


def curve_table(curves: pd.DataFrame) -> pd.DataFrame:
    """The learning-curve frame for reading: percentages, one decimal; p-values as they are."""
    name = metric_label(curve_metric(curves))
    columns = ["method", "stage", "labeled", f"{name} %", "std", "vs random (points)", "vs random (relative %)",
               "p vs random", "trials"]
    if curves.empty:
        return pd.DataFrame(columns=columns)
    if "setting_label" in curves.columns:  # a sweep: which setting each row is
        table = curve_table(curves.drop(columns=["setting", "setting_label"], errors="ignore"))
        table.insert(0, "setting", curves["setting_label"].to_numpy())
        return table
    return pd.DataFrame(dict(zip(columns, (
        curves["method"], curves["stage"], curves["labeled_count"], (100 * curves["metric_mean"]).round(1),
        (100 * curves["metric_std"]).round(1), (100 * curves["improvement_mean"]).round(1),
        (100 * curves["relative_improvement_mean"]).round(1), curves["p_value_vs_random"], curves["trials"]))))
