"""The Saved runs page's view of a run's units (setting x trial x method) and of a sweep's settings: who
runs what where, and how far each unit is. Reads ``store.unit_progress``; computes nothing."""
from __future__ import annotations

import pandas as pd
import streamlit as st

from tavaal_core import statistics, store
from tavaal_core.errors import TavaalError
from tavaal_core.strategies import method_label

STATES = ("done", "running", "failed", "waiting")


def settings_table(run: store.RunInfo) -> None:
    """A sweep's settings: one row per setting, one column per swept field."""
    if not run.settings:
        return
    st.markdown(f"**Sweep**: {len(run.settings)} settings, every combination of "
                + "; ".join(f"`{field}` ∈ {{{', '.join(map(str, values))}}}" for field, values in run.sweep.items())
                + f" — each run for every method and trial ({len(run.settings)} × {len(run.methods)} × "
                  f"{run.trials} units).")
    rows = [{"setting": k, **values} for k, values in enumerate(run.settings)]
    st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch")


def _summary(rows: list[dict]) -> str:
    counts = {state: sum(r["state"] == state for r in rows) for state in STATES}
    return " · ".join(f"{n} {state}" for state, n in counts.items() if n)


def unit_table(run: store.RunInfo, key: str = "runs_units") -> None:
    """Per-unit progress (done / running / failed / waiting, stages, current phase, where it runs), live
    every 2 s while the run runs."""

    @st.fragment(run_every=2.0 if run.state == "running" else None)
    def table() -> None:
        try:
            rows = store.unit_progress(run.path)
        except TavaalError as e:
            st.caption(f"Unit progress unavailable: {e}")
            return
        how = f" · {run.executor}" if run.executor else ""
        st.caption(f"{len(rows)} units (setting × trial × method): {_summary(rows)}{how}")
        # the setting by its values only (the settings table above names the fields), to keep the table narrow
        short = {k: ", ".join(str(v) for v in values.values()) for k, values in enumerate(run.settings)}
        frame = pd.DataFrame([{
            "setting": short.get(r["setting"], ""), "trial": r["trial"], "method": method_label(r["method"]),
            "state": r["state"], "progress": r["done"] / r["stages"] if r["stages"] else 0.0,
            "stages": f"{r['done']}/{r['stages']}",
            "now": (f"stage {r['stage']}: {r['phase']} {100 * r['fraction']:.0f}%" if r["state"] == "running" else ""),
            "where": r["where"], "error": r["error"],
        } for r in rows])
        if not run.settings:
            frame = frame.drop(columns=["setting"])
        st.dataframe(frame, hide_index=True, width="stretch", key=key,
                     column_config={"progress": st.column_config.ProgressColumn("progress", min_value=0.0,
                                                                                max_value=1.0, format="percent")})

    table()


def setting_tests(metrics: pd.DataFrame, stage: int) -> None:
    """A sweep's settings against each other at one stage, per method (paired by trial)."""
    tests = statistics.setting_tests(metrics, stage=stage)
    if tests.empty:
        return
    st.caption(f"Settings against each other at stage {stage}, per method: mean accuracy difference (a − b, "
               "points) and the paired t-test p-value over trials (NaN: fewer than two trials, or identical results).")
    st.dataframe(pd.DataFrame({
        "method": tests["method"].map(method_label), "setting a": tests["setting_a"], "setting b": tests["setting_b"],
        "a − b (points)": (100 * tests["mean_difference"]).round(2), "p": tests["p_value"], "trials": tests["trials"],
    }), hide_index=True, width="stretch", column_config={"p": st.column_config.NumberColumn(format="%.3g")})
