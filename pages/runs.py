"""Saved runs: experiments on disk (the run store). List them, follow a running one live, start a new one
in the background, open a trial in every view, see learning curves over trials, export or delete.

Runs live in ``$TAVAAL_RUNS_DIR`` (default ``runs/``); ``python -m tavaal_core run`` writes there too."""
import streamlit as st

from explorer_ui import launcher, runs_view

st.title("Saved runs")
st.caption(f"Multi-trial experiments on disk in `{launcher.runs_dir().resolve()}`: the same runs `python -m tavaal_core "
           "run` writes. Trials share their seed across methods, so every method of a trial starts from the same labels.")
launcher.reap()

runs_view.new_run_form()
runs_view.failed_starts()
runs = runs_view.runs_or_stop()
runs_view.run_list(runs)

run = runs_view.pick_run(runs)
if not run.broken:
    runs_view.state_and_actions(run)
    metrics = runs_view.load_metrics(run)
    runs_view.curves_and_tests(run, metrics)
    runs_view.units(run)
    runs_view.open_trial(run)
    runs_view.audit(run)
    runs_view.export(run, metrics)
    runs_view.environment_and_log(run)
runs_view.delete(run)
