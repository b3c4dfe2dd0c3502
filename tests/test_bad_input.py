"""Bad input is refused at the boundary (issue #9, items 1-5): types are checked before anything is
converted, every integer is bounded by what the code can hold, a model that cannot take the dataset's
input and settings that silently change meaning are refused, and every user error on the command line
exits 2 with one line naming the field or the file, no traceback and no run folder left behind."""
import json
import math
import os

import numpy as np
import pytest

from tavaal_core import ActiveLearner, ConfigError, ExperimentConfig, store
from tavaal_core.cli import main
from tavaal_core.experiment import Experiment, ExperimentSpec


# -- 1. types are checked before they are converted -------------------------------------------------
@pytest.mark.parametrize("value", [5, math.nan, "12", b"12", {3: 20, 5: 20}, {"0": 20}, [400.9, 40.7],
                                   [True, 400], [None, 3], [-1, 5], [1, "2"], [10**12, 3], 3.5])
def test_class_counts_of_the_wrong_type_are_refused_naming_the_field(value):
    with pytest.raises(ConfigError) as err:
        ExperimentConfig(dataset="digits", class_counts=value)
    assert err.value.field == "class_counts"


@pytest.mark.parametrize("value", ["abc", 5, ["root", "x"], {1: "x"}])
def test_dataset_options_must_be_a_mapping_of_names(value):
    with pytest.raises(ConfigError) as err:
        ExperimentConfig(dataset="moons", dataset_options=value)
    assert err.value.field == "dataset_options"


def test_valid_counts_keep_their_meaning():
    cfg = ExperimentConfig(dataset="moons", class_counts=[np.int64(400), 40], seed=np.int64(7))
    assert cfg.class_counts == (400, 40) and type(cfg.class_counts[0]) is int and type(cfg.seed) is int
    assert ExperimentConfig(dataset_options=None).dataset_options == {}


# -- 2. every integer is bounded by what the code can hold -------------------------------------------
@pytest.mark.parametrize("field, value", [("seed", 2**63), ("seed", 2**32), ("initial_size", 10**18),
                                          ("budget", 2**70), ("subsample", 10**15), ("analysis_size", 10**12),
                                          ("batch_size", 10**12), ("subset_factor", 10**10),
                                          ("vae_epochs", 10**9), ("unsupervised_vae_epochs", 10**9)])
def test_integers_beyond_what_the_code_holds_are_refused(field, value):
    with pytest.raises(ConfigError) as err:
        ExperimentConfig(**{field: value})
    assert err.value.field == field and "<=" in str(err.value)


def test_a_seed_near_the_bound_with_trials_is_refused_before_anything_runs(tmp_path):
    config = ExperimentConfig(dataset="moons", seed=2**32 - 2)
    with pytest.raises(ConfigError) as err:
        ExperimentSpec(config, methods=("random",), trials=3)
    assert err.value.field == "seed"
    assert not list(tmp_path.iterdir())


def test_the_largest_seed_runs_stores_and_resumes(tmp_path):
    spec = ExperimentSpec(ExperimentConfig(dataset="moons", seed=2**32 - 1, stages=1, task_epochs=2,
                                           analysis_size=50, device="cpu"), methods=("random",), trials=1)
    run = Experiment.create(spec, tmp_path, "big-seed")
    assert run.run()["state"] == "finished"
    assert store.load_metrics(run.run_dir)["seed"].iloc[0] == 2**32 - 1
    assert Experiment.open(run.run_dir).run()["state"] == "finished"


# -- 3. model vs dataset ------------------------------------------------------------------------------
@pytest.mark.parametrize("model", ["cnn", "resnet18", "resnet18_imagenet"])
def test_an_image_model_on_two_moons_is_refused_before_anything_runs(tmp_path, model):
    with pytest.raises(ConfigError) as err:
        ExperimentConfig(dataset="moons", model=model)
    assert err.value.field == "model" and "mlp" in str(err.value)
    code = main(["run", "--config", _spec_file(tmp_path, {"dataset": "moons", "model": model}),
                 "--output", str(tmp_path / "runs")])
    assert code == 2 and not (tmp_path / "runs").exists()


def test_a_given_vector_dataset_is_checked_against_the_model(digits_dataset):
    import dataclasses

    flat = dataclasses.replace(digits_dataset, x_train=digits_dataset.x_train.reshape(len(digits_dataset.x_train), -1),
                               x_test=digits_dataset.x_test.reshape(len(digits_dataset.x_test), -1),
                               input_shape=(64,), kind="vector", mean=(0.0,), std=(1.0,))
    with pytest.raises(ConfigError) as err:
        ActiveLearner(ExperimentConfig(dataset="digits", model="cnn"), dataset=flat).start()
    assert err.value.field == "model"
    ActiveLearner(ExperimentConfig(dataset="digits", model="mlp"), dataset=flat).start()  # the MLP takes it


# -- 4. silent changes of meaning ---------------------------------------------------------------------
def test_imbalance_ratio_on_two_moons_is_refused_not_turned_into_50_50():
    with pytest.raises(ConfigError) as err:
        ExperimentConfig(dataset="moons", imbalance_ratio=10)
    assert err.value.field == "imbalance_ratio" and "n_per_class" in str(err.value)
    ExperimentConfig(dataset="digits", imbalance_ratio=10)  # a balanced set: the paper's construction


@pytest.mark.parametrize("field, value, why", [("lr", 1e308, "diverge"), ("lr", 11.0, "diverge"),
                                               ("task_epochs", 10**9, "200"), ("weight_decay", 5.0, "<= 1"),
                                               ("beta", 1e300, "<="), ("alpha", 1e300, "<=")])
def test_values_that_cannot_mean_what_they_say_are_refused_with_why(field, value, why):
    with pytest.raises(ConfigError) as err:
        ExperimentConfig(**{field: value})
    assert err.value.field == field and why in str(err.value)


# -- 5. the command line: one rule --------------------------------------------------------------------
def _spec_file(folder, config, name="spec.json", **extra):
    path = folder / name
    path.write_text(json.dumps({"config": {"stages": 1, **config}, "methods": ["random"], "trials": 1, **extra}))
    return str(path)


def _raw_file(folder, name, text):
    path = folder / name
    path.write_text(text) if isinstance(text, str) else path.write_bytes(text)
    return str(path)


def _finished_run(folder):
    run_dir = folder / "done"
    (run_dir / "records").mkdir(parents=True)
    store.write_spec(run_dir, {"preset": None, "description": "", "methods": ["random"], "trials": 1,
                               "config": {"dataset": "moons", "stages": 1}, "notes": {}})
    store.write_status(run_dir, {"state": "finished"})
    return str(run_dir)


# (arguments, a fragment the one line must hold). "{d}" is a fresh folder for the case; runs go to {d}/runs.
BAD_INVOCATIONS = [
    ([], "command"),
    (["fly"], "fly"),
    (["presets", "extra"], "extra"),
    (["run"], "--preset"),
    (["run", "--preset", "cifar11"], "preset"),
    (["run", "--preset", ""], "preset"),
    (["run", "--preset", "../moons_fig1"], "preset"),
    (["run", "--preset", "moons_fig1", "--config", "x.json"], "--config"),
    (["run", "--preset", "moons_fig1", "--methods", "random,magic"], "methods"),
    (["run", "--preset", "moons_fig1", "--methods", ","], "methods"),
    (["run", "--preset", "moons_fig1", "--methods", "random,random"], "methods"),
    (["run", "--preset", "moons_fig1", "--trials", "0"], "--trials"),
    (["run", "--preset", "moons_fig1", "--trials", "two"], "--trials"),
    (["run", "--preset", "moons_fig1", "--trials", "100000"], "trials"),
    (["run", "--preset", "moons_fig1", "--stages", "0"], "--stages"),
    (["run", "--preset", "moons_fig1", "--stages", "1.5"], "--stages"),
    (["run", "--preset", "moons_fig1", "--stages", "99999999999"], "stages"),
    (["run", "--preset", "moons_fig1", "--seed", "-1"], "--seed"),
    (["run", "--preset", "moons_fig1", "--seed", "1e3"], "--seed"),
    (["run", "--preset", "moons_fig1", "--seed", str(2**63)], "seed"),
    (["run", "--preset", "moons_fig1", "--seed", str(2**32 - 1)], "seed"),  # + trials - 1 overflows
    (["run", "--preset", "moons_fig1", "--epochs", "0"], "--epochs"),
    (["run", "--preset", "moons_fig1", "--epochs", str(10**9)], "task_epochs"),
    (["run", "--preset", "moons_fig1", "--epochs-increment", str(10**9)], "task_epochs_increment"),
    (["run", "--preset", "moons_fig1", "--pretrained", "yes"], "--pretrained"),
    (["run", "--preset", "moons_fig1", "--device", "tpu"], "device"),
    (["run", "--preset", "moons_fig1", "--device", ""], "device"),
    (["run", "--preset", "moons_fig1", "--threads", "0"], "--threads"),
    (["run", "--preset", "moons_fig1", "--threads", "1000000"], "--threads"),
    (["run", "--preset", "moons_fig1", "--threads", "many"], "--threads"),
    (["run", "--preset", "moons_fig1", "--name", "../escape"], "name"),
    (["run", "--preset", "moons_fig1", "--name", ""], "name"),
    (["run", "--preset", "moons_fig1", "--name", ".hidden"], "name"),
    (["run", "--preset", "moons_fig1", "--name", "a/b"], "name"),
    (["run", "--preset", "moons_fig1", "--output", ""], "--output"),
    (["run", "--preset", "moons_fig1", "--output", "{d}/a-file"], "--output"),
    (["run", "--preset", "moons_fig1", "--output", "{d}/a-file/runs"], "--output"),
    (["run", "--config", "/no/such/file.json"], "config"),
    (["run", "--config", "{d}/spec.txt"], "config"),
    (["run", "--config", "{d}"], "config"),
    (["run", "--config", "{d}/list.json"], "config"),
    (["run", "--config", "{d}/broken.yaml"], "YAML"),
    (["run", "--config", "{d}/binary.json"], "config"),
    (["run", "--config", "{d}/tagged.yaml"], "config"),
    (["run", "--config", "{d}/nan.json"], "lr"),
    (["run", "--config", "{d}/options-str.json"], "dataset_options"),
    (["run", "--config", "{d}/options-int.json"], "dataset_options"),
    (["run", "--config", "{d}/counts-str.json"], "class_counts"),
    (["run", "--config", "{d}/counts-int.json"], "class_counts"),
    (["run", "--config", "{d}/counts-dict.json"], "class_counts"),
    (["run", "--config", "{d}/counts-float.json"], "class_counts"),
    (["run", "--config", "{d}/counts-null.json"], "class_counts"),
    (["run", "--config", "{d}/resnet-moons.json"], "model"),
    (["run", "--config", "{d}/imbalance-moons.json"], "imbalance_ratio"),
    (["run", "--config", "{d}/huge-lr.json"], "lr"),
    (["run", "--config", "{d}/huge-epochs.json"], "task_epochs"),
    (["run", "--config", "{d}/huge-seed.json"], "seed"),
    (["run", "--config", "{d}/bool-seed.json"], "seed"),
    (["run", "--config", "{d}/budget.json"], "budget"),
    (["run", "--config", "{d}/unknown-field.json"], "bugdet"),
    (["run", "--config", "{d}/unknown-option.json"], "colour"),
    (["run", "--config", "{d}/option-type.json"], "noise"),
    (["run", "--config", "{d}/trials-str.json"], "trials"),
    (["run", "--config", "{d}/trials-huge.json"], "trials"),
    (["run", "--config", "{d}/methods-int.json"], "methods"),
    (["run", "--config", "{d}/methods-path.json"], "methods"),
    (["run", "--config", "{d}/notes-str.json"], "notes"),
    (["run", "--config", "{d}/preset-path.json"], "preset"),
    (["run", "--config", "{d}/absent-dataset.json"], "x.npz"),
    (["run", "--resume", "/no/such/run"], "/no/such/run"),
    (["run", "--resume", ""], "--resume"),
    (["run", "--resume", "{d}/a-file"], "a-file"),
    (["run", "--resume", "{d}/done", "--trials", "3"], "--trials"),
    (["run", "--resume", "{d}/done", "--output", "{d}"], "--output"),
    (["run", "--resume", "{d}/done", "--preset", "moons_fig1"], "--preset"),
    (["run", "--resume", "{d}/done", "--epochs", "3"], "--epochs"),
    (["run", "--resume", "{d}/done", "--device", "tpu"], "device"),
    (["list", "--output", "{d}/a-file"], "--output"),
    (["list", "--output", ""], "--output"),
    (["export"], "RUN_DIR"),
    (["export", "/no/such/run"], "/no/such/run"),
    (["export", ""], "RUN_DIR"),
    (["export", "{d}/done", "--to", "{d}/a-file"], "--to"),
    (["export", "{d}/done", "--to", ""], "--to"),
    (["summary", "/no/such/run"], "/no/such/run"),
    (["summary", "{d}/a-file"], "a-file"),
]


def _case_files(d):
    _raw_file(d, "a-file", "not a folder")
    _raw_file(d, "spec.txt", "{}")
    _raw_file(d, "list.json", "[1, 2]")
    _raw_file(d, "broken.yaml", "dataset: [moons\n")
    _raw_file(d, "binary.json", b"\xff\xfe\x00garbage")
    _raw_file(d, "tagged.yaml", "dataset: !!python/object/apply:os.system ['true']\nmethods: [random]\n")
    _raw_file(d, "nan.json", '{"config": {"dataset": "moons", "lr": NaN}, "methods": ["random"]}')
    for name, config, extra in [
        ("options-str", {"dataset": "moons", "dataset_options": "abc"}, {}),
        ("options-int", {"dataset": "moons", "dataset_options": 5}, {}),
        ("counts-str", {"dataset": "digits", "class_counts": "12"}, {}),
        ("counts-int", {"dataset": "digits", "class_counts": 5}, {}),
        ("counts-dict", {"dataset": "digits", "class_counts": {"3": 20, "5": 20}}, {}),
        ("counts-float", {"dataset": "moons", "class_counts": [400.9, 40.7]}, {}),
        ("counts-null", {"dataset": "moons", "class_counts": [None, 40]}, {}),
        ("resnet-moons", {"dataset": "moons", "model": "resnet18"}, {}),
        ("imbalance-moons", {"dataset": "moons", "imbalance_ratio": 10}, {}),
        ("huge-lr", {"dataset": "moons", "lr": 1e308}, {}),
        ("huge-epochs", {"dataset": "moons", "task_epochs": 10**9}, {}),
        ("huge-seed", {"dataset": "moons", "seed": 2**63}, {}),
        ("bool-seed", {"dataset": "moons", "seed": True}, {}),
        ("budget", {"dataset": "moons", "budget": 400, "stages": 5}, {}),
        ("unknown-field", {"dataset": "moons", "bugdet": 3}, {}),
        ("unknown-option", {"dataset": "moons", "dataset_options": {"colour": 1}}, {}),
        ("option-type", {"dataset": "moons", "dataset_options": {"noise": "loud"}}, {}),
        ("trials-str", {"dataset": "moons"}, {"trials": "3"}),
        ("trials-huge", {"dataset": "moons"}, {"trials": 200000}),
        ("methods-int", {"dataset": "moons"}, {"methods": 5}),
        ("methods-path", {"dataset": "moons"}, {"methods": ["../../../tmp/x"]}),
        ("notes-str", {"dataset": "moons"}, {"notes": "abc"}),
        ("preset-path", {"dataset": "moons"}, {"preset": "../../escape"}),
        ("absent-dataset", {"dataset": "medmnist", "dataset_options": {"path": str(d / "x.npz")}}, {}),
    ]:
        _spec_file(d, config, name=f"{name}.json", **extra)
    _finished_run(d)


def test_the_table_has_at_least_40_cases():
    assert len(BAD_INVOCATIONS) >= 40


@pytest.mark.parametrize("args, fragment", BAD_INVOCATIONS, ids=[" ".join(a) or "(none)" for a, _ in BAD_INVOCATIONS])
def test_every_bad_invocation_exits_2_with_one_line_and_leaves_no_run_folder(tmp_path, monkeypatch, capsys,
                                                                            args, fragment):
    d = tmp_path / "case"
    d.mkdir()
    _case_files(d)
    runs = tmp_path / "runs"
    monkeypatch.chdir(tmp_path)  # a default `runs/` would be made here
    args = [a.replace("{d}", str(d)) for a in args]
    if args[:1] == ["run"] and "--resume" not in args and "--output" not in args:
        args += ["--output", str(runs)]
    before = sorted(p.name for p in tmp_path.iterdir())
    before_case = sorted(str(p) for p in d.rglob("*"))
    code = main(args)
    out, err = capsys.readouterr()
    lines = err.strip().splitlines()
    assert code == 2, (args, code, err)
    assert len(lines) == 1 and "Traceback" not in err, err
    assert fragment in lines[0], (fragment, lines[0])
    assert sorted(p.name for p in tmp_path.iterdir()) == before, "a run folder (or runs/) was left behind"
    assert not runs.exists() or not any(runs.iterdir())
    assert sorted(str(p) for p in d.rglob("*")) == before_case, "a file appeared in the case folder"


def test_a_busy_run_exits_2_like_a_running_one(tmp_path, capsys):
    """'lock held' (another process took the lock after our check) and 'still running' are one rule: exit 2."""
    run_dir = _finished_run(tmp_path)
    store.write_status(run_dir, {"state": "interrupted"})
    lock = store.lock_run(run_dir)
    try:
        code = main(["run", "--resume", run_dir, "--quiet"])
        _, err = capsys.readouterr()
        assert code == 2 and "still running" in err and len(err.strip().splitlines()) == 1
        from tavaal_core import experiment as experiment_module

        original = experiment_module.Experiment.check_not_running
        experiment_module.Experiment.check_not_running = lambda self: None  # the race: checked, then taken
        try:
            code = main(["run", "--resume", run_dir, "--quiet"])
        finally:
            experiment_module.Experiment.check_not_running = original
        _, err = capsys.readouterr()
        assert code == 2 and "another process" in err and len(err.strip().splitlines()) == 1
    finally:
        lock.close()


def test_list_of_a_missing_folder_says_so_and_of_runs_lists_them(tmp_path, capsys):
    assert main(["list", "--output", str(tmp_path / "none")]) == 0
    assert "no runs" in capsys.readouterr().out
    _finished_run(tmp_path)
    assert main(["list", "--output", str(tmp_path)]) == 0
    assert "done" in capsys.readouterr().out


def test_threads_are_bounded_by_the_cores():
    from tavaal_core.cli import build_parser

    cores = os.cpu_count() or 1
    assert build_parser().parse_args(["run", "--preset", "moons_fig1", "--threads", str(cores)]).threads == cores
