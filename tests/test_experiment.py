"""Experiments: trials share seeds across methods, every stage lands in the store, an interrupted run resumes
to exactly the records of an uninterrupted one (also with warm starts), and the presets are valid and carry
the papers' hyperparameters with their sources."""
import os
import subprocess
import sys

import numpy as np
import pytest

from tavaal_core import ConfigError, ExperimentConfig, store
from tavaal_core.engine import ActiveLearner
from tavaal_core.experiment import Experiment, ExperimentSpec, replay
from tavaal_core.presets import available_presets, load_preset, spec_from_mapping
from tavaal_core.store import StoreError


def moons_spec(methods=("random", "lloss"), trials=2, stages=3, **config):
    base = dict(dataset="moons", stages=stages, task_epochs=10, vae_epochs=5, seed=3, device="cpu", analysis_size=100)
    base.update(config)
    return ExperimentSpec(ExperimentConfig(**base), methods=methods, trials=trials)


def assert_same_records(a, b):
    """Equal except for timings (wall-clock)."""
    sa, aa = a.split()
    sb, ab = b.split()
    sa.pop("timings"), sb.pop("timings")
    assert sa == sb
    for key in aa:
        np.testing.assert_array_equal(aa[key], ab[key], err_msg=f"{a.method} stage {a.stage}: {key}")


def assert_same_runs(dir_a, dir_b, spec):
    for trial in range(spec.trials):
        ra, rb = store.load_trial_records(dir_a, trial), store.load_trial_records(dir_b, trial)
        assert list(ra) == list(rb) == list(spec.methods)
        for method in spec.methods:
            assert len(ra[method]) == len(rb[method]) == spec.stages
            for x, y in zip(ra[method], rb[method]):
                assert_same_records(x, y)


def test_trials_share_seeds_across_methods_and_every_stage_is_stored(tmp_path):
    spec = moons_spec(methods=("random", "lloss"), trials=2, stages=2)
    events = []
    run = Experiment.create(spec, tmp_path, "exp")
    status = run.run(events.append)
    assert status["state"] == "finished" and status["done"] == status["total"] == 8
    kinds = [e.kind for e in events]
    assert kinds[0] == "start" and kinds[-1] == "finish" and kinds.count("stage") == 8 and "phase" in kinds
    first = {(t, m): store.load_record(run.run_dir, m, t, 0).labeled for t in range(2) for m in spec.methods}
    for t in range(2):
        np.testing.assert_array_equal(first[(t, "random")], first[(t, "lloss")])  # same initial labels
    assert not np.array_equal(first[(0, "random")], first[(1, "random")])  # another seed per trial
    assert spec.trial_config(1, "lloss").seed == 4 and spec.trial_config(1, "lloss").method == "lloss"
    metrics = store.load_metrics(run.run_dir)
    assert len(metrics) == 8 and sorted(metrics["seed"].unique().tolist()) == [3, 4]
    on_disk = store.read_status(run.run_dir)
    assert on_disk["state"] == "finished" and on_disk["pid"] is None
    assert {"python", "torch", "numpy", "device"} <= set(store.read_environment(run.run_dir))
    assert Experiment.open(run.run_dir).spec == spec


class Stop(KeyboardInterrupt):
    pass


def interrupt_at(method, stage):
    def progress(event):
        if event.kind == "phase" and event.method == method and event.stage == stage:
            raise Stop()
    return progress


@pytest.mark.parametrize("warm_start", [False, True], ids=["fresh", "warm_start"])
def test_interrupted_run_resumes_to_the_uninterrupted_result(tmp_path, warm_start):
    spec = moons_spec(methods=("random", "lloss"), trials=1, stages=3, warm_start=warm_start)
    full = Experiment.create(spec, tmp_path, "full")
    full.run()
    part = Experiment.create(spec, tmp_path, "part")
    with pytest.raises(KeyboardInterrupt):
        part.run(interrupt_at("lloss", 2))  # in the middle of lloss's last stage
    status = store.read_status(part.run_dir)
    assert status["state"] == "interrupted" and status["done"] == 5
    assert store.finished_stages(part.run_dir, "lloss", 0) == 2
    events = []
    resumed = Experiment.open(part.run_dir).run(events.append)
    assert resumed["state"] == "finished" and resumed["sessions"] == 2
    assert [e.kind for e in events if e.kind in ("skip", "run")] == ["skip", "run"]
    assert [e.stage for e in events if e.kind == "stage"] == [2]  # only the missing stage was computed
    assert_same_runs(full.run_dir, part.run_dir, spec)
    assert len(store.load_metrics(part.run_dir)) == 6


def test_replay_refuses_records_of_another_config(tmp_path):
    spec = moons_spec(methods=("random",), trials=1, stages=2)
    run = Experiment.create(spec, tmp_path, "a")
    run.run()
    records = store.load_records(run.run_dir, "random", 0)
    other = ActiveLearner(spec.trial_config(0, "random").with_(seed=99)).start()
    with pytest.raises(StoreError, match="labeled set differs"):
        replay(other, records, "somewhere")
    same = ActiveLearner(spec.trial_config(0, "random")).start()
    replay(same, records)
    assert same.stage == 2 and same.done
    assert len(same.pool) == records[-1].labeled_count + len(records[-1].selected)


def test_a_bad_config_is_refused_before_a_folder_is_made(tmp_path):
    spec = moons_spec(stages=5, budget=200)  # 20 + 5 x 200 labels > 550 points
    with pytest.raises(ConfigError) as err:
        Experiment.create(spec, tmp_path / "runs", "x")
    assert err.value.field == "budget"
    assert not (tmp_path / "runs" / "x").exists()


def test_a_chosen_name_is_never_reused_a_default_one_gets_a_suffix(tmp_path, monkeypatch):
    import tavaal_core.experiment as experiment_module

    # the default name is a timestamp to the second: pin it, so a slow machine cannot cross a second
    monkeypatch.setattr(experiment_module, "default_run_name", lambda spec: "moons-20260101-000000")
    spec = moons_spec(methods=("random",), trials=1, stages=1)
    Experiment.create(spec, tmp_path, "mine", check=False)
    with pytest.raises(ConfigError) as err:
        Experiment.create(spec, tmp_path, "mine", check=False)
    assert err.value.field == "name" and "--resume" in str(err.value)
    a = Experiment.create(spec, tmp_path, check=False)
    b = Experiment.create(spec, tmp_path, check=False)
    assert a.run_dir != b.run_dir and b.run_dir.name.startswith(a.run_dir.name)


def test_a_failing_stage_is_recorded_as_failed(tmp_path, monkeypatch):
    spec = moons_spec(methods=("random",), trials=1, stages=3)
    run = Experiment.create(spec, tmp_path, "f")
    original = ActiveLearner.step

    def step(self, progress=None):
        if self.stage == 1:
            raise RuntimeError("out of memory, say")
        return original(self, progress)

    monkeypatch.setattr(ActiveLearner, "step", step)
    with pytest.raises(RuntimeError):
        run.run()
    status = store.read_status(run.run_dir)
    assert status["state"] == "failed" and status["error"] == "RuntimeError: out of memory, say"
    assert store.run_info(run.run_dir).state == "failed"
    monkeypatch.setattr(ActiveLearner, "step", original)
    assert Experiment.open(run.run_dir).run()["state"] == "finished"


def test_resume_refuses_a_run_whose_lock_is_held_and_ignores_a_stale_status(tmp_path):
    spec = moons_spec(methods=("random",), trials=1, stages=1)
    run = Experiment.create(spec, tmp_path, "busy")
    lock = run.run_dir / ".lock"
    holder = subprocess.Popen([sys.executable, "-c", "import fcntl, sys, time; f = open(sys.argv[1], 'a+b'); "
                               "fcntl.flock(f, fcntl.LOCK_EX); print('locked', flush=True); time.sleep(60)", str(lock)],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        store.update_status(run.run_dir, state="running", pid=holder.pid)
        with pytest.raises(StoreError, match="still running"):
            Experiment.open(run.run_dir).run()
        assert store.run_info(run.run_dir).state == "running"
    finally:
        holder.kill()
        holder.wait()
    assert store.run_info(run.run_dir).state == "interrupted"


def test_a_stale_status_naming_a_live_unrelated_process_does_not_block_resume(tmp_path):
    """Item 9: no lock held, status.json says running with the pid of a live process that has nothing to do
    with the run (a reused pid): the lock is the truth, so the run resumes without any hand edit."""
    spec = moons_spec(methods=("random",), trials=1, stages=1)
    run = Experiment.create(spec, tmp_path, "stale")
    stranger = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        for with_lock_file in (False, True):
            if with_lock_file:
                (run.run_dir / ".lock").touch()
            store.update_status(run.run_dir, state="running", pid=stranger.pid)
            assert store.run_info(run.run_dir).state == "interrupted"
        assert Experiment.open(run.run_dir).run()["state"] == "finished"
        assert stranger.poll() is None  # never signalled
    finally:
        stranger.kill()
        stranger.wait()


def test_spec_validation_names_the_field():
    config = ExperimentConfig(dataset="moons")
    with pytest.raises(ConfigError) as err:
        ExperimentSpec(config, methods=("random", "nope"))
    assert err.value.field == "methods" and "tavaal" in str(err.value)
    with pytest.raises(ConfigError, match="twice"):
        ExperimentSpec(config, methods=("random", "random"))
    with pytest.raises(ConfigError) as err:
        ExperimentSpec(config, methods=("random",), trials=0)
    assert err.value.field == "trials"
    with pytest.raises(ConfigError):
        ExperimentSpec(config, methods=())
    spec = ExperimentSpec(config, methods="random, lloss", trials=2)
    assert spec.methods == ("random", "lloss") and spec.config.method == "random"
    assert ExperimentSpec.from_dict(spec.to_dict()) == spec
    flat = spec_from_mapping({"dataset": "moons", "lr": 0.05, "methods": "random,entropy", "trials": 3})
    assert flat.methods == ("random", "entropy") and flat.trials == 3 and flat.config.lr == 0.05
    with pytest.raises(ConfigError) as err:
        spec_from_mapping({"dataset": "moons", "learning_rate": 0.1, "methods": ["random"]})
    assert err.value.field == "learning_rate"
    with pytest.raises(ConfigError) as err:
        spec_from_mapping({"config": {"dataset": "moons"}, "methods": ["random"], "trails": 3})
    assert err.value.field == "trails"


# -- presets -------------------------------------------------------------------------------------------------
PRESETS = ["moons_fig1", "digits_demo", "mnist5k_demo", "digits_imbalanced_x10", "cifar10_tavaal",
           "cifar10_imbalanced_x10", "cifar10_imbalanced_x100", "cifar100_tavaal", "mnist_scipy22",
           "chestmnist_scipy22"]
PAPER_PRESETS = ["moons_fig1", "cifar10_tavaal", "cifar10_imbalanced_x10", "cifar10_imbalanced_x100",
                 "cifar100_tavaal", "mnist_scipy22", "chestmnist_scipy22"]


@pytest.mark.parametrize("name", PRESETS)
def test_every_preset_loads_resolves_and_documents_its_values(name):
    from tavaal_core.presets import preset_data

    assert name in available_presets()
    spec = load_preset(name)
    assert spec.preset == name and spec.description and spec.trials >= 2
    spec.config.resolve()  # every dataset-dependent field valid
    data = preset_data(name)
    assert "method" not in data["config"]
    fields = set(ExperimentConfig.__dataclass_fields__) | {"methods", "trials"}
    assert set(data["notes"]) <= fields, set(data["notes"]) - fields
    if name in PAPER_PRESETS:
        undocumented = set(data["config"]) - set(data["notes"]) - {"dataset", "device", "seed"}
        assert not undocumented, f"{name}: no source for {sorted(undocumented)}"


def test_cifar_presets_carry_the_tavaal_protocol():
    for name in ("cifar10_tavaal", "cifar10_imbalanced_x10", "cifar10_imbalanced_x100", "cifar100_tavaal"):
        cfg = load_preset(name).config
        assert (cfg.model, cfg.optimizer, cfg.lr, cfg.momentum, cfg.weight_decay) == ("resnet18", "sgd", 0.1, 0.9, 5e-4)
        assert (cfg.batch_size, cfg.task_epochs, cfg.lr_milestone, cfg.head_stop_fraction) == (128, 200, 0.8, 0.6)
        assert (cfg.stages, cfg.subset_factor, load_preset(name).trials) == (10, 10, 5)
        assert "tavaal" in load_preset(name).methods and "random" in load_preset(name).methods
    c10 = load_preset("cifar10_tavaal").config
    assert (c10.dataset, c10.initial_size, c10.budget, c10.imbalance_ratio) == ("cifar10", 1000, 1000, None)
    assert load_preset("cifar10_imbalanced_x10").config.imbalance_ratio == 10
    assert load_preset("cifar10_imbalanced_x100").config.imbalance_ratio == 100
    assert load_preset("cifar100_tavaal").config.dataset == "cifar100"


def test_seed_004_presets():
    mnist = load_preset("mnist_scipy22")
    assert mnist.config.dataset == "mnist" and mnist.config.subsample == 25000
    assert set(mnist.methods) == {"coreset", "coreset_vae", "medal", "medal_vae", "lloss", "lloss_vae", "random"}
    assert mnist.config.unsupervised_vae_epochs == 20
    chest = load_preset("chestmnist_scipy22")
    assert chest.config.dataset == "medmnist" and chest.config.dataset_options["path"].endswith("chestmnist.npz")
    assert set(chest.methods) == set(mnist.methods)


def test_unknown_preset_names_the_choices():
    with pytest.raises(ConfigError) as err:
        load_preset("cifar11")
    assert err.value.field == "preset" and "digits_demo" in str(err.value)


def test_presets_dir_can_be_overridden(tmp_path, monkeypatch):
    (tmp_path / "mine.yaml").write_text("config: {dataset: moons, stages: 2}\nmethods: [random]\ntrials: 2\n"
                                        "description: a yaml preset\n")
    monkeypatch.setenv("TAVAAL_PRESETS_DIR", str(tmp_path))
    assert available_presets() == ["mine"]
    assert load_preset("mine").config.stages == 2
    assert os.environ["TAVAAL_PRESETS_DIR"] == str(tmp_path)


def test_one_writer_per_run_folder(tmp_path):
    spec = moons_spec(methods=("random",), trials=1, stages=1)
    run = Experiment.create(spec, tmp_path, "locked", check=False)
    holder = store.lock_run(run.run_dir)
    try:
        store.update_status(run.run_dir, state="running", pid=os.getpid() + 1)
        assert store.run_locked(run.run_dir) is True
        assert store.run_info(run.run_dir).state == "running"  # the lock says so, whatever the pid
        with pytest.raises(StoreError, match="another process"):
            store.lock_run(run.run_dir, wait_s=0.1)
    finally:
        holder.close()
    assert store.run_locked(run.run_dir) is False
    assert store.run_info(run.run_dir).state == "interrupted"  # 'running' on disk, nobody holds the lock
    assert Experiment.open(run.run_dir).run()["state"] == "finished"
