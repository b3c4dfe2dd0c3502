"""Sweeps and executors (issue 13): a sweep's settings are units with their own folders; sequential, local
worker processes and a local Ray instance give the same records, exactly; a worker killed mid-run fails
only its unit, and --resume reruns exactly the unfinished units to the uninterrupted result; statistics,
exports and the Saved runs page know each unit's setting."""
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tavaal_core import ConfigError, ExperimentConfig, statistics, store
from tavaal_core.cli import main
from tavaal_core.export import export_run
from tavaal_core.executors import LocalExecutor, RayExecutor
from tavaal_core.experiment import Experiment, ExperimentSpec, UnitsFailed
from tavaal_core.presets import spec_from_mapping
from tavaal_core.store import StoreError, Unit

REPO = Path(__file__).resolve().parent.parent


def sweep_spec():
    """2 methods x 2 trials x 2 settings of TA-VAAL's ranking input, 2 stages each: 8 units."""
    config = ExperimentConfig(dataset="moons", stages=2, task_epochs=10, vae_epochs=5, seed=3, device="cpu",
                              analysis_size=100)
    return ExperimentSpec(config, methods=("random", "tavaal"), trials=2,
                          sweep={"discriminator_rank_input": ["sigmoid", "raw"]})


def assert_same_runs(dir_a, dir_b, spec):
    """Every record of every unit equal, arrays and scalars, except the wall-clock timings."""
    for unit in spec.units():
        a = store.load_records(dir_a, unit.method, unit.trial, setting=unit.setting)
        b = store.load_records(dir_b, unit.method, unit.trial, setting=unit.setting)
        assert len(a) == len(b) == spec.stages, unit
        for x, y in zip(a, b):
            sx, ax = x.split()
            sy, ay = y.split()
            sx.pop("timings"), sy.pop("timings")
            assert sx == sy, unit
            assert ax.keys() == ay.keys()
            for key in ax:
                np.testing.assert_array_equal(ax[key], ay[key], err_msg=f"{unit.key} stage {x.stage}: {key}")
    ma, mb = store.load_metrics(dir_a), store.load_metrics(dir_b)
    keep = [c for c in ma.columns if not c.startswith("time_")]
    pd.testing.assert_frame_equal(ma[keep], mb[keep])


@pytest.fixture(scope="module")
def sequential_run(tmp_path_factory):
    spec = sweep_spec()
    run = Experiment.create(spec, tmp_path_factory.mktemp("sequential"), "seq")
    assert run.run()["state"] == "finished"
    return run.run_dir


# -- the spec ----------------------------------------------------------------------------------------------------
def test_a_sweep_is_every_combination_and_round_trips():
    spec = spec_from_mapping({"dataset": "moons", "alpha": [0, 0.5, 1, 2], "methods": "random,tavaal", "trials": 2,
                              "sweep": {"discriminator_rank_input": ["sigmoid", "raw"]}})
    assert spec.sweep == {"discriminator_rank_input": ("sigmoid", "raw"), "alpha": (0, 0.5, 1, 2)}
    assert len(spec.settings) == 8 and spec.settings[1] == {"discriminator_rank_input": "sigmoid", "alpha": 0.5}
    assert spec.setting_label(1) == "discriminator_rank_input=sigmoid, alpha=0.5"
    assert len(spec.units()) == 8 * 2 * 2 and spec.total_stages == 32 * spec.stages
    assert spec.unit_config(Unit(7, 1, "tavaal")).alpha == 2 and spec.unit_config(Unit(7, 1, "tavaal")).seed == 1
    assert ExperimentSpec.from_dict(json.loads(json.dumps(spec.to_dict()))) == spec
    # a list for a list-valued field is its value, not a sweep
    assert spec_from_mapping({"dataset": "moons", "class_counts": [250, 50], "methods": ["random"]}).sweep == {}


@pytest.mark.parametrize("sweep, field", [
    ({"alhpa": [1, 2]}, "sweep.alhpa"),
    ({"seed": [1, 2]}, "sweep.seed"),
    ({"method": ["random"]}, "sweep.method"),
    ({"alpha": []}, "sweep.alpha"),
    ({"alpha": 0.5}, "sweep.alpha"),
    ({"alpha": [1, 1]}, "sweep.alpha"),
    ({"alpha": [1, -1]}, "sweep.alpha"),
    ({"discriminator_rank_input": ["sigmoid", "tanh"]}, "sweep.discriminator_rank_input"),
])
def test_a_bad_sweep_names_the_field(sweep, field):
    with pytest.raises(ConfigError) as err:
        spec_from_mapping({"dataset": "moons", "methods": ["random", "bald"], "sweep": sweep})
    assert err.value.field == field, str(err.value)


def test_a_setting_that_does_not_fit_the_pool_is_refused_before_a_folder_is_made(tmp_path):
    spec = sweep_spec().with_(sweep={"budget": [10, 300]})
    with pytest.raises(ConfigError) as err:
        Experiment.create(spec, tmp_path, "x")
    assert err.value.field == "sweep.budget" and "budget=300" in str(err.value)
    assert not (tmp_path / "x").exists()


# -- the same records, however they ran --------------------------------------------------------------------------
def test_sequential_local_workers_and_ray_give_identical_records(tmp_path, sequential_run):
    ray = pytest.importorskip("ray")  # in requirements-dev.txt; an optional dependency for users
    spec = sweep_spec()
    local = Experiment.create(spec, tmp_path, "local")
    events = []
    status = local.run(events.append, executor=LocalExecutor(workers=2))
    assert status["state"] == "finished" and status["executor"] == "local (2 worker processes)"
    assert sum(e.kind == "stage" for e in events) == 16 and sum(e.kind == "run" for e in events) == 8
    assert_same_runs(sequential_run, local.run_dir, spec)

    on_ray = Experiment.create(spec, tmp_path, "ray")
    assert on_ray.run(executor=RayExecutor(num_cpus=2))["state"] == "finished"
    assert not ray.is_initialized()  # the instance it started is shut down
    assert_same_runs(sequential_run, on_ray.run_dir, spec)

    # every unit has its own folder and says where it ran
    units = store.unit_progress(on_ray.run_dir)
    assert len(units) == 8 and {u["state"] for u in units} == {"done"}
    assert all("ray node" in u["where"] and "cpu" in u["where"] for u in units)
    assert {u["where"].split(", ")[1] for u in store.unit_progress(local.run_dir)} <= {"local worker 0", "local worker 1"}
    assert json.loads((on_ray.run_dir / "records" / "setting1" / "setting.json").read_text())["values"] == \
        {"discriminator_rank_input": "raw"}


def test_statistics_and_exports_know_the_settings(tmp_path, sequential_run):
    metrics = store.load_metrics(sequential_run)
    assert metrics.groupby("setting_label").size().to_dict() == {"discriminator_rank_input=raw": 8,
                                                                 "discriminator_rank_input=sigmoid": 8}
    curves = statistics.learning_curve_frame(metrics)
    assert len(curves) == 2 * 2 * 2 and list(curves.columns[:2]) == ["setting", "setting_label"]
    random_rows = curves[curves["method"] == "random"]
    assert (random_rows["improvement_mean"] == 0).all()  # random against random under the same setting
    between = statistics.setting_tests(metrics)
    assert len(between) == 2 * 2 and set(between["method"]) == {"random", "tavaal"}
    # random does not read the ranking input: its two settings are identical, trial by trial
    assert (between.loc[between["method"] == "random", "mean_difference"] == 0).all()
    from tavaal_core import figures

    fig = figures.learning_curves(curves)
    names = {t.name for t in fig.data if t.meta and t.meta.get("role") == "mean"}
    assert names == {f"{m} · discriminator_rank_input={v}" for m in ("Random", "TA-VAAL") for v in ("sigmoid", "raw")}

    files = {f.name: f for f in export_run(sequential_run, tmp_path / "export")}
    assert {"metrics.csv", "curves.csv", "setting_tests.csv", "selections.json"} <= set(files)
    selections = json.loads(files["selections.json"].read_text())
    assert selections["discriminator_rank_input=raw"]["tavaal"]["1"]["1"] == \
        store.load_record(sequential_run, "tavaal", 1, 1, setting=1).selected.tolist()


# -- a killed worker ----------------------------------------------------------------------------------------------
def test_a_killed_worker_fails_only_its_unit_and_resume_reruns_exactly_the_unfinished(tmp_path, sequential_run,
                                                                                      monkeypatch):
    import tavaal_core.experiment as experiment_module

    monkeypatch.setenv("TAVAAL_STATUS_INTERVAL", "0")  # workers report every phase, so a kill lands mid-stage
    monkeypatch.setattr(experiment_module, "STATUS_INTERVAL_S", 0.0)
    spec = sweep_spec()
    run = Experiment.create(spec, tmp_path, "killed")
    # the second unit: its worker has more units to take after it, so the kill always lands inside a unit
    # (this one, or on a fast machine the next one the same worker took)
    victim = Unit(0, 0, "tavaal")
    killed, refused = [], []

    def kill_the_victims_worker(event):
        if event.kind in ("run", "phase", "stage") and not killed and \
                (event.setting, event.trial, event.method) == (victim.setting, victim.trial, victim.method):
            info = store.read_unit_status(run.run_dir, victim)
            killed.append(info["pid"])
            os.kill(info["pid"], signal.SIGKILL)
            try:  # meanwhile, a second driver on the same run is refused
                Experiment.open(run.run_dir).run()
            except StoreError as e:
                refused.append(str(e))

    with pytest.raises(UnitsFailed, match="killed by SIGKILL"):
        run.run(kill_the_victims_worker, executor=LocalExecutor(workers=2))
    assert killed and refused and "running" in refused[0]
    status = store.read_status(run.run_dir)
    assert status["state"] == "failed" and "continue with --resume" in status["error"]
    units = {u["unit"]: u for u in store.unit_progress(run.run_dir)}
    failed = {key for key, u in units.items() if u["state"] != "done"}
    assert failed and {units[key]["state"] for key in failed} == {"failed"}
    assert all("SIGKILL" in units[key]["error"] and units[key]["where"] for key in failed)
    assert len(failed) == 1  # the other workers' units all finished, a new worker took the waiting ones
    assert len(store.load_metrics(run.run_dir)) == 16 - (spec.stages - units[next(iter(failed))]["done"])

    events = []
    resumed = Experiment.open(run.run_dir).run(events.append, executor=LocalExecutor(workers=2))
    assert resumed["state"] == "finished" and resumed["sessions"] == 2
    assert {Unit(e.setting, e.trial, e.method).key for e in events if e.kind == "run"} == failed
    assert sum(e.kind == "skip" for e in events) == 7
    assert_same_runs(sequential_run, run.run_dir, spec)
    assert {u["state"] for u in store.unit_progress(run.run_dir)} == {"done"}
    assert not list(run.run_dir.rglob("*.tmp"))


# -- the run store -----------------------------------------------------------------------------------------------
def test_unit_progress_reads_done_running_failed_and_waiting(tmp_path):
    spec = sweep_spec().with_(trials=1, methods=("random",))
    run = Experiment.create(spec, tmp_path, "progress", check=False)
    a, b = spec.units()
    run.runner().run(a)  # setting 0 done
    store.write_unit_status(run.run_dir, b, {"state": "running", "host": "node7", "worker": "local worker 1",
                                             "device": "cpu", "stage": 0, "phase": "task training"})
    rows = {r["unit"]: r for r in store.unit_progress(run.run_dir)}
    assert rows[a.key]["state"] == "done" and rows[a.key]["done"] == 2
    assert rows[b.key]["state"] == "waiting"  # says running, but no driver runs the run
    holder = store.lock_run(run.run_dir)
    try:
        store.update_status(run.run_dir, state="running", pid=os.getpid())
        rows = {r["unit"]: r for r in store.unit_progress(run.run_dir)}
        assert rows[b.key]["state"] == "running" and rows[b.key]["where"] == "node7, local worker 1, cpu"
        assert rows[b.key]["phase"] == "task training" and rows[b.key]["setting_label"] == "discriminator_rank_input=raw"
    finally:
        holder.close()
    store.write_unit_status(run.run_dir, b, {"state": "failed", "error": "RuntimeError: boom"})
    assert {r["unit"]: r for r in store.unit_progress(run.run_dir)}[b.key]["state"] == "failed"


# -- the command line ---------------------------------------------------------------------------------------------
def test_executor_ray_without_ray_says_how_to_install_it(capsys, monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError
    code = main(["run", "--preset", "moons_fig1", "--executor", "ray", "--output", str(tmp_path)])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "pip install 'ray" in err, err
    assert not list(tmp_path.iterdir())  # nothing written


@pytest.mark.parametrize("args, text", [
    (["--sweep", "alpha"], "--sweep"),
    (["--sweep", "alpha=1,2", "--sweep", "alpha=3"], "twice"),
    (["--sweep", "seed=1,2"], "sweep.seed"),
    (["--ray-address", "auto"], "--ray-address"),
    (["--executor", "ray", "--ray-address", "auto", "--workers", "2"], "--workers"),
    (["--executor", "dask"], "--executor"),
])
def test_bad_sweep_and_executor_arguments_exit_2_with_one_line(capsys, tmp_path, args, text):
    code = main(["run", "--preset", "moons_fig1", "--output", str(tmp_path), *args])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and text in err, err


def test_the_core_imports_and_runs_without_ray(tmp_path):
    code = ("import sys; sys.modules['ray'] = None\n"
            "import tavaal_core, tavaal_core.executors, tavaal_core.cli\n"
            "from tavaal_core.cli import main\n"
            f"sys.exit(main(['run', '--preset', 'moons_fig1', '--stages', '1', '--trials', '1', '--methods', 'random',"
            f" '--epochs', '5', '--workers', '1', '--quiet', '--output', {str(tmp_path)!r}]))")
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=300,
                          env=dict(os.environ, PYTHONPATH=str(REPO)))
    assert done.returncode == 0, done.stderr[-2000:]
    assert "sequential" in done.stderr


# -- the Saved runs page --------------------------------------------------------------------------------------------
def test_runs_page_shows_the_sweep_its_units_and_a_curve_per_setting(tmp_path, sequential_run, monkeypatch):
    import shutil

    from streamlit.testing.v1 import AppTest

    root = tmp_path / "runs"
    shutil.copytree(sequential_run, root / "sweep")
    monkeypatch.setenv("TAVAAL_RUNS_DIR", str(root))
    at = AppTest.from_file(str(REPO / "pages" / "runs.py"), default_timeout=120)
    at.session_state["runs_selected"] = "sweep"
    at.run()
    assert not at.exception, at.exception
    assert any("**Sweep**: 2 settings" in m.value and "discriminator_rank_input" in m.value for m in at.markdown)
    frames = [df.value for df in at.dataframe]
    settings = next(f for f in frames if list(f.columns) == ["setting", "discriminator_rank_input"])
    assert settings["discriminator_rank_input"].tolist() == ["sigmoid", "raw"]
    units = next(f for f in frames if "where" in f.columns)
    assert len(units) == 8 and set(units["state"]) == {"done"} and set(units["stages"]) == {"2/2"}
    assert set(units["setting"]) == {"sigmoid", "raw"}
    assert any("8 units" in c.value and "8 done" in c.value for c in at.caption)
    fig = json.loads(at.get("plotly_chart")[0].proto.spec)
    lines = [t["name"] for t in fig["data"] if (t.get("meta") or {}).get("role") == "mean"]
    assert len(lines) == 4 and "TA-VAAL · discriminator_rank_input=raw" in lines
    assert any("Settings against each other" in c.value for c in at.caption)
    # open trial 1 of the second setting in every view
    at.selectbox(key="runs_setting").set_value(1).run()
    next(b for b in at.button if b.label == "Open this trial in every view").click().run()
    assert not at.exception and any("Opened trial" in s.value for s in at.success)


def test_a_killed_driver_takes_its_workers_with_it(tmp_path):
    """SIGKILL on the driver (no chance to clean up): its worker processes end too, so none keeps writing
    into a run that a resumed driver takes over."""
    import time

    spec = {"config": {"dataset": "moons", "stages": 30, "task_epochs": 50, "vae_epochs": 5, "device": "cpu",
                       "analysis_size": 100}, "methods": ["random", "lloss"], "trials": 1}
    (tmp_path / "long.json").write_text(json.dumps(spec))
    driver = subprocess.Popen([sys.executable, "-m", "tavaal_core", "run", "--config", str(tmp_path / "long.json"),
                               "--workers", "2", "--output", str(tmp_path), "--name", "long", "--quiet"],
                              cwd=REPO, env=dict(os.environ, PYTHONPATH=str(REPO)), stderr=subprocess.PIPE)
    run_dir = tmp_path / "long"
    units = [Unit(None, 0, "random"), Unit(None, 0, "lloss")]
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline and not (run_dir.exists() and all(
                store.read_unit_status(run_dir, u).get("state") == "running" for u in units)):
            assert driver.poll() is None, driver.stderr.read().decode()[-2000:]
            time.sleep(0.1)
        pids = [store.read_unit_status(run_dir, u)["pid"] for u in units]
        assert len(set(pids)) == 2 and driver.pid not in pids
        driver.kill()
        driver.wait(30)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and any(store.process_alive(p) for p in pids):
            time.sleep(0.1)
        assert not any(store.process_alive(p) for p in pids), "a worker outlived its driver"
    finally:
        if driver.poll() is None:
            driver.kill()
    assert store.run_info(run_dir).state == "interrupted"
    assert {u["state"] for u in store.unit_progress(run_dir)} == {"waiting"}
