"""Drawing a claim's audit: the paper's sentence, the verdict, the parts across seeds, the numbers, the
setting table, and a way into any seed's run. Used by the Paper claims page and by "Audit this run" on the
Saved runs page. The numbers come from ``tavaal_core.audit``; nothing here computes a statistic."""
from __future__ import annotations

import math
import sys
from pathlib import Path

import pandas as pd
import streamlit as st

from tavaal_core import audit, figures, store
from tavaal_core import claims as cm
from tavaal_core.experiment import Experiment, launch
from tavaal_core.strategies import method_label

from . import views
from .source import Source, open_source

VERDICT_ICONS = {cm.HOLDS: ":material/check_circle:", cm.MIXED: ":material/help:", cm.FAILS: ":material/cancel:"}
VERDICT_COLORS = {cm.HOLDS: "green", cm.MIXED: "orange", cm.FAILS: "red"}


def verdict_badge(verdict: str) -> None:
    st.badge(verdict, icon=VERDICT_ICONS.get(verdict), color=VERDICT_COLORS.get(verdict, "gray"))


def _num(value, digits: int = 3) -> str:
    return "–" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.{digits}f}"


def parts_table(result: audit.ClaimResult) -> pd.DataFrame:
    """One row per part, for reading: the two sides' means with their CIs, seeds held, p, verdict."""
    rows = []
    for i, p in enumerate(result.parts):
        part = p.part
        b = method_label(part.b) if isinstance(part.b, str) else f"{float(part.b):g}"
        counted = len(p.stages) if part.kind == "no_difference" else p.seeds
        rows.append({
            "part": i + 1,
            "claimed": part.text,
            "verdict": p.verdict if not p.missing else f"not measured ({p.missing})",
            "held": f"{p.held}/{counted} {'stages' if part.kind == 'no_difference' else 'seeds'}",
            "metric": part.metric,
            "A": f"{method_label(part.a)}: {_num(p.mean_a)} [{_num(p.ci_a[0])}, {_num(p.ci_a[1])}]",
            "B": f"{b}: {_num(p.mean_b)}" + ("" if isinstance(part.b, (int, float)) else
                                              f" [{_num(p.ci_b[0])}, {_num(p.ci_b[1])}]"),
            "p": p.p_value,
            "stages": ", ".join(map(str, p.stages)),
        })
    return pd.DataFrame(rows)


def metric_table(result: audit.ClaimResult) -> pd.DataFrame:
    """Mean over seeds of each plotted metric, per method and stage (the claim's methods only)."""
    frame = result.frame
    cols = [m for m in result.claim.metrics if m in frame.columns]
    if frame.empty or not cols:
        return pd.DataFrame()
    table = frame.groupby(["method", "stage"], sort=False)[cols].mean().reset_index()
    table["method"] = table["method"].map(method_label)
    return table


def show_result(result: audit.ClaimResult, key: str, open_seeds: bool = True) -> None:
    claim = result.claim
    c1, c2 = st.columns([5, 1])
    c1.markdown(f"> {claim.sentence}\n>\n> — {claim.paper}")
    with c2:
        verdict_badge(result.verdict)
        st.caption(f"{result.seeds} seeds")
    if claim.note:
        st.caption(claim.note)
    rows = [dict(p.as_row(), per_seed=p.per_seed) for p in result.parts if not p.missing]
    if rows:
        views.chart(figures.claim_parts(rows, height=320 if len(rows) <= 4 else None), key=f"{key}_parts")
        st.caption("Each grey line is one seed: its value for the method on the left and on the right (a line "
                   "sloping the wrong way is a seed where the paper's ordering failed). Diamonds: the mean over "
                   "seeds with its 95% confidence interval.")
    st.dataframe(parts_table(result), hide_index=True, width="stretch",
                 column_config={"p": st.column_config.NumberColumn("p (paired t-test)", format="%.3g"),
                                "claimed": st.column_config.TextColumn(width="large")})
    for p in result.parts:
        if p.per_stage:
            st.caption(f"{p.part.text}: per stage")
            st.dataframe(pd.DataFrame(p.per_stage), hide_index=True, width="stretch",
                         column_config={"p_value": st.column_config.NumberColumn(format="%.3g"),
                                        "mean_difference": st.column_config.NumberColumn(format="%.4f")})
    with st.expander("Every metric, mean over seeds, per method and stage"):
        table = metric_table(result)
        st.dataframe(table, hide_index=True, width="stretch")
        for name in result.claim.metrics:
            if name in cm.METRICS:
                what, scale = cm.METRICS[name]
                st.caption(f"**{name}**: {what} ({scale}).")
    if open_seeds:
        open_seed_control(result, key)


def open_seed_control(result: audit.ClaimResult, key: str) -> None:
    """Open one seed of the audit in every view (its records are an ordinary saved run)."""
    try:
        spec = Experiment.open(result.run_dir).spec
    except Exception as e:  # a folder removed meanwhile
        st.caption(f"The audit's runs cannot be opened: {e}")
        return
    trials = [t for t in store.stored_trials(result.run_dir) if t < result.seeds]
    if not trials:
        return
    c1, c2 = st.columns([1, 3])
    trial = c1.selectbox("Seed", trials, key=f"{key}_seed", format_func=lambda t: f"seed {spec.trial_seed(t)}")
    if c2.button("Open this seed in every view", icon=":material/open_in_new:", key=f"{key}_open"):
        records = store.load_trial_records(result.run_dir, trial, [m for m in spec.methods if m in result.claim.methods]
                                           or spec.methods)
        source_key = f"audit:{result.run_dir.name}:trial{trial}"
        open_source(Source.from_records(source_key, f"Audit {result.claim.name}, seed {spec.trial_seed(trial)}",
                                        records, config=spec.trial_config(trial, spec.methods[0])), select=True)
        st.success(f"Opened seed {spec.trial_seed(trial)}: the view pages now show it.")
    links = st.columns(5)
    for col, (page, label) in zip(links, (("pages/discriminator.py", "Discriminator"), ("pages/loss.py", "Loss vs likelihood"),
                                          ("pages/class_balance.py", "Class balance"),
                                          ("pages/feature_map.py", "Feature map"),
                                          ("pages/learning_curves.py", "Learning curves"))):
        col.page_link(page, label=label, icon=":material/arrow_forward:")


def sweep_section(claim: audit.Claim, sweep_frame: pd.DataFrame, key: str) -> None:
    table = audit.sweep_table(sweep_frame)
    parts = [c for c in table.columns if c not in ("field", "value", "claim")]
    short = table.rename(columns={p: f"part {i + 1}" for i, p in enumerate(parts)})
    views.chart(figures.sweep_heatmap(short), key=f"{key}_sweep")
    st.dataframe(short, hide_index=True, width="stretch")
    st.caption(" · ".join(f"**part {i + 1}**: {p}" for i, p in enumerate(parts)))


# -- background audits ----------------------------------------------------------------------------------------------
@st.cache_resource
def processes() -> dict:
    """Audits this server started: key -> Popen."""
    return {}


def log_file(key: str) -> Path:
    return audit.audits_dir() / ".logs" / f"{key}.log"


def start(key: str, claim: str, seeds: int, overrides: dict, sweeps: dict | None = None):
    import json

    cmd = [sys.executable, "-m", "tavaal_core", "claims", "--claim", claim, "--seeds", str(seeds), "--quiet",
           "--threads", "1", "--to", str(audit.audits_dir() / "results")]
    for name, value in overrides.items():
        cmd += ["--set", f"{name}={json.dumps(value)}"]
    for name, values in (sweeps or {}).items():
        cmd += ["--sweep", f"{name}=" + ",".join(json.dumps(v) for v in values)]
    processes()[key] = launch(cmd, log_file(key))


def running(key: str) -> bool:
    proc = processes().get(key)
    return proc is not None and proc.poll() is None


def failure(key: str) -> str | None:
    """The last line of a finished audit process's log when it failed."""
    proc = processes().get(key)
    if proc is None or proc.poll() in (None, 0):
        return None
    path = log_file(key)
    lines = path.read_text(errors="replace").strip().splitlines() if path.is_file() else []
    return lines[-1] if lines else f"exit code {proc.returncode}"


def progress_of(specs: list) -> tuple[int, int]:
    """(done, total) stages over the audit folders of ``specs`` (each spec's own number of seeds)."""
    done = total = 0
    for spec in specs:
        run_dir = audit.audit_dir_for(spec)
        total += len(spec.methods) * spec.trials * spec.stages
        if store.is_run_dir(run_dir):
            done += audit.trials_done(run_dir, spec, spec.trials)
    return done, total


# -- "Audit this run" (Saved runs page) -------------------------------------------------------------------------------
def audit_run_panel(run_dir, methods: list[str], key: str = "runs_audit") -> None:
    """Apply a claim's metrics to a saved multi-trial run."""
    usable = [c for c in audit.CLAIMS.values() if set(c.needed_methods()) & set(methods)]
    if not usable:
        st.caption("None of the papers' claims is about this run's methods.")
        return
    complete = [c.name for c in usable if set(c.needed_methods()) <= set(methods)]
    name = st.selectbox("Claim", [c.name for c in usable], key=f"{key}_claim",
                        format_func=lambda n: f"{audit.CLAIMS[n].title}" + ("" if n in complete else " (some methods absent)"))
    if st.button("Audit this run", icon=":material/fact_check:", key=f"{key}_go"):
        try:
            with st.spinner("Measuring every stored stage…"):
                st.session_state[f"{key}_result"] = audit.evaluate(name, run_dir)
        except Exception as e:  # a broken record: say which, no traceback
            st.error(f"Cannot audit this run: {e}")
    result = st.session_state.get(f"{key}_result")
    if result is not None and result.claim.name == name and Path(result.run_dir) == Path(run_dir):
        show_result(result, key=f"{key}_{name}", open_seeds=False)
