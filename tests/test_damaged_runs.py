"""Damaged and foreign run folders (issue #9, items 6-10): a finished run is damaged in each way a disk, a
killed process or a careless hand can damage it; open / export / summary / resume then either repair it
(resume recomputes the damaged stages, and the records equal the undamaged run's) or refuse it with one
line naming the file. Nothing outside a run folder is ever read or written."""
import json
import os
import shutil
import subprocess
import sys
import time

import numpy as np
import pytest

from tavaal_core import ExperimentConfig, store
from tavaal_core.cli import main
from tavaal_core.experiment import Experiment, ExperimentSpec

METHODS = ("random", "lloss")
TRIALS, STAGES = 2, 3


@pytest.fixture(scope="module")
def pristine(tmp_path_factory):
    """A finished run (two methods, two trials, three stages) that the tests copy and damage."""
    root = tmp_path_factory.mktemp("pristine")
    config = ExperimentConfig(dataset="moons", stages=STAGES, task_epochs=15, seed=3, analysis_size=60, device="cpu")
    run = Experiment.create(ExperimentSpec(config, methods=METHODS, trials=TRIALS), root, "run")
    assert run.run()["state"] == "finished"
    return run.run_dir


@pytest.fixture
def damaged(pristine, tmp_path):
    runs = tmp_path / "runs"
    runs.mkdir()
    shutil.copytree(pristine, runs / "run")
    return runs / "run"


def record_files(run_dir, method="lloss", trial=1, stage=1):
    return store.record_paths(run_dir, method, trial, stage)


def assert_same_records(run_dir, pristine):
    for trial in range(TRIALS):
        for method in METHODS:
            for stage in range(STAGES):
                a = store.load_record(pristine, method, trial, stage)
                b = store.load_record(run_dir, method, trial, stage)
                sa, aa = a.split()
                sb, ab = b.split()
                sa.pop("timings"), sb.pop("timings")  # wall-clock seconds differ between computations
                aa.pop("task_loss_history", None), ab.pop("task_loss_history", None)
                assert sa == sb, (method, trial, stage)
                for key in aa:
                    np.testing.assert_array_equal(aa[key], ab[key], err_msg=f"{method} {trial} {stage} {key}")


def cli(capsys, *args):
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def one_line_naming(err, name):
    lines = err.strip().splitlines()
    return len(lines) == 1 and name in lines[0] and "Traceback" not in err


# -- 6 and 7. damaged, missing, edited or swapped stage records: refused when read, recomputed on resume ---
def truncate_json(run_dir):
    path, _ = record_files(run_dir)
    path.write_text(path.read_text()[:40])
    return path


def empty_json(run_dir):
    path, _ = record_files(run_dir, "random", 0, 0)
    path.write_text("")
    return path


def delete_json(run_dir):
    path, _ = record_files(run_dir, "lloss", 0, 1)  # a middle stage: later ones exist
    path.unlink()
    return path


def edit_json(run_dir):
    path, _ = record_files(run_dir, "lloss", 0, 2)
    data = json.loads(path.read_text())
    data["accuracy"] = 0.999  # valid JSON, wrong content
    path.write_text(json.dumps(data))
    return path


def truncate_npz(run_dir):
    _, path = record_files(run_dir, "lloss", 1, 2)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def delete_npz(run_dir):
    _, path = record_files(run_dir, "random", 1, 0)
    path.unlink()
    return path


def npz_from_another_method(run_dir):
    _, path = record_files(run_dir, "lloss", 0, 1)
    shutil.copyfile(record_files(run_dir, "random", 0, 1)[1], path)  # loads fine: only a checksum tells
    return path


def record_from_another_trial(run_dir):
    json_path, npz_path = record_files(run_dir, "random", 1, 1)
    other_json, other_npz = record_files(run_dir, "random", 0, 1)
    shutil.copyfile(other_json, json_path)
    shutil.copyfile(other_npz, npz_path)
    return json_path


RECORD_DAMAGE = [truncate_json, empty_json, delete_json, edit_json, truncate_npz, delete_npz,
                 npz_from_another_method, record_from_another_trial]


@pytest.mark.parametrize("damage", RECORD_DAMAGE, ids=[d.__name__ for d in RECORD_DAMAGE])
def test_a_damaged_record_is_refused_naming_it_then_resume_recomputes_it(damaged, pristine, capsys, damage):
    path = damage(damaged)
    name = str(path.relative_to(damaged))
    # open: the trial's records, through the app's loader
    trial = int(path.parent.name[len("trial"):])
    with pytest.raises(store.StoreError) as err:
        store.load_trial_records(damaged, trial)
    assert name in str(err.value) and "resume" in str(err.value)
    # export: refused, one line naming the file, and nothing half-written
    code, _, err = cli(capsys, "export", damaged, "--to", damaged.parent / "export")
    assert code == 2 and one_line_naming(err, name), err
    assert not (damaged.parent / "export").exists()
    code, out, err = cli(capsys, "summary", damaged)  # the metrics table is intact: the curves still show
    assert code == 0 and "lloss" in out, err
    # the page's check finds it
    found = store.check_records(damaged)
    assert [str(p.path.relative_to(damaged)) for p in found] == [name]
    # resume: recomputes exactly that stage, says so, and the run equals the undamaged one
    code, out, err = cli(capsys, "run", "--resume", damaged, "--quiet")
    assert code == 0, err
    assert f"recomputing {name}" in err and "recomputed 1 damaged record" in err
    status = store.read_status(damaged)
    assert status["state"] == "finished" and len(status["repaired"]) == 1 and name in status["repaired"][0]
    assert_same_records(damaged, pristine)
    assert store.check_records(damaged) == []
    code, _, err = cli(capsys, "export", damaged, "--to", damaged.parent / "export")
    assert code == 0, err


def test_only_the_damaged_stage_is_recomputed_and_a_finished_method_is_rechecked(damaged, pristine, monkeypatch):
    from tavaal_core.engine import ActiveLearner

    truncate_npz(damaged)  # lloss, trial 1, stage 2: a method that had finished
    steps = []
    original = ActiveLearner.step
    monkeypatch.setattr(ActiveLearner, "step", lambda self, *a, **k: steps.append(self.stage) or original(self, *a, **k))
    events = []
    Experiment.open(damaged).run(events.append)
    assert steps == [2]
    repairs = [e for e in events if e.kind == "repair"]
    assert [(e.trial, e.method, e.stage) for e in repairs] == [(1, "lloss", 2)]
    assert_same_records(damaged, pristine)


# -- 8. metrics.parquet is rebuilt from the records ---------------------------------------------------------
@pytest.mark.parametrize("how", ["garbage", "truncated", "missing", "wrong rows"])
def test_a_damaged_metrics_table_is_rebuilt_from_the_records(damaged, pristine, capsys, how):
    path = damaged / "metrics.parquet"
    expected = store.load_metrics(pristine)
    if how == "garbage":
        path.write_bytes(b"PAR1 not a table")
    elif how == "truncated":
        path.write_bytes(path.read_bytes()[:100])
    elif how == "missing":
        path.unlink()
    else:
        store.write_metrics(damaged, store.metrics_rows_from_records(damaged)[:-1] + [
            dict(store.metrics_rows_from_records(damaged)[0], stage=7)])
    frame = store.load_metrics(damaged)
    assert frame[["trial", "method", "stage", "accuracy"]].equals(expected[["trial", "method", "stage", "accuracy"]])
    code, out, err = cli(capsys, "summary", damaged)
    assert code == 0 and "lloss" in out, err
    code, _, err = cli(capsys, "export", damaged, "--to", damaged.parent / "export")
    assert code == 0, err
    code, _, err = cli(capsys, "run", "--resume", damaged, "--quiet")  # rewrites the table
    assert code == 0, err
    assert store.read_metrics_table(damaged)[["trial", "method", "stage", "accuracy"]].equals(
        expected[["trial", "method", "stage", "accuracy"]])


# -- 9. the lock is the truth; status.json is only a report ----------------------------------------------------
def test_a_stale_status_naming_a_live_process_does_not_block_resume(damaged, capsys):
    stranger = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        store.update_status(damaged, state="running", pid=stranger.pid)  # no process holds the lock
        (damaged / ".lock").unlink(missing_ok=True)
        assert store.run_info(damaged).state == "interrupted"
        truncate_json(damaged)
        code, _, err = cli(capsys, "run", "--resume", damaged, "--quiet")
        assert code == 0, err
        assert stranger.poll() is None
    finally:
        stranger.kill()
        stranger.wait()


def test_a_corrupt_status_or_environment_is_rewritten_on_resume(damaged, pristine, capsys):
    (damaged / "status.json").write_text('{"state": "runn')
    (damaged / "environment.json").write_bytes(b"\x00")
    info = store.run_info(damaged)
    assert not info.broken and info.state == "finished" and "status.json" in info.error
    code, _, err = cli(capsys, "run", "--resume", damaged, "--quiet")
    assert code == 0, err
    assert store.read_status(damaged)["state"] == "finished"
    assert "rewritten" in store.read_environment(damaged)
    assert_same_records(damaged, pristine)


# -- 10. run folders are not trusted as written ---------------------------------------------------------------
def _edit_spec(run_dir, **changes):
    path = run_dir / "config.json"
    data = json.loads(path.read_text())
    data.update(changes)
    path.write_text(json.dumps(data))


@pytest.mark.parametrize("changes, field", [
    (dict(methods=["../../../tmp/x"]), "methods"),
    (dict(methods=["random", "../../outside"]), "methods"),
    (dict(trials=200000), "trials"),
    (dict(trials=10**9), "trials"),
    (dict(trials="2"), "trials"),
    (dict(config={"dataset": "moons", "stages": 3, "seed": 2**63}), "seed"),
    (dict(config={"dataset": "moons", "stages": 3, "model": "resnet18"}), "model"),
    (dict(config={"dataset": "moons", "stages": 3, "class_counts": "12"}), "class_counts"),
    (dict(preset="../../x"), "preset"),
])
def test_a_crafted_config_is_refused_like_a_new_one(damaged, capsys, tmp_path, changes, field):
    bait = tmp_path / "tmp" / "x" / "trial0"
    bait.mkdir(parents=True)
    (bait / "stage0.json").write_text("{}")  # what ../../../tmp/x would have read
    _edit_spec(damaged, **changes)
    started = time.perf_counter()
    runs = {r.name: r for r in store.list_runs(damaged.parent)}
    assert time.perf_counter() - started < 5  # trials: 10**9 is refused, not counted
    assert runs["run"].broken and "config.json" in runs["run"].error and field in runs["run"].error
    for args in (["export", damaged, "--to", tmp_path / "export"], ["summary", damaged],
                 ["run", "--resume", damaged, "--quiet"]):
        code, _, err = cli(capsys, *args)
        assert code == 2 and one_line_naming(err, "config.json") and field in err, (args, err)
    with pytest.raises(store.StoreError, match="config.json"):
        Experiment.open(damaged)
    with pytest.raises(store.StoreError):
        store.load_record(damaged, "../../../tmp/x", 0, 0)
    assert not (tmp_path / "export").exists()


def test_a_symlinked_run_folder_is_refused_and_listed_as_broken(damaged, tmp_path, capsys):
    outside = tmp_path / "elsewhere"
    damaged.rename(outside)
    link = tmp_path / "runs" / "run"
    link.symlink_to(outside, target_is_directory=True)
    runs = store.list_runs(tmp_path / "runs")
    assert len(runs) == 1 and runs[0].broken and "symbolic link" in runs[0].error
    for args in (["export", link], ["summary", link], ["run", "--resume", link, "--quiet"]):
        code, _, err = cli(capsys, *args)
        assert code == 2 and one_line_naming(err, "symbolic link"), (args, err)
    assert not (outside / "export").exists()
    with pytest.raises(store.StoreError, match="symbolic link"):
        store.delete_run(link)
    assert outside.is_dir()


def test_a_symlink_inside_a_run_folder_that_leaves_it_is_never_followed(damaged, tmp_path, capsys):
    outside = tmp_path / "outside"
    shutil.move(damaged / "records" / "lloss", outside)
    (damaged / "records" / "lloss").symlink_to(outside, target_is_directory=True)
    before = sorted(str(p) for p in outside.rglob("*"))
    with pytest.raises(store.StoreError, match="outside its run folder"):
        store.load_record(damaged, "lloss", 0, 0)
    code, _, err = cli(capsys, "export", damaged, "--to", tmp_path / "export")
    assert code == 2 and one_line_naming(err, "outside its run folder"), err
    code, _, err = cli(capsys, "run", "--resume", damaged, "--quiet")
    assert code == 2 and one_line_naming(err, "outside its run folder"), err
    assert sorted(str(p) for p in outside.rglob("*")) == before  # nothing written there
    (damaged / "export").symlink_to(tmp_path, target_is_directory=True)
    (damaged / "records" / "lloss").unlink()
    shutil.move(outside, damaged / "records" / "lloss")
    code, _, err = cli(capsys, "export", damaged)
    assert code == 2 and one_line_naming(err, "outside its run folder"), err
