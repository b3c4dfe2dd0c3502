"""The command line: bad arguments exit 2 with one line naming the field; a run killed with SIGKILL in the
middle of a stage resumes (`run --resume`) to exactly the records of an uninterrupted run; list / export /
presets work and a broken run folder does not stop `list`."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from tavaal_core import store
from tavaal_core.cli import main

REPO = Path(__file__).resolve().parent.parent
SMALL = {"config": {"dataset": "moons", "stages": 4, "task_epochs": 150, "vae_epochs": 5, "seed": 5,
                    "device": "cpu", "analysis_size": 100},
         "methods": ["random", "lloss"], "trials": 1, "description": "kill-and-resume test"}


def cli(*args, **kw):
    # status.json on every progress callback, so the test can see the run inside a stage's training
    env = dict(os.environ, PYTHONPATH=str(REPO), TAVAAL_STATUS_INTERVAL="0")
    return subprocess.Popen([sys.executable, "-m", "tavaal_core", *args], cwd=kw.get("cwd", REPO), env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def run_main(capsys, *args):
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def small_config(tmp_path):
    path = tmp_path / "small.json"
    path.write_text(json.dumps(SMALL))
    return path


@pytest.mark.parametrize("args, field", [
    (["run", "--preset", "cifar11"], "preset"),
    (["run", "--preset", "digits_demo", "--methods", "random,magic"], "methods"),
    (["run", "--preset", "digits_demo", "--trials", "-2"], "--trials"),
    (["run", "--preset", "digits_demo", "--trials", "two"], "--trials"),
    (["run", "--preset", "digits_demo", "--stages", "0"], "--stages"),
    (["run", "--preset", "digits_demo", "--device", "tpu"], "device"),
    (["run", "--preset", "digits_demo", "--name", "../escape"], "name"),
    (["run", "--config", "/no/such/file.json"], "config"),
    (["run", "--config", "/no/such/file.txt"], "config"),
    (["run"], "--preset"),
    (["run", "--preset", "digits_demo", "--config", "x.json"], "--config"),
    (["run", "--resume", "/no/such/run"], "/no/such/run"),
    (["export", "/no/such/run"], "/no/such/run"),
    (["fly"], "fly"),
    ([], "command"),
])
def test_bad_arguments_exit_2_with_one_line(capsys, args, field):
    code, out, err = run_main(capsys, *args)
    assert code == 2, (args, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert field in lines[0] and "Traceback" not in err


def test_bad_config_values_name_the_field(capsys, tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"config": {"dataset": "moons", "lr": -1}, "methods": ["random"], "trials": 1}))
    code, _, err = run_main(capsys, "run", "--config", str(bad))
    assert code == 2 and err.count("\n") == 1 and "lr" in err and "> 0" in err
    yml = tmp_path / "bad.yaml"
    yml.write_text("dataset: moons\nmethods: [random]\nbudget: 400\nstages: 5\n")  # too large for the pool
    code, _, err = run_main(capsys, "run", "--config", str(yml), "--output", str(tmp_path / "runs"))
    assert code == 2 and err.count("\n") == 1 and "budget" in err
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())
    broken = tmp_path / "broken.yaml"
    broken.write_text("dataset: [moons\n")
    code, _, err = run_main(capsys, "run", "--config", str(broken))
    assert code == 2 and err.count("\n") == 1 and "not valid YAML" in err
    absent = tmp_path / "absent.json"
    absent.write_text(json.dumps({"config": {"dataset": "medmnist", "dataset_options": {"path": str(tmp_path / "x.npz")}},
                                  "methods": ["random"]}))
    code, _, err = run_main(capsys, "run", "--config", str(absent))
    assert code == 2 and err.count("\n") == 1 and "x.npz" in err


def test_resume_takes_no_other_settings(capsys, tmp_path):
    code, _, err = run_main(capsys, "run", "--resume", str(tmp_path), "--trials", "3")
    assert code == 2 and "--trials" in err and err.count("\n") == 1


def test_the_real_command_exits_2_with_one_line():
    proc = cli("run", "--preset", "digits_demo", "--methods", "random,nope")
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 2
    assert err.strip().splitlines() == [err.strip()] and "methods" in err and "tavaal" in err


def test_presets_command_lists_all(capsys):
    code, out, _ = run_main(capsys, "presets")
    assert code == 0
    for name in ("moons_fig1", "digits_demo", "mnist5k_demo", "digits_imbalanced_x10", "cifar10_tavaal",
                 "cifar10_imbalanced_x10", "cifar10_imbalanced_x100", "cifar100_tavaal", "mnist_scipy22",
                 "chestmnist_scipy22", "shapes_demo", "cityscapes_tavaal", "caltech101_tavaal"):
        assert name in out


def test_segmentation_run_reports_mean_iou(capsys, tmp_path):
    spec = {"config": {"dataset": "shapes", "dataset_options": {"n_train": 120, "n_test": 30, "size": 16},
                       "stages": 1, "task_epochs": 2, "vae_epochs": 1, "initial_size": 16, "budget": 8,
                       "analysis_size": 40, "device": "cpu"},
            "methods": ["random", "tavaal"], "trials": 1}
    path = tmp_path / "shapes.json"
    path.write_text(json.dumps(spec))
    code, _, err = run_main(capsys, "run", "--config", str(path), "--output", str(tmp_path / "runs"), "--name", "s",
                            "--quiet")
    assert code == 0, err
    assert "mean IoU mean +- std" in err
    metrics = store.load_metrics(tmp_path / "runs" / "s")
    assert metrics["mean_iou"].between(0, 1).all() and len(metrics) == 2


def test_offline_paper_presets_exit_2_naming_the_folders(capsys, tmp_path):
    for preset, expected in (("cityscapes_tavaal", "leftImg8bit"), ("caltech101_tavaal", "101_ObjectCategories")):
        code, _, err = run_main(capsys, "run", "--preset", preset, "--output", str(tmp_path), "--device", "cpu")
        assert code == 2 and expected in err and len(err.strip().splitlines()) == 1, err
        assert not any(tmp_path.iterdir())  # nothing half-written


def _wait_for(predicate, timeout, proc=None, what=""):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"process ended before {what}: {proc.communicate()[1][-2000:]}")
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


def test_sigkill_in_the_middle_of_a_stage_then_resume_equals_an_uninterrupted_run(tmp_path, small_config, capsys):
    out = tmp_path / "runs"
    full = cli("run", "--config", str(small_config), "--output", str(out), "--name", "full", "--quiet")
    victim = cli("run", "--config", str(small_config), "--output", str(out), "--name", "killed", "--quiet")
    killed = out / "killed"
    try:
        # wait until stage 1 of the first method is on disk and stage 2 is being trained, then SIGKILL
        _wait_for(lambda: (killed / "records" / "random" / "trial0" / "stage1.json").exists(), 180, victim, "stage 1")

        def training_stage_2():
            # the unit's own progress (units run in parallel worker processes: the run's status shows any of them)
            current = store.read_unit_status(killed, store.Unit(None, 0, "random"))
            return current.get("stage") == 2 and current.get("phase") == "task training" \
                and 0 < current.get("fraction", 0) < 0.6

        _wait_for(training_stage_2, 60, victim, "stage 2's training")
        victim.send_signal(signal.SIGKILL)
        victim.wait(timeout=30)
    finally:
        if victim.poll() is None:
            victim.kill()
    assert victim.returncode == -signal.SIGKILL
    # killed inside stage 2's training, or (on a loaded machine, between the status read and the signal)
    # just after it was written: either way the next stage's record is absent, never half-written
    finished = store.finished_stages(killed, "random", 0)
    assert finished in (2, 3)
    assert not (killed / "records" / "random" / "trial0" / f"stage{finished}.json").exists()
    for path in killed.rglob("*.json"):  # a killed writer may leave a temporary file, never a half-written one
        json.loads(path.read_text())
    assert store.read_status(killed)["state"] == "running"  # what the dead process left ...
    assert store.run_info(killed).state == "interrupted"  # ... and what the list shows

    resume = cli("run", "--resume", str(killed), "--quiet")
    _, err = resume.communicate(timeout=300)
    assert resume.returncode == 0, err
    _, err = full.communicate(timeout=300)
    assert full.returncode == 0, err

    for method in SMALL["methods"]:
        a = store.load_records(out / "full", method, 0)
        b = store.load_records(killed, method, 0)
        assert len(a) == len(b) == 4
        for x, y in zip(a, b):
            np.testing.assert_array_equal(x.selected, y.selected)
            np.testing.assert_array_equal(x.candidate_scores, y.candidate_scores)
            np.testing.assert_array_equal(x.analysis_features, y.analysis_features)
            assert x.accuracy == y.accuracy and x.labeled_count == y.labeled_count
    status = store.read_status(killed)
    assert status["state"] == "finished" and status["sessions"] == 2 and status["done"] == 8
    assert not list(killed.rglob("*.tmp")), "the resumed run removed the killed writer's temporary files"

    # list shows both, and a broken run folder beside them does not stop it
    broken = out / "broken"
    broken.mkdir()
    (broken / "config.json").write_text('{"config": {"dataset": "moo')
    code, listing, err = run_main(capsys, "list", "--output", str(out))
    assert code == 0 and "full" in listing and "killed" in listing and "finished" in listing
    assert "broken" in listing and "config.json" in listing

    # export: metrics CSV, selections and scores JSON
    code, written, err = run_main(capsys, "export", str(killed), "--to", str(tmp_path / "export"))
    assert code == 0, err
    selections = json.loads((tmp_path / "export" / "selections.json").read_text())
    assert selections["lloss"]["0"]["3"] == store.load_record(killed, "lloss", 0, 3).selected.tolist()
    assert (tmp_path / "export" / "metrics.csv").read_text().count("\n") == 9
    code, summary, _ = run_main(capsys, "summary", str(killed))
    assert code == 0 and "p_value_vs_random" in summary
