"""The Runs page (AppTest): lists runs with a broken one flagged while the others still show; draws a run's
learning curves with std bands and p-values; opens a trial into the views; reports a corrupt record without
going down; deletes with confirmation; starts a run in the background as a separate process and stops it."""
import json
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from tavaal_core import ExperimentConfig, statistics, store
from tavaal_core.experiment import Experiment, ExperimentSpec

PAGE = str(Path(__file__).resolve().parent.parent / "pages" / "runs.py")


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """A digits_demo-like run, small: 2 methods x 2 trials x 3 stages, a few epochs."""
    root = tmp_path_factory.mktemp("template")
    spec = ExperimentSpec(ExperimentConfig(dataset="digits", stages=3, task_epochs=3, initial_size=40, budget=20,
                                           analysis_size=100, device="cpu"),
                          methods=("random", "entropy"), trials=2, description="tiny digits")
    run = Experiment.create(spec, root, "tiny")
    run.run()
    return run.run_dir


@pytest.fixture
def runs_dir(tmp_path, tiny_run, monkeypatch):
    root = tmp_path / "runs"
    root.mkdir()
    shutil.copytree(tiny_run, root / "tiny")
    shutil.copytree(tiny_run, root / "damaged")  # readable config, one truncated record
    npz = root / "damaged" / "records" / "entropy" / "trial0" / "stage1.npz"
    npz.write_bytes(npz.read_bytes()[:200])
    (root / "broken").mkdir()
    (root / "broken" / "config.json").write_text('{"config": {"dataset": "dig')
    monkeypatch.setenv("TAVAAL_RUNS_DIR", str(root))
    return root


def page(select: str | None = None) -> AppTest:
    at = AppTest.from_file(PAGE, default_timeout=120)
    if select is not None:
        at.session_state["runs_selected"] = select
    at.run()
    assert not at.exception, at.exception
    return at


def figure(at, index=0) -> dict:
    return json.loads(at.get("plotly_chart")[index].proto.spec)


def test_lists_runs_flags_the_broken_one_and_draws_curves_with_bands_and_p_values(runs_dir, tiny_run):
    at = page("tiny")
    assert any("broken" in e.value and "config.json" in e.value for e in at.error)
    listing = at.dataframe[0].value
    assert set(listing["name"]) == {"tiny", "damaged", "broken"}
    assert dict(zip(listing["name"], listing["state"]))["tiny"] == "finished"
    fig = figure(at)
    roles = [(t["meta"]["method"], t["meta"]["role"]) for t in fig["data"] if t.get("meta")]
    for method in ("random", "entropy"):
        assert (method, "band") in roles and (method, "mean") in roles  # std bands over the 2 trials
    assert ("entropy", "improvement") in roles
    numbers = at.dataframe[1].value
    assert {"accuracy %", "std", "vs random (points)", "p vs random"} <= set(numbers.columns)
    curves = statistics.learning_curve_frame(store.load_metrics(tiny_run))
    p = curves.loc[curves.method == "entropy", "p_value_vs_random"].to_numpy()
    np.testing.assert_allclose(numbers.loc[numbers.method == "entropy", "p vs random"].to_numpy(), p)
    assert np.isfinite(p[1:]).any(), "two trials give p-values once the methods' picks differ"
    hover = [t for t in fig["data"] if t.get("meta", {}).get("role") == "mean" and t["meta"]["method"] == "entropy"][0]
    assert any("p vs random" in str(c[-1]) for c in hover["customdata"])
    matrix = at.dataframe[2].value
    assert list(matrix.columns) == ["random", "entropy"]


def test_open_a_trial_in_every_view(runs_dir):
    at = page("tiny")
    at.selectbox(key="runs_trial").set_value(1)
    next(b for b in at.button if b.label.startswith("Open this trial")).click()
    at.run()
    assert not at.exception and not at.error[1:], [e.value for e in at.error]
    source = at.session_state["sources"]["run:tiny:trial1"]
    assert source.methods == ["random", "entropy"] and source.stages == 3
    assert source.records["entropy"][2].selected.tolist() == \
        store.load_record(runs_dir / "tiny", "entropy", 1, 2).selected.tolist()
    assert source.meta.num_classes == 10


def test_a_corrupt_record_is_reported_and_the_page_stays_up(runs_dir):
    at = page("damaged")
    next(b for b in at.button if b.label.startswith("Open this trial")).click()
    at.run()
    assert not at.exception
    assert any("stage1.npz" in e.value and "corrupt or truncated" in e.value for e in at.error)
    assert len(at.dataframe[0].value) == 3  # the list still shows every run


def test_a_finished_run_with_a_damaged_record_offers_repair_and_repairs_it(runs_dir, tiny_run):
    at = page("damaged")
    warning = [w.value for w in at.warning if "damaged record" in w.value]
    assert warning and "records/entropy/trial0/stage1.npz" in warning[0], [w.value for w in at.warning]
    repair = at.button(key="runs_resume")
    assert repair.label == "Repair"
    repair.click().run()
    assert not at.exception
    run_dir = runs_dir / "damaged"
    assert _wait(lambda: store.read_status(run_dir).get("repaired") and store.run_info(run_dir).state == "finished"), \
        (runs_dir / ".logs" / "damaged.log").read_text()
    assert "stage1.npz" in store.read_status(run_dir)["repaired"][0]
    assert _wait(lambda: not _processes_naming(run_dir), 60)  # the repair's process has exited ...
    page("damaged")  # ... and the page has reaped it (a later test's clicks are not cut short by its exit)
    assert store.check_records(run_dir) == []
    a, b = store.load_record(tiny_run, "entropy", 0, 1), store.load_record(run_dir, "entropy", 0, 1)
    np.testing.assert_array_equal(a.selected, b.selected)
    np.testing.assert_array_equal(a.candidate_scores, b.candidate_scores)
    at = page("damaged")
    assert not [w for w in at.warning if "damaged record" in w.value]
    assert not any(b.label in ("Repair", "Resume") for b in at.button)


def test_a_damaged_metrics_table_is_drawn_from_the_records_and_offered_for_repair(runs_dir):
    (runs_dir / "tiny" / "metrics.parquet").write_bytes(b"PAR1 damaged")
    at = page("tiny")
    assert any("metrics.parquet" in w.value for w in at.warning)
    assert at.button(key="runs_resume").label == "Repair"
    assert at.get("plotly_chart"), "the learning curves are rebuilt from the records"


def test_delete_needs_confirmation(runs_dir):
    at = page("tiny")
    delete = at.button(key="runs_delete")
    assert delete.disabled
    at.checkbox(key="runs_sure_tiny").check().run()
    at.button(key="runs_delete").click().run()
    assert not at.exception
    assert not (runs_dir / "tiny").exists() and (runs_dir / "damaged").exists()


def test_export_button_writes_files(runs_dir):
    at = page("tiny")
    at.button(key="runs_export").click().run()
    assert not at.exception
    assert (runs_dir / "tiny" / "export" / "metrics.csv").is_file()
    assert (runs_dir / "tiny" / "export" / "selections.json").is_file()


def _wait(predicate, timeout=120):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.2)
    return False


def _processes_naming(path) -> list[int]:
    """Live processes whose command line names ``path`` (a run started or resumed by the page)."""
    found = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
                state = (proc / "stat").read_text().rsplit(")", 1)[1].split()[0]
            except OSError:
                continue
            if str(path) in cmdline and state not in ("Z", "X"):
                found.append(int(proc.name))
    return found


def test_start_a_run_in_the_background_then_stop_it(runs_dir):
    at = page()
    at.selectbox(key="runs_preset").set_value("moons_fig1").run()
    at.multiselect(key="runs_methods_moons_fig1").set_value(["random"])
    at.number_input(key="runs_trials_moons_fig1").set_value(1)
    at.number_input(key="runs_stages_moons_fig1").set_value(40)
    at.text_input(key="runs_name_moons_fig1_0").input("bg")
    form_button = next(b for b in at.button if b.label == "Start in the background")
    form_button.click().run()
    assert not at.exception and not [e for e in at.error if "broken" not in e.value], [e.value for e in at.error]
    run_dir = runs_dir / "bg"
    assert _wait(lambda: run_dir.joinpath("records/random/trial0/stage0.json").exists()), \
        (runs_dir / ".logs" / "bg.log").read_text() if (runs_dir / ".logs" / "bg.log").exists() else "no log"
    status = store.read_status(run_dir)
    assert status["state"] == "running" and status["pid"]
    at = page("bg")
    stop = next(b for b in at.button if b.label == "Stop")
    stop.click().run()
    assert _wait(lambda: store.read_status(run_dir)["state"] == "interrupted", 60)
    assert store.run_info(run_dir).state == "interrupted"
    at = page("bg")
    assert any(b.label == "Resume" for b in at.button)


def test_a_run_that_cannot_start_is_reported(runs_dir):
    at = page()
    at.selectbox(key="runs_preset").set_value("cifar10_tavaal").run()  # no CIFAR-10 files on this machine
    at.text_input(key="runs_name_cifar10_tavaal_0").input("no-data")
    next(b for b in at.button if b.label == "Start in the background").click().run()
    assert not at.exception
    at.run()
    at.text_input(key="runs_name_cifar10_tavaal_1").input("no-data")  # the field offers a fresh name; reuse the old
    next(b for b in at.button if b.label == "Start in the background").click().run()
    assert any("exists already" in e.value for e in at.error), "a second start with the same name starts nothing"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:  # each render reaps ended processes
        at = page()
        failed = [e.value for e in at.error if "did not start" in e.value]
        if failed:
            break
        time.sleep(0.5)
    assert failed and "no-data" in failed[0] and "CIFAR-10" in failed[0], [e.value for e in at.error]
    assert not (runs_dir / "no-data").exists()
    next(b for b in at.button if b.label == "Dismiss").click().run()
    assert not [e for e in at.error if "did not start" in e.value]


def test_a_preset_that_needs_absent_imagenet_weights_says_so_and_waits_for_consent(runs_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "no-weights"))
    at = AppTest.from_file(PAGE, default_timeout=120)
    at.session_state["runs_preset"] = "mnist_scipy22"
    at.run()
    assert not at.exception, at.exception
    assert any("ImageNet weights are absent" in w.value for w in at.warning)
    consent = next(c for c in at.checkbox if "random initialisation" in c.label)
    assert consent.value is False
    at.button(key="FormSubmitter:new_run-Start in the background").click().run()
    assert any("pretrained" in e.value for e in at.error)  # nothing starts without consent
    assert not (runs_dir / at.text_input[0].value).exists()


def test_the_new_run_form_shows_a_time_estimate(runs_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("TAVAAL_CACHE_DIR", str(tmp_path / "cache"))
    at = AppTest.from_file(PAGE, default_timeout=180)
    at.session_state["runs_preset"] = "moons_fig1"
    at.run()
    assert not at.exception, at.exception
    assert any("Estimated run time: about" in i.value for i in at.info)
