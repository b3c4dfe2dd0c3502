"""The Saved runs page's parts: the new-run form, the live run list, and one run's detail (state and repair,
learning curves and tests, units, opening a trial in every view, audit, export, environment, delete).
The page (``pages/runs.py``) lays them out; the processes it starts are ``launcher``'s."""
from __future__ import annotations

import time

import streamlit as st

from tavaal_core import available_methods, figures, statistics, store
from tavaal_core.errors import TavaalError
from tavaal_core.experiment import Experiment, stop
from tavaal_core.export import export_run
from tavaal_core.models.task import missing_imagenet_weights
from tavaal_core.presets import available_presets, load_preset

from . import launcher
from . import units as unit_views
from . import views
from .source import Source, open_source

STATE_ICONS = {"running": ":material/autorenew:", "finished": ":material/check_circle:",
               "failed": ":material/error:", "interrupted": ":material/pause_circle:",
               "created": ":material/schedule:", "broken": ":material/broken_image:"}


@st.cache_data(max_entries=64, show_spinner="Checking the run's records…")
def _damaged_records(path: str, signature: tuple) -> list[tuple[str, str]]:
    """(file, what is wrong) for each damaged or missing record of the run; recomputed only when a record
    file changes (``signature``). Reads every record once (checksums)."""
    try:
        return [(str(p.path.relative_to(path)), p.reason) for p in store.check_records(path)]
    except TavaalError as e:  # the spec itself is unreadable: the run is listed as broken
        return [("config.json", str(e))]


# -- start a new run -------------------------------------------------------------------------------------------
def show_estimate(where, preset, preset_name: str, methods, trials: int, stages: int) -> None:
    """How long the chosen run would take here: at once for the small models (a probe of a second or two,
    then cached); on request for ResNet-18, whose probe on a CPU takes about a minute."""
    from tavaal_core.estimate import estimate_spec

    if not methods:
        return
    spec = preset.with_(methods=tuple(methods), trials=trials, stages=stages)
    key = f"runs_estimate_{preset_name}"
    small = spec.config.resolve().model in ("mlp", "cnn")
    if not small and not st.session_state.get(key):
        if st.button("Estimate the run time", key=f"{key}_button", help="Measures this machine's speed with the "
                     "preset's models for a minute (once; the result is cached)."):
            st.session_state[key] = True
            st.rerun()
        return
    try:
        with st.spinner("Measuring this machine's speed (once, cached)..."):
            estimate = estimate_spec(spec)
    except TavaalError as e:
        where.caption(f"No estimate: {e}")
        return
    where.info(f"Estimated run time: {estimate.describe()}.", icon=":material/timer:")


def new_run_form() -> None:
    """A preset, its methods, trials, stages and a run name; started as a separate process."""
    with st.expander("Start a new run", icon=":material/play_arrow:", expanded=not store.list_runs(launcher.runs_dir())):
        presets = available_presets()
        preset_name = st.selectbox("Preset", presets,
                                   index=presets.index("digits_demo") if "digits_demo" in presets else 0,
                                   key="runs_preset")
        try:
            preset = load_preset(preset_name)
        except TavaalError as e:
            st.error(str(e))
            return
        st.caption(preset.description)
        with st.form("new_run"):
            # widgets keyed by preset: choosing another preset shows that preset's methods, trials and stages
            methods = st.multiselect("Methods", available_methods(), default=list(preset.methods),
                                     key=f"runs_methods_{preset_name}")
            c1, c2, c3 = st.columns(3)
            trials = c1.number_input("Trials", min_value=1, max_value=100, value=preset.trials, step=1,
                                     key=f"runs_trials_{preset_name}")
            stages = c2.number_input("Stages", min_value=1, max_value=100, value=preset.config.stages, step=1,
                                     key=f"runs_stages_{preset_name}")
            name_key = f"runs_name_{preset_name}_{st.session_state.get('runs_started', 0)}"
            name = c3.text_input("Run name", value=f"{preset_name}-{time.strftime('%Y%m%d-%H%M%S')}", key=name_key)
            weights_missing = missing_imagenet_weights(preset.config)
            accept_random = False
            if weights_missing:
                st.warning(weights_missing, icon=":material/warning:")
                accept_random = st.checkbox("Run from a random initialisation instead (the run records it)",
                                            key=f"runs_random_init_{preset_name}")
            estimate_box = st.empty()
            submitted = st.form_submit_button("Start in the background", type="primary", icon=":material/play_arrow:")
        show_estimate(estimate_box, preset, preset_name, methods, int(trials), int(stages))
        if not submitted:
            return
        try:
            if weights_missing and not accept_random:
                raise TavaalError("pretrained: the ImageNet weights are absent; provide them, or tick "
                                  "'Run from a random initialisation'")
            spec = preset.with_(methods=tuple(methods), trials=int(trials), stages=int(stages))
            launcher.check_new_name(name)
        except TavaalError as e:
            st.error(str(e))
            return
        launcher.start(name, preset_name, spec, pretrained="none" if accept_random else None)
        st.session_state["runs_select_next"] = name  # selected once its folder exists
        st.session_state["runs_started"] = st.session_state.get("runs_started", 0) + 1  # a fresh name next
        st.success(f"Started **{name}** as a separate process; it keeps running if you leave this page.")


def failed_starts() -> None:
    for name, message in list(launcher.failed_starts().items()):
        st.error(f"Run **{name}** did not start: {message}", icon=":material/error:")
        if st.button("Dismiss", key=f"runs_dismiss_{name}"):
            launcher.failed_starts().pop(name, None)
            st.rerun()


# -- the list, live while something runs ---------------------------------------------------------------------------
def runs_or_stop() -> list:
    """The runs on disk (broken ones named at the top); with none, a hint, a wait for the first, and the
    page stops here."""
    runs = store.list_runs(launcher.runs_dir())
    if not runs:
        st.info(f"No runs yet in `{launcher.runs_dir()}`. Start one above, or from a terminal: "
                "`python -m tavaal_core run --preset digits_demo`.", icon=":material/info:")

        @st.fragment(run_every=2.0 if launcher.any_running() else None)
        def wait_for_first_run() -> None:
            if store.list_runs(launcher.runs_dir()) or launcher.any_exited():
                st.rerun(scope="app")

        wait_for_first_run()
        st.stop()
    for run in runs:
        if run.broken:
            st.error(f"**{run.name}** cannot be read: {run.error}", icon=STATE_ICONS["broken"])
    return runs


def _running_line(r) -> str:
    where = r.current
    what = (f"{'repairing: ' if where.get('repair') else ''}trial {where.get('trial')} · {where.get('method')} "
            f"· stage {where.get('stage')}: {where.get('phase') or 'starting'} {where.get('message', '')}") \
        if where else "starting"
    if len(r.running) > 1:  # a parallel run: several units at once
        what = f"{len(r.running)} units running ({r.executor})"
    return f"**{r.name}**: {r.done}/{r.total} stages{launcher.eta_text(r.eta_seconds)} · {what}"


def run_list(runs: list) -> None:
    """The table of runs with a progress bar per running one; live (every 2 s) while a run is running or a
    run this server started has not written its folder yet."""

    @st.fragment(run_every=2.0 if any(r.state == "running" for r in runs) or launcher.any_running() else None)
    def live_list() -> None:
        current = store.list_runs(launcher.runs_dir())
        rows = [dict(r.as_row(), progress=r.progress) for r in current]
        st.dataframe(rows, hide_index=True, width="stretch",
                     column_order=["name", "state", "dataset", "methods", "trials", "stages", "progress", "created"],
                     column_config={"progress": st.column_config.ProgressColumn("progress", min_value=0.0,
                                                                                max_value=1.0, format="percent")})
        for r in current:
            if r.state == "running":
                st.progress(r.progress, text=_running_line(r))
        before = {r.name: r.state for r in runs}
        if any(before.get(r.name) == "running" and r.state != "running" for r in current) or \
                len(current) != len(runs) or launcher.any_exited():
            st.rerun(scope="app")  # a run ended or appeared, or a started process exited: redraw around it

    live_list()
    st.button("Refresh", icon=":material/refresh:", key="runs_refresh",
              help="Re-read the run folder (runs started from a terminal appear here too).")


def pick_run(runs: list):
    """The run the user chose (a run just started is chosen once its folder exists)."""
    names = [r.name for r in runs]
    if st.session_state.get("runs_select_next") in names:
        st.session_state["runs_selected"] = st.session_state.pop("runs_select_next")
    if st.session_state.get("runs_selected") not in names:
        st.session_state["runs_selected"] = names[0]
    chosen = st.selectbox("Run", names, key="runs_selected",
                          format_func=lambda n: f"{n} ({next(r.state for r in runs if r.name == n)})")
    run = next(r for r in runs if r.name == chosen)
    st.subheader(run.name)
    if run.broken:
        st.error(run.error, icon=STATE_ICONS["broken"])
    return run


# -- one run ---------------------------------------------------------------------------------------------------
def state_and_actions(run) -> None:
    """What the run is, its damaged records (if any), and Stop / Resume / Repair."""
    st.markdown(f"{run.description or run.dataset} · **{run.state}** · {run.done}/{run.total} stages · "
                f"{run.trials} trial(s) × {run.stages} stages · methods: {', '.join(run.methods)}")
    if run.state == "failed" and run.error:
        st.error(f"The run failed: {run.error}")
    unit_views.settings_table(run)
    damaged = [] if run.state == "running" else _damaged_records(str(run.path), store.records_signature(run.path))
    table_damaged = run.state != "running" and run.done > 0 and store.read_metrics_table(run.path) is None
    if damaged or table_damaged:
        listed = "".join(f"\n- `{name}`: {reason}" for name, reason in damaged[:8])
        more = f"\n- … and {len(damaged) - 8} more" if len(damaged) > 8 else ""
        table = ("\n- `metrics.parquet` is missing or damaged: the curves below are rebuilt from the records"
                 if table_damaged else "")
        st.warning(f"**{len(damaged)} damaged record(s)** in this run.{listed}{more}{table}\n\nRepair recomputes "
                   "them (stages are deterministic, so the run becomes what it was) in a background process, "
                   "with progress above.", icon=":material/build:")
    actions = st.columns(4)
    if run.state == "running":
        if actions[0].button("Stop", icon=":material/stop:", help="Ends the run's process; it can be resumed later."):
            st.toast("Stopping…" if stop(run.path) else "The run's process is not running.")
            time.sleep(1.0)
            st.rerun()
    elif run.done < run.total or damaged or table_damaged:
        label, help_text = ("Repair", "Recomputes the damaged records, and continues any unfinished stage.") \
            if damaged or table_damaged else ("Resume", "Continues at the last finished stage.")
        if actions[0].button(label, icon=":material/build:" if label == "Repair" else ":material/play_arrow:",
                             help=help_text, key="runs_resume"):
            launcher.resume(run)
            time.sleep(1.0)
            st.rerun()


def load_metrics(run):
    """The run's metrics table, or None (the error shown) when it cannot be read."""
    try:
        return store.load_metrics(run.path)
    except TavaalError as e:
        st.error(str(e))
        return None


def curves_and_tests(run, metrics) -> None:
    """Learning curves over trials, the numbers behind them and the paired tests between methods."""
    if metrics is None:
        return
    if not len(metrics):
        st.caption("No finished stage yet.")
        return
    curves = statistics.learning_curve_frame(metrics, methods=run.methods)
    views.explain("curves")
    title = f"{run.name}: mean over trials, a line per method and setting" if run.settings \
        else f"{run.name}: mean ± std over trials"
    relative = views.improvement_choice(curves, key="runs_curve_gain")
    views.chart(figures.learning_curves(curves, relative=relative, title=title), key="runs_curves")
    if curves["trials"].max() < 2:
        st.caption("One trial so far: std bands and p-values need at least two.")
    metric = statistics.metric_label(statistics.curve_metric(curves))
    with st.expander(f"Numbers: {metric}, improvement over random and paired t-test p-values", expanded=False):
        st.dataframe(statistics.curve_table(curves), hide_index=True, width="stretch",
                     column_config={"p vs random": st.column_config.NumberColumn(format="%.3g")})
        last = int(metrics["stage"].max())
        stage = st.slider("Stage for the pairwise tests", 0, last, last, key="runs_test_stage") if last else 0
        at_setting = metrics
        if statistics.has_settings(metrics):  # the methods are compared within one setting of a sweep
            groups = {label: rows for _, label, rows in statistics.setting_groups(metrics)}
            at_setting = groups[st.selectbox("Setting for the tests between methods", list(groups),
                                             key="runs_test_setting")]
        st.caption(f"Paired t-test p-values between every two methods at stage {stage} (NaN: fewer than two "
                   "trials, or identical results).")
        st.dataframe(statistics.p_value_matrix(at_setting, stage, methods=run.methods), width="stretch")
        unit_views.setting_tests(metrics, stage)


def units(run) -> None:
    with st.expander("Units: progress and where each runs", icon=":material/lan:",
                     expanded=run.state == "running" or run.state == "failed" or bool(run.settings)):
        unit_views.unit_table(run)


def open_trial(run) -> None:
    """Open one trial (of one sweep setting) in every view of the app."""
    setting = None
    if run.settings:
        setting = st.selectbox("Setting", range(len(run.settings)), key="runs_setting",
                               format_func=lambda k: store.setting_label(run.settings[k]))
    trials = store.stored_trials(run.path, setting=setting)
    if not trials:
        return
    c1, c2 = st.columns([1, 3])
    trial = c1.selectbox("Trial", trials, key="runs_trial")
    if c2.button("Open this trial in every view", icon=":material/open_in_new:", type="primary"):
        try:
            records = store.load_trial_records(run.path, trial, run.methods, setting=setting)
            spec = Experiment.open(run.path).spec
            key = f"run:{run.name}:trial{trial}" + ("" if setting is None else f":setting{setting}")
            title = f"Run {run.name}, trial {trial}" + ("" if setting is None else f", {spec.setting_label(setting)}")
            open_source(Source.from_records(key, title, records,
                                            config=spec.trial_config(trial, spec.methods[0], setting)), select=True)
            st.success(f"Opened trial {trial} of {run.name}: the Feature map, Discriminator, Loss, "
                       "Class balance and Learning curves pages now show it.")
        except TavaalError as e:
            st.error(str(e))


def audit(run) -> None:
    with st.expander("Audit this run against the papers' claims", icon=":material/fact_check:"):
        from .claims_view import audit_run_panel

        audit_run_panel(run.path, run.methods)


def export(run, metrics) -> None:
    with st.expander("Export", icon=":material/download:"):
        if st.button("Write metrics (CSV), selections and scores (JSON)", key="runs_export"):
            try:
                files = export_run(run.path)
                st.success("Wrote " + ", ".join(f"`{f}`" for f in files))
            except TavaalError as e:
                st.error(str(e))
        if metrics is not None and len(metrics):
            st.download_button("Download metrics.csv", metrics.to_csv(index=False), file_name=f"{run.name}-metrics.csv",
                               mime="text/csv", key="runs_download")


def environment_and_log(run) -> None:
    with st.expander("Environment and log", icon=":material/info:"):
        try:
            st.json(store.read_environment(run.path), expanded=False)
        except TavaalError as e:
            st.caption(str(e))
        tail = launcher.log_tail(run.name)
        if tail is not None:
            st.code(tail)


def delete(run) -> None:
    """Delete the run (broken ones too), after a confirmation."""
    with st.expander("Delete this run", icon=":material/delete:"):
        if run.state == "running":
            st.caption("Stop the run before deleting it.")
            return
        sure = st.checkbox(f"Yes, delete `{run.path}` and everything in it", key=f"runs_sure_{run.name}")
        if st.button("Delete", type="secondary", disabled=not sure, icon=":material/delete_forever:",
                     key="runs_delete"):
            try:
                store.delete_run(run.path)
                st.session_state.pop("runs_selected", None)
                st.toast(f"Deleted {run.name}")
                st.rerun()
            except (TavaalError, OSError) as e:
                st.error(str(e))
