"""Audits: does a paper's claim hold? Run the claim's setting over N seeds and measure it.

A :class:`Claim` is a sentence from a paper, the setting it is measured on (a :class:`Setting`: a preset,
its methods, a default number of seeds) and its :class:`Part` s: the orderings the sentence asserts
("learning loss's picks are closer to the boundary than VAAL's"), each a comparison of one metric of
:mod:`tavaal_core.claims` between two methods (or a method and a constant) over some stages.

Running a setting is an ordinary multi-trial experiment (:mod:`tavaal_core.experiment`), one trial per
seed, written into an audit folder under ``audits/`` (``$TAVAAL_AUDITS_DIR``) named after the setting and
a hash of its config: the folder is the on-disk cache (a second audit of the same setting only reads it),
it resumes when interrupted, asking for more seeds extends it, and any seed can be opened in the app's
views like any saved run. Claims that share a setting share its runs.

Per part and seed, a metric is averaged over the part's stages for each method; the per-seed difference
in the paper's direction gives the count of seeds where the ordering held, the mean with a 95% t-interval
and a paired t-test; :func:`tavaal_core.claims.ordering_verdict` turns them into holds / mixed / does not
hold. A claim's verdict combines its parts' (:func:`tavaal_core.claims.combine_verdicts`).

>>> result = audit("fig1", seeds=10)                 # doctest: +SKIP
>>> result.verdict, result.parts_frame()             # doctest: +SKIP
"""
from __future__ import annotations

import hashlib
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from . import claims as cm
from . import store
from .config import ExperimentConfig
from .errors import ConfigError
from .experiment import Experiment, ExperimentSpec
from .presets import load_preset

NOT_MEASURED = "not measured"  # a claim none of whose parts the run can measure (its methods are absent)
RESULT_VERSION = 1


def audits_dir() -> Path:
    return Path(os.environ.get("TAVAAL_AUDITS_DIR", "audits"))


# -- what is claimed -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Setting:
    """Where claims are measured: a preset, the methods to run on it, the default number of seeds."""

    name: str
    preset: str
    methods: tuple[str, ...]
    seeds: int
    description: str
    overrides: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Part:
    """One ordering a claim asserts: ``metric(a)`` is ``direction`` ("higher" / "lower") than
    ``metric(b)`` (``b`` a method, or a number such as 0.5), the metric averaged per seed over ``stages``
    ("last", "early" = the first two, "late" = the last two, "all", or a tuple of stage indices).
    ``kind="no_difference"``: the claim is that ``a`` and ``b`` do NOT differ (per-stage paired tests)."""

    text: str
    metric: str
    a: str
    b: str | float
    direction: str = "higher"
    stages: str | tuple = "last"
    kind: str = "ordering"


@dataclass(frozen=True)
class Claim:
    name: str
    title: str
    paper: str
    sentence: str
    setting: str
    parts: tuple[Part, ...]
    metrics: tuple[str, ...]  # what the page plots across seeds
    methods: tuple[str, ...]  # the methods the claim is about (a subset of the setting's)
    sweeps: dict = field(default_factory=dict)  # field -> values worth trying (the page's setting table)
    note: str = ""

    def needed_methods(self) -> list[str]:
        out = []
        for p in self.parts:
            for m in (p.a, p.b):
                if isinstance(m, str) and m not in out:
                    out.append(m)
        return out


TAVAAL = "TA-VAAL (Kim, Park, Kim & Chun, CVPR 2021)"
GODWIN = "Godwin et al., SciPy 2022 (VAE-augmented selection)"

SETTINGS: dict[str, Setting] = {s.name: s for s in (
    Setting("moons_fig1", "moons_fig1", ("random", "lloss", "vaal", "tavaal"), 10,
            "Imbalanced two moons (500 + 50), MLP, 20 initial + 10 per stage, 5 stages: TA-VAAL Figure 1"),
    Setting("digits", "digits_demo", ("random", "lloss", "lloss_v2", "vaal", "vaal_lloss", "tavaal"), 5,
            "Digits (8x8, balanced), small CNN, 100 initial + 50 per stage, 5 stages: a CPU stand-in for "
            "the paper's CIFAR-10 (Figures 3 and 6)"),
    Setting("digits_imbalanced", "digits_imbalanced_x10", ("random", "lloss", "vaal", "tavaal"), 5,
            "Digits with classes 0-4 kept at 1/10: a CPU stand-in for the paper's imbalanced CIFAR-10 "
            "(Figures 4, 7 and 8)"),
    Setting("digits_vae_features", "digits_demo",
            ("coreset", "coreset_vae", "medal", "medal_vae", "lloss", "lloss_vae"), 5,
            "Digits (balanced), small CNN: a CPU stand-in for Godwin et al.'s MNIST / ChestMNIST runs"),
)}

_GEOMETRY_SWEEPS = {"discriminator_rank_input": ["sigmoid", "raw"], "kl_reduction": ["mean", "sum"],
                    "vae_epochs": [50, 100, 200], "subset_factor": [0, 10], "adversary_weight": [0.5, 1.0, 2.0]}

CLAIMS: dict[str, Claim] = {c.name: c for c in (
    Claim(
        "fig1", "Fig. 1: near the boundary and spread", TAVAAL,
        "On imbalanced two moons at the 5th stage, learning loss picks samples close to the decision boundary "
        "but clustered; VAAL picks samples spread over the set but often far from the boundary; TA-VAAL picks "
        "samples that are both close to the boundary and spread.",
        "moons_fig1",
        (Part("learning loss's picks are closer to the oracle boundary than VAAL's", "boundary_rank", "lloss",
              "vaal", "lower"),
         Part("VAAL's picks are more spread than learning loss's", "spread", "vaal", "lloss", "higher"),
         Part("TA-VAAL's picks are closer to the oracle boundary than VAAL's", "boundary_rank", "tavaal", "vaal",
              "lower"),
         Part("TA-VAAL's picks are more spread than learning loss's", "spread", "tavaal", "lloss", "higher")),
        ("boundary_rank", "spread", "coverage"), ("random", "lloss", "vaal", "tavaal"),
        sweeps=_GEOMETRY_SWEEPS,
        note="Stage 4 (the 5th stage, as in the figure). Boundary = the oracle model (every label) that the "
             "two-moons views draw dashed."),
    Claim(
        "fig6", "Fig. 6: ablation", TAVAAL,
        "Learning loss v2 (the ranking loss) beats learning loss at later stages; TA-VAAL beats VAAL + learning "
        "loss.",
        "digits",
        (Part("learning loss v2 is more accurate than learning loss at the last two stages", "accuracy",
              "lloss_v2", "lloss", "higher", "late"),
         Part("TA-VAAL is more accurate than VAAL + learning loss (mean over stages)", "accuracy", "tavaal",
              "vaal_lloss", "higher", "all")),
        ("accuracy",), ("lloss", "lloss_v2", "vaal_lloss", "tavaal"),
        sweeps={"task_epochs": [10, 20, 40], "head_weight": [0.5, 1.0, 2.0]}),
    Claim(
        "fig7a", "Fig. 7a: class balance under imbalance", TAVAAL,
        "Under severe class imbalance, TA-VAAL's labeled set has a higher class-count entropy than the other "
        "methods'; learning loss's entropy is low early on.",
        "digits_imbalanced",
        (Part("TA-VAAL's labeled set is more balanced than random's (mean over stages)", "class_entropy",
              "tavaal", "random", "higher", "all"),
         Part("TA-VAAL's labeled set is more balanced than learning loss's", "class_entropy", "tavaal", "lloss",
              "higher", "all"),
         Part("TA-VAAL's labeled set is more balanced than VAAL's", "class_entropy", "tavaal", "vaal",
              "higher", "all"),
         Part("learning loss's labeled set is less balanced than random's early on (stages 0-1)",
              "class_entropy", "lloss", "random", "lower", "early")),
        ("class_entropy", "minority_share"), ("random", "lloss", "vaal", "tavaal"),
        sweeps={"imbalance_ratio": [10, 50]}),
    Claim(
        "fig7b", "Fig. 7b: spread of the discriminator's outputs", TAVAAL,
        "At the last stage, VAAL's discriminator outputs on unlabeled data are concentrated (its selection "
        "became almost random), while TA-VAAL's spread over a wide range.",
        "digits_imbalanced",
        (Part("TA-VAAL's discriminator outputs on the candidates spread wider than VAAL's (5-95% range)",
              "d_spread", "tavaal", "vaal", "higher"),),
        ("d_spread",), ("vaal", "tavaal"),
        sweeps={"discriminator_rank_input": ["sigmoid", "raw"], "kl_reduction": ["mean", "sum"],
                "vae_epochs": [10, 30], "adversary_weight": [0.5, 1.0, 2.0]}),
    Claim(
        "fig8", "Fig. 8: real loss of the picks", TAVAAL,
        "TA-VAAL's picks have relatively high real loss; VAAL's picks span a wide range of real losses.",
        "digits_imbalanced",
        (Part("TA-VAAL's picks have a higher real loss than VAAL's (percentile among the candidates)",
              "loss_rank", "tavaal", "vaal", "higher"),
         Part("TA-VAAL's picks have a higher real loss than a random batch (percentile > 0.5)", "loss_rank",
              "tavaal", 0.5, "higher"),
         Part("VAAL's picks span a wider range of real losses than TA-VAAL's (IQR of percentiles)",
              "loss_rank_iqr", "vaal", "tavaal", "higher")),
        ("loss_rank", "loss_rank_iqr"), ("vaal", "tavaal"),
        sweeps={"discriminator_rank_input": ["sigmoid", "raw"], "vae_epochs": [10, 30]}),
    Claim(
        "fig345", "Figs. 3-5: accuracy", TAVAAL,
        "TA-VAAL's accuracy beats the other methods' at every stage.",
        "digits",
        (Part("TA-VAAL is more accurate than random (mean over stages)", "accuracy", "tavaal", "random",
              "higher", "all"),
         Part("TA-VAAL is more accurate than learning loss (mean over stages)", "accuracy", "tavaal", "lloss",
              "higher", "all"),
         Part("TA-VAAL is more accurate than VAAL (mean over stages)", "accuracy", "tavaal", "vaal", "higher",
              "all")),
        ("accuracy",), ("random", "lloss", "vaal", "tavaal"),
        sweeps={"task_epochs": [10, 20, 40], "vae_epochs": [10, 30]}),
    Claim(
        "godwin", "VAE features: same accuracy, other picks", GODWIN,
        "Appending VAE features (scaled by alpha) to core-set, MedAL and loss prediction makes no significant "
        "difference to accuracy (paired t-tests per stage), while it changes which samples are picked.",
        "digits_vae_features",
        (Part("core-set + VAE: no significant accuracy difference at any stage", "accuracy", "coreset_vae",
              "coreset", kind="no_difference", stages="all"),
         Part("MedAL + VAE: no significant accuracy difference at any stage", "accuracy", "medal_vae", "medal",
              kind="no_difference", stages="all"),
         Part("loss prediction + VAE: no significant accuracy difference at any stage", "accuracy", "lloss_vae",
              "lloss", kind="no_difference", stages="all"),
         Part("core-set + VAE picks other samples than core-set at stage 0 (overlap < 1)", "overlap",
              "coreset_vae", "coreset", "lower", (0,), kind="overlap"),
         Part("MedAL + VAE picks other samples than MedAL at stage 0 (overlap < 1)", "overlap", "medal_vae",
              "medal", "lower", (0,), kind="overlap"),
         Part("loss prediction + VAE picks other samples than loss prediction at stage 0 (overlap < 1)", "overlap",
              "lloss_vae", "lloss", "lower", (0,), kind="overlap")),
        ("accuracy", "overlap"), ("coreset", "coreset_vae", "medal", "medal_vae", "lloss", "lloss_vae"),
        sweeps={"alpha": [0.1, 1.0, 10.0]}),
)}


def get_claim(name: str) -> Claim:
    if name not in CLAIMS:
        raise ConfigError("claim", f"unknown claim {name!r}; choose one of: {', '.join(CLAIMS)}")
    return CLAIMS[name]


# -- --set field=value ---------------------------------------------------------------------------------
def parse_assignment(text: str) -> tuple[str, object]:
    """``field=value`` -> (field, value); the value is read as JSON where it parses (numbers, true/false,
    lists), else kept as text. A field that is not a config field is refused naming the allowed ones."""
    if "=" not in text:
        raise ConfigError("set", f"expected field=value, got {text!r}")
    name, raw = (s.strip() for s in text.split("=", 1))
    known = set(ExperimentConfig.__dataclass_fields__) - {"method"}
    if name not in known:
        raise ConfigError("set", f"unknown config field {name!r}; allowed: {', '.join(sorted(known))}")
    try:
        value = json.loads(raw)
    except ValueError:
        value = raw
    return name, value


def setting_spec(setting: Setting | str, seeds: int | None = None, overrides: dict | None = None) -> ExperimentSpec:
    """The experiment that measures a setting: its preset with ``overrides``, its methods, ``seeds`` trials.
    Bad overrides are refused with a ConfigError naming the field."""
    setting = SETTINGS[setting] if isinstance(setting, str) else setting
    spec = load_preset(setting.preset)
    changes = {**setting.overrides, **(overrides or {})}
    config = ExperimentConfig.from_dict({**spec.config.to_dict(), **changes})
    config.resolve()  # dataset-dependent checks now, not in the middle of a run
    return ExperimentSpec(config=config, methods=setting.methods, trials=int(seeds or setting.seeds),
                          preset=setting.preset, description=f"Audit: {setting.description}",
                          notes={"audit_setting": setting.name, "overrides": dict(overrides or {})})


def audit_key(spec: ExperimentSpec) -> str:
    """Folder name of a setting's audit: setting name + a hash of the config and methods (not the seeds, so
    asking for more seeds extends the same folder)."""
    config = spec.config.to_dict()
    config.pop("method", None)
    payload = json.dumps({"config": config, "methods": list(spec.methods)}, sort_keys=True)
    digest = hashlib.sha256(payload.encode()).hexdigest()[:10]
    return f"{spec.notes.get('audit_setting') or spec.config.dataset}-{digest}"


def audit_dir_for(spec: ExperimentSpec, root=None) -> Path:
    return Path(root or audits_dir()) / audit_key(spec)


def trials_done(run_dir, spec: ExperimentSpec, seeds: int) -> int:
    """(trial, method, stage) records on disk among the first ``seeds`` trials."""
    return sum(min(store.finished_stages(run_dir, m, t), spec.stages) for m in spec.methods for t in range(seeds))


# -- running ----------------------------------------------------------------------------------------------
def prepare(spec: ExperimentSpec, root=None) -> Experiment:
    """The audit folder for ``spec``: created, or opened and extended to ``spec.trials`` seeds."""
    run_dir = audit_dir_for(spec, root)
    if store.is_run_dir(run_dir):
        experiment = Experiment.open(run_dir)
        if experiment.spec.trials < spec.trials:
            data = store.read_spec(run_dir)
            data["trials"] = spec.trials
            store.write_spec(run_dir, data)
            experiment = Experiment.open(run_dir)
            store.update_status(run_dir, total=experiment.spec.total_stages)
        elif experiment.spec.trials > spec.trials:  # fewer seeds than the folder holds: run only those
            experiment.spec = experiment.spec.with_(trials=spec.trials)
        return experiment
    return Experiment.create(spec, run_dir.parent, run_dir.name)


def run_setting(spec: ExperimentSpec, root=None, progress=None, fast: bool = True,
                records: dict | None = None) -> Path:
    """Run (or finish) every seed of ``spec`` in its audit folder; returns the folder.

    ``fast``: the two-moons MLP settings train all seeds of a method together (:mod:`tavaal_core.batched`);
    other settings, or ``fast=False``, run the ordinary engine one stage at a time. ``records``: filled with
    the records the fast path computed (see :func:`batched.run`), for :func:`measure`."""
    experiment = prepare(spec, root)
    from . import batched

    if fast and batched.supports(experiment.spec):
        batched.run(experiment, progress, records)
    else:
        experiment.run(progress)
    return experiment.run_dir


# -- measuring ---------------------------------------------------------------------------------------------
def _stage_list(stages, n: int) -> list[int]:
    if stages == "last":
        return [n - 1]
    if stages == "early":
        return list(range(min(2, n)))
    if stages == "late":
        return list(range(max(0, n - 2), n))
    if stages == "all":
        return list(range(n))
    return [s for s in stages if 0 <= s < n]


class _FactsCache:
    """DatasetFacts per distinct training set (the imbalanced cut depends on the seed), one oracle per
    dataset for 2-d data."""

    def __init__(self, run_dir: Path, spec: ExperimentSpec):
        self.run_dir, self.spec = run_dir, spec
        self._facts: dict[str, cm.DatasetFacts] = {}

    def for_trial(self, trial: int) -> cm.DatasetFacts:
        from .engine import ActiveLearner

        config = self.spec.trial_config(trial, self.spec.methods[0])
        data_depends_on_seed = config.imbalance_ratio is not None or config.class_counts is not None \
            or config.subsample is not None
        key = json.dumps({"dataset": config.dataset, "options": config.dataset_options,
                          "seed": config.seed if data_depends_on_seed else None}, sort_keys=True, default=str)
        if key not in self._facts:
            learner = ActiveLearner(config.with_(device="cpu")).start()  # loads and cuts the data; trains nothing
            ds = learner.dataset
            x = ds.x_train.cpu().numpy()
            points = x if ds.kind == "vector" and x.ndim == 2 and x.shape[1] == 2 else None
            oracle = self._oracle(learner, key) if points is not None else None
            self._facts[key] = cm.DatasetFacts(ds.y_train.cpu().numpy(), points, oracle, ds.num_classes)
        return self._facts[key]

    def _oracle(self, learner, key: str):
        """The oracle's boundary grid, trained once and kept in the folder (oracle-<hash>.npz)."""
        path = self.run_dir / f"oracle-{hashlib.sha256(key.encode()).hexdigest()[:8]}.npz"
        if path.is_file():
            arrays = store.read_npz(path)
            return arrays["grid_x"], arrays["grid_y"], arrays["prob"]
        from . import batched

        oracle = batched.oracle(learner)
        try:  # a cache: a read-only run folder is measured all the same
            store.atomic_write_npz(path, {"grid_x": oracle.boundary_x, "grid_y": oracle.boundary_y,
                                          "prob": oracle.boundary_prob})
        except OSError:
            pass
        return oracle.boundary_x, oracle.boundary_y, oracle.boundary_prob


def measure(run_dir, spec: ExperimentSpec | None = None, methods=None, seeds: int | None = None,
            records: dict | None = None) -> pd.DataFrame:
    """Every claim metric per (method, trial, stage) of a run folder's finished stages: the tidy frame
    ``method, trial, seed, stage, labeled_count, <metric>...``; ``overlap`` is filled for methods that share
    stage 0 with its ``_vae`` partner (Godwin et al.). ``records``: ``(trial, method) -> records`` already in
    memory (just computed by :func:`run_setting`); used where they are every stage the folder holds, the
    folder read otherwise."""
    run_dir = store.require_run_dir(run_dir)
    spec = spec or Experiment.open(run_dir).spec
    methods = [m for m in (methods or spec.methods) if m in spec.methods]
    seeds = spec.trials if seeds is None else min(seeds, spec.trials)
    facts = _FactsCache(Path(run_dir), spec)
    rows = []
    picks0: dict[tuple[str, int], np.ndarray] = {}
    for trial in range(seeds):
        trial_facts = None
        for method in methods:
            unit = (records or {}).get((trial, method))
            if unit is not None:
                finished = min(store.finished_stages(run_dir, method, trial), spec.stages)
                unit = list(unit[:finished]) if len(unit) >= finished else None
            if unit is None:
                unit = store.load_records(run_dir, method, trial, spec.stages)
            if unit and trial_facts is None:
                trial_facts = facts.for_trial(trial)
            for record in unit:
                row = {"method": method, "trial": trial, "seed": spec.trial_seed(trial), "stage": record.stage,
                       "labeled_count": int(record.labeled_count)}
                row.update(cm.record_metrics(record, trial_facts))
                rows.append(row)
                if record.stage == 0:
                    picks0[(method, trial)] = np.asarray(record.selected)
    frame = pd.DataFrame(rows)
    if frame.empty:
        return frame
    frame["overlap"] = np.nan
    for (method, trial), picks in picks0.items():
        partner = method[:-4] if method.endswith("_vae") else None
        if partner and (partner, trial) in picks0:
            value = cm.pick_overlap_fraction(picks, picks0[(partner, trial)])
            mask = (frame["method"] == method) & (frame["trial"] == trial) & (frame["stage"] == 0)
            frame.loc[mask, "overlap"] = value
    return frame


# -- verdicts ----------------------------------------------------------------------------------------------
@dataclass
class PartResult:
    part: Part
    verdict: str
    seeds: int
    held: int
    mean_a: float
    ci_a: tuple[float, float]
    mean_b: float
    ci_b: tuple[float, float]
    mean_difference: float  # in the paper's direction: positive = as the paper says
    ci_difference: tuple[float, float]
    p_value: float
    stages: list[int]
    per_seed: dict = field(default_factory=dict)  # "a", "b", "difference" -> list over seeds
    per_stage: list = field(default_factory=list)  # no_difference parts: accuracy_differences rows
    missing: str = ""

    def as_row(self) -> dict:
        p = self.part
        return {"part": p.text, "metric": p.metric, "a": p.a, "b": p.b, "direction": p.direction,
                "stages": ",".join(map(str, self.stages)), "seeds": self.seeds, "held": self.held,
                "mean_a": self.mean_a, "ci_a_low": self.ci_a[0], "ci_a_high": self.ci_a[1],
                "mean_b": self.mean_b, "ci_b_low": self.ci_b[0], "ci_b_high": self.ci_b[1],
                "mean_difference": self.mean_difference, "ci_difference_low": self.ci_difference[0],
                "ci_difference_high": self.ci_difference[1], "p_value": self.p_value, "verdict": self.verdict,
                "missing": self.missing}


def _nan_pair():
    return (math.nan, math.nan)


def evaluate_part(part: Part, frame: pd.DataFrame, stages_in_run: int) -> PartResult:
    from scipy import stats

    from .statistics import paired_t_test

    stages = _stage_list(part.stages, stages_in_run)
    methods = set(frame["method"]) if len(frame) else set()
    needed = [m for m in (part.a, part.b) if isinstance(m, str)]
    missing = [m for m in needed if m not in methods]
    if missing or part.metric not in frame.columns or not stages:
        why = f"the run lacks {', '.join(missing)}" if missing else f"no {part.metric} in this run" \
            if part.metric not in frame.columns else "the run lacks those stages"
        return PartResult(part, cm.MIXED, 0, 0, math.nan, _nan_pair(), math.nan, _nan_pair(), math.nan,
                          _nan_pair(), math.nan, stages, missing=why)
    at = frame[frame["stage"].isin(stages)]

    def per_seed(method):
        values = at[at["method"] == method].groupby("trial")[part.metric].mean()
        return values[np.isfinite(values)]

    a = per_seed(part.a)
    if part.kind == "overlap":  # measured on a's rows against its partner b: nothing to pair on b's side
        b_values = np.full(len(a), np.nan)
    elif isinstance(part.b, str):
        b = per_seed(part.b)
        common = a.index.intersection(b.index)
        a, b = a.loc[common], b.loc[common]
        b_values = b.to_numpy()
    else:
        b_values = np.full(len(a), float(part.b))
    a_values = a.to_numpy()
    sign = 1.0 if part.direction == "higher" else -1.0
    diff = sign * (a_values - b_values)
    n = len(diff)
    ma, la, ha = cm.mean_ci(a_values)
    mb, lb, hb = cm.mean_ci(b_values) if isinstance(part.b, str) else (float(part.b), math.nan, math.nan)
    if part.kind == "overlap":
        mb, lb, hb = math.nan, math.nan, math.nan
    md, ld, hd = cm.mean_ci(diff)
    per_stage = []
    if part.kind == "no_difference":
        table_a = at[at["method"] == part.a].pivot_table(index="trial", columns="stage", values=part.metric)
        table_b = at[at["method"] == part.b].pivot_table(index="trial", columns="stage", values=part.metric)
        common = table_a.index.intersection(table_b.index)
        cols = [s for s in stages if s in table_a.columns and s in table_b.columns]
        per_stage = cm.accuracy_differences(table_a.loc[common, cols].to_numpy(), table_b.loc[common, cols].to_numpy())
        for row, s in zip(per_stage, cols):
            row["stage"] = int(s)
        p_values = [r["p_value"] for r in per_stage]
        verdict = cm.no_difference_verdict(p_values)
        held = sum(1 for p in p_values if not p < cm.SIGNIFICANCE)  # stages without a significant difference
        p = min((q for q in p_values if q == q), default=math.nan)
    elif part.kind == "overlap":  # "picks differ": the overlap is below 1 in a seed
        held = int((a_values < 1.0).sum())
        p = math.nan
        share = held / n if n else 0.0
        verdict = cm.HOLDS if n and share >= cm.HOLD_SHARE else cm.FAILS if share <= 0.5 else cm.MIXED
        mb, md = math.nan, 1.0 - ma if n else math.nan
    else:
        held = int((diff > 0).sum())
        if isinstance(part.b, str):
            p = paired_t_test(a_values, b_values)
        else:
            p = float(stats.ttest_1samp(a_values, float(part.b)).pvalue) if n >= 2 and np.ptp(a_values) > 0 else math.nan
        verdict = cm.ordering_verdict(held, n, p if p == p else 1.0, md)
    return PartResult(part, verdict, n, held, ma, (la, ha), mb, (lb, hb), md, (ld, hd), p, stages,
                      per_seed={"trial": a.index.tolist(), "a": a_values.tolist(), "b": b_values.tolist(),
                                "difference": diff.tolist()}, per_stage=per_stage)


@dataclass
class ClaimResult:
    claim: Claim
    verdict: str
    parts: list[PartResult]
    frame: pd.DataFrame  # the measured metrics, per (method, trial, stage)
    run_dir: Path
    seeds: int
    overrides: dict = field(default_factory=dict)

    def parts_frame(self) -> pd.DataFrame:
        rows = [{"claim": self.claim.name, "claim_verdict": self.verdict, **p.as_row()} for p in self.parts]
        return pd.DataFrame(rows)

    def summary(self) -> str:
        measured = [p for p in self.parts if not p.missing]
        return (f"{self.claim.name}: {self.verdict} ({sum(p.verdict == cm.HOLDS for p in measured)} of "
                f"{len(self.parts)} parts hold, {self.seeds} seeds)")

    def to_json(self) -> dict:
        return {"version": RESULT_VERSION, "claim": self.claim.name, "verdict": self.verdict, "seeds": self.seeds,
                "overrides": self.overrides, "run_dir": str(self.run_dir),
                "parts": [dict(p.as_row(), per_seed=p.per_seed, per_stage=p.per_stage) for p in self.parts]}


def evaluate(claim: Claim | str, run_dir, seeds: int | None = None, frame: pd.DataFrame | None = None,
             overrides: dict | None = None) -> ClaimResult:
    """Measure ``claim`` on a run folder (an audit folder or any saved run holding its methods)."""
    claim = get_claim(claim) if isinstance(claim, str) else claim
    spec = Experiment.open(run_dir).spec
    seeds = spec.trials if seeds is None else min(seeds, spec.trials)
    if frame is None:
        frame = measure(run_dir, spec, methods=[m for m in claim.methods if m in spec.methods], seeds=seeds)
    # an unfinished run is measured on the stages it has ("last" = its last finished stage)
    stages = int(frame["stage"].max()) + 1 if len(frame) else 0
    parts = [evaluate_part(p, frame, stages) for p in claim.parts]
    measured = [p.verdict for p in parts if not p.missing]
    verdict = cm.combine_verdicts(measured) if measured else NOT_MEASURED
    return ClaimResult(claim, verdict, parts, frame, Path(run_dir), seeds, dict(overrides or {}))


def cached_evaluate(claim: Claim | str, run_dir, seeds: int, overrides: dict | None = None,
                    records: dict | None = None) -> ClaimResult:
    """:func:`evaluate`, with the measured frame kept in the folder (``metrics-claims-<seeds>.csv``) and reused
    while the folder's records are unchanged: a second visit only reads it. ``records``: see :func:`measure`."""
    claim = get_claim(claim) if isinstance(claim, str) else claim
    run_dir = Path(run_dir)
    spec = Experiment.open(run_dir).spec
    done = trials_done(run_dir, spec, min(seeds, spec.trials))
    path = run_dir / f"metrics-claims-{min(seeds, spec.trials)}.csv"  # read back by pandas; written atomically
    marker = run_dir / f"metrics-claims-{min(seeds, spec.trials)}.json"
    frame = None
    if path.is_file() and marker.is_file():
        try:
            if store.read_json(marker).get("done") == done and store.read_json(marker).get("version") == RESULT_VERSION:
                frame = pd.read_csv(path)
        except (store.StoreError, ValueError, OSError):
            frame = None
    if frame is None:
        frame = measure(run_dir, spec, seeds=seeds, records=records)
        store.atomic_write(path, lambda f: frame.to_csv(f, index=False))
        store.atomic_write_json(marker, {"done": done, "version": RESULT_VERSION})
    sub = frame[frame["method"].isin(claim.methods)] if len(frame) else frame
    return evaluate(claim, run_dir, seeds, frame=sub, overrides=overrides)


def audit(claim: Claim | str, seeds: int | None = None, overrides: dict | None = None, root=None, progress=None,
          fast: bool = True) -> ClaimResult:
    """Run the claim's setting over ``seeds`` seeds (default: the setting's) and measure the claim."""
    claim = get_claim(claim) if isinstance(claim, str) else claim
    setting = SETTINGS[claim.setting]
    seeds = int(seeds or setting.seeds)
    spec = setting_spec(setting, seeds, overrides)
    computed: dict = {}
    run_dir = run_setting(spec, root, progress, fast=fast, records=computed)
    return cached_evaluate(claim, run_dir, seeds, overrides, records=computed)


# -- sweeps ------------------------------------------------------------------------------------------------
def sweep(claim: Claim | str, field_values: dict, seeds: int | None = None, base: dict | None = None, root=None,
          progress: Callable | None = None, fast: bool = True) -> pd.DataFrame:
    """The claim measured under each value of each field (one at a time, the rest as in the setting):
    one row per (field, value, part) with the part's verdict, seeds held and mean difference."""
    claim = get_claim(claim) if isinstance(claim, str) else claim
    rows = []
    for name, values in field_values.items():
        for value in values:
            overrides = {**(base or {}), name: value}
            result = audit(claim, seeds, overrides, root, progress, fast)
            for p in result.parts:
                rows.append({"claim": claim.name, "field": name, "value": json.dumps(value),
                             "claim_verdict": result.verdict, "part": p.part.text, "verdict": p.verdict,
                             "held": p.held, "seeds": p.seeds, "mean_difference": p.mean_difference,
                             "p_value": p.p_value})
    return pd.DataFrame(rows)


def sweep_table(frame: pd.DataFrame) -> pd.DataFrame:
    """claim x setting: one row per (field, value), one column per part (``verdict (held/seeds)``)."""
    if frame.empty:
        return frame
    frame = frame.assign(cell=frame["verdict"] + " (" + frame["held"].astype(str) + "/" + frame["seeds"].astype(str) + ")")
    table = frame.pivot_table(index=["field", "value"], columns="part", values="cell", aggfunc="first", sort=False)
    verdicts = frame.groupby(["field", "value"], sort=False)["claim_verdict"].first()
    table.insert(0, "claim", verdicts)
    return table.reset_index()
