"""Fidelity to the papers and true scores (issue 8): each test here failed before its fix.

GPU runs open on a CPU; MC dropout is refused without dropout; greedy scores explain the greedy order;
scoring is fp32 under bf16 training; the loss head + VAE sees plain V(x); uniform r at the first VAE step;
-0.0 entropy; the presets' values and their sources; the epoch schedule, the VAE step schedule, the
candidate fraction and ImageNet weights that are never silently replaced."""
import json
import math

import numpy as np
import pytest
import torch

from conftest import fast
from tavaal_core import ConfigError, ExperimentConfig, store
from tavaal_core.analysis import class_count_entropy
from tavaal_core.cli import main
from tavaal_core.export import export_run
from tavaal_core.engine import ActiveLearner
from tavaal_core.experiment import Experiment, ExperimentSpec
from tavaal_core.strategies import available_methods, get_strategy

NO_CUDA = not torch.cuda.is_available()


# -- 1. a run made on a GPU opens, lists, exports and resumes on a CPU --------------------------------------
@pytest.mark.skipif(not NO_CUDA, reason="checks a CPU-only machine")
def test_a_gpu_made_run_opens_lists_exports_and_resumes_on_a_cpu(tmp_path, capsys):
    spec = ExperimentSpec(ExperimentConfig(dataset="moons", stages=2, task_epochs=5, vae_epochs=3, seed=1,
                                           device="cpu", analysis_size=50), methods=("random", "tavaal"), trials=1)
    run = Experiment.create(spec, tmp_path, "gpu-run")
    run.run()
    # As if made on a GPU: the spec says cuda, and tavaal's last stage is missing (killed there).
    data = store.read_spec(run.run_dir)
    data["config"]["device"] = "cuda"
    (run.run_dir / "config.json").write_text(json.dumps(data))
    for path in store.record_paths(run.run_dir, "tavaal", 0, 1):
        path.unlink()

    opened = Experiment.open(run.run_dir)  # raised ConfigError('device') before
    assert opened.spec.config.device == "cuda" and opened.counts() == (3, 4)
    listed = {r.name: r for r in store.list_runs(tmp_path)}
    assert not listed["gpu-run"].broken and listed["gpu-run"].done == 3
    assert export_run(run.run_dir)

    # Resuming as written needs a GPU: one line naming the field, exit 2.
    code = main(["run", "--resume", str(run.run_dir), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and "device" in err and "--device cpu" in err and err.count("\n") == 1
    # On the CPU when asked: the missing stage is computed, and the record says where it ran.
    assert main(["run", "--resume", str(run.run_dir), "--device", "cpu", "--quiet"]) == 0
    record = store.load_record(run.run_dir, "tavaal", 0, 1)
    assert record.device == "cpu"
    assert store.read_spec(run.run_dir)["config"]["device"] == "cuda"  # the run's own spec is untouched


def test_cuda_availability_is_checked_where_the_device_is_resolved():
    from tavaal_core.training import resolve_device

    config = ExperimentConfig(dataset="moons", device="cuda")  # a config is valid on any machine
    if NO_CUDA:
        with pytest.raises(ConfigError) as err:
            resolve_device(config.device)
        assert err.value.field == "device"


# -- 2. MC dropout needs dropout; the other methods train the papers' models, without it -------------------
def test_bald_without_dropout_is_refused_naming_the_field(digits_dataset):
    with pytest.raises(ConfigError) as err:
        ExperimentConfig(dataset="digits", method="bald", dropout=0.0)
    assert err.value.field == "dropout" and "bald" in str(err.value)
    learner = ActiveLearner(fast("digits", "random", dropout=0.0), dataset=digits_dataset).start()
    with pytest.raises(ConfigError) as err:
        learner.what_if(["bald"])
    assert err.value.field == "dropout"


def test_only_mc_dropout_methods_train_with_dropout(digits_dataset):
    learner = ActiveLearner(fast("digits", "entropy", stages=1), dataset=digits_dataset).start()
    records = learner.what_if(["entropy", "bald"])
    assert records["entropy"].task_dropout == 0.0  # the papers' models have no dropout
    assert records["bald"].task_dropout == pytest.approx(0.2)
    assert np.ptp(records["bald"].candidate_scores) > 0  # the passes differ
    explicit = ActiveLearner(fast("digits", "entropy", stages=1, dropout=0.3), dataset=digits_dataset).start()
    assert explicit.step().task_dropout == pytest.approx(0.3)  # a given rate applies to every method


# -- 3. every method's scores explain its picks, as the views describe them --------------------------------
def test_for_every_method_the_views_score_order_agrees_with_the_picks():
    learner = ActiveLearner(fast("moons", "random", stages=2, task_epochs=20, vae_epochs=10,
                                 unsupervised_vae_epochs=3)).start()
    learner.step()
    records = learner.what_if(available_methods())
    for method, r in records.items():
        order = r.view_order()
        b = len(r.selected)
        np.testing.assert_array_equal(r.candidates[order[:b]], r.selected, err_msg=method)
        scores = np.asarray(r.candidate_scores, np.float64)
        sign = 1.0 if r.higher_is_better else -1.0
        gains = sign * r.pick_gains
        assert gains.shape == (b,), method
        rest = sign * scores[order[b:]]
        # nothing left out beat the last pick when it was made ("higher / lower is picked first")
        assert rest.max() <= gains[-1] + 1e-9, method
        if not r.greedy:
            np.testing.assert_allclose(gains, sign * scores[order[:b]], err_msg=method)
            assert np.all(np.diff(gains) <= 1e-12), method
    assert records["coreset"].greedy and records["medal"].greedy and not records["lloss"].greedy
    assert np.all(np.diff(records["coreset"].pick_gains) <= 1e-9)  # k-center gains never rise


# -- 4. selection is scored in fp32 even where training runs in bf16 ----------------------------------------
def _bf16_training(monkeypatch):
    """Make training autocast to bf16 on the CPU, as it does on CUDA."""
    from tavaal_core import training

    monkeypatch.setattr(training, "autocast", lambda device, precision="auto": torch.autocast("cpu", dtype=torch.bfloat16))


def test_scores_are_fp32_when_training_runs_in_bf16(monkeypatch, digits_dataset):
    from tavaal_core import training
    from tavaal_core.models.task import build_task_model

    _bf16_training(monkeypatch)
    torch.manual_seed(0)
    model = build_task_model("cnn", digits_dataset.input_shape, 10).eval()
    x = digits_dataset.x_train[:300]
    with torch.autocast("cpu", dtype=torch.bfloat16):  # even inside a caller's bf16 region
        preds = training.predict(model, x, digits_dataset.normalize)
    with torch.no_grad():
        reference = model(digits_dataset.normalize(x).float())
    np.testing.assert_array_equal(preds.embedding, reference.embedding.numpy())
    np.testing.assert_allclose(preds.probs, reference.logits.softmax(1).numpy(), rtol=1e-6, atol=1e-7)

    learner = ActiveLearner(fast("digits", "lloss", stages=1, budget=20, subset_factor=25),
                            dataset=digits_dataset).start()
    record = learner.step()
    l_hat = record.candidate_predicted_loss
    assert l_hat.dtype == np.float32 and len(np.unique(l_hat)) == len(l_hat)  # bf16 tied hundreds


# -- 5. the loss head + VAE sees plain V(x); alpha enters only distances ------------------------------------
def test_alpha_does_not_change_loss_prediction_with_vae(digits_dataset):
    records = {}
    for alpha in (1.0, 3.0):
        learner = ActiveLearner(fast("digits", "lloss_vae", stages=1, alpha=alpha), dataset=digits_dataset).start()
        records[alpha] = learner.step()
    np.testing.assert_array_equal(records[1.0].selected, records[3.0].selected)
    np.testing.assert_array_equal(records[1.0].candidate_predicted_loss, records[3.0].candidate_predicted_loss)


def test_stored_vae_features_are_unscaled_so_the_feature_map_scales_them_once(digits_dataset):
    mus = {}
    for alpha in (1.0, 2.0):
        learner = ActiveLearner(fast("digits", "coreset_vae", stages=1, alpha=alpha), dataset=digits_dataset).start()
        mus[alpha] = learner.step().analysis_vae_mu
    np.testing.assert_array_equal(mus[1.0], mus[2.0])


# -- 6. TA-VAAL: uniform r at the first VAE iteration of a stage, as Algorithm 1 and its code --------------
@pytest.mark.parametrize("uniform_steps", [1, 0])
def test_the_first_vae_step_conditions_on_uniform_r(monkeypatch, uniform_steps):
    from tavaal_core import vaal_training
    from tavaal_core.models.discriminator import Discriminator

    seen = []
    original = Discriminator.forward

    def spy(self, mu, r=None):
        if self.training and mu.requires_grad:  # the VAE step's call (not the D step's, not scoring)
            seen.append(r.detach().clone())
        return original(self, mu, r)

    monkeypatch.setattr(Discriminator, "forward", spy)
    g = torch.Generator().manual_seed(0)
    x_l, x_u = torch.randn(16, 2, generator=g), torch.randn(48, 2, generator=g)
    l_hat_l, l_hat_u = torch.randn(16, generator=g), torch.randn(48, generator=g)
    settings = vaal_training.VAALSettings.two_moons(epochs=3, batch_size=1024, rank_conditioned=True,
                                                  uniform_rank_steps=uniform_steps)
    vaal_training.train_vaal(x_l, x_u, lambda t: t, settings, ranker_output_labeled=l_hat_l,
                           ranker_output_unlabeled=l_hat_u)
    ranker_r = torch.sigmoid(torch.cat([l_hat_l, l_hat_u]))
    assert len(seen) == 3
    # every later step sees the Ranker's r (as a set: batches are shuffled)
    assert torch.allclose(seen[1].flatten().sort().values, ranker_r.sort().values)
    first_is_ranker = torch.allclose(seen[0].flatten().sort().values, ranker_r.sort().values)
    assert first_is_ranker == (uniform_steps == 0)


def test_vae_steps_per_epoch_follow_the_reference_schedule(monkeypatch):
    """(labeled + subset) / batch steps an epoch, as TA-VAAL's code: the labeled set counts."""
    from tavaal_core import vaal_training

    calls = []
    monkeypatch.setattr(vaal_training, "discriminator_loss",
                        lambda *a, _f=vaal_training.discriminator_loss: calls.append(1) or _f(*a))
    g = torch.Generator().manual_seed(0)
    settings = vaal_training.VAALSettings.two_moons(epochs=2, batch_size=64)
    vaal_training.train_vaal(torch.randn(30, 2, generator=g), torch.randn(100, 2, generator=g), lambda t: t, settings)
    assert len(calls) == 2 * math.ceil((30 + 100) / 64)


# -- 7. entropy of a single class is +0.0 ------------------------------------------------------------------
def test_single_class_entropy_is_positive_zero():
    h, h_norm = class_count_entropy([10, 0, 0])
    assert h == 0.0 and math.copysign(1.0, h) == 1.0 and math.copysign(1.0, h_norm) == 1.0


# -- 8. the image demos' learner beats logistic regression -------------------------------------------------
def test_the_small_cnn_beats_logistic_regression_at_200_mnist_labels():
    from sklearn.linear_model import LogisticRegression

    from tavaal_core.data import load_dataset

    ds = load_dataset("mnist5k")
    learner = ActiveLearner(ExperimentConfig(dataset="mnist5k", method="random", initial_size=200, stages=1,
                                             analysis_size=0, seed=0), dataset=ds).start()
    accuracy = learner.step().accuracy
    labeled = learner.records[0].labeled
    flat = lambda x: x.reshape(len(x), -1).float().numpy() / 255.0  # noqa: E731
    baseline = LogisticRegression(max_iter=1000).fit(flat(ds.x_train[labeled]), ds.y_train[labeled].numpy())
    logistic = baseline.score(flat(ds.x_test), ds.y_test.numpy())
    assert accuracy >= 0.85 and accuracy > logistic + 0.03, (accuracy, logistic)


# -- schedules, candidate fraction, ImageNet weights ------------------------------------------------------
def test_the_epoch_schedule_adds_epochs_per_stage(digits_dataset):
    learner = ActiveLearner(fast("digits", "random", task_epochs=2, task_epochs_increment=3), dataset=digits_dataset)
    learner.start()
    lengths = [len(learner.step().task_loss_history) for _ in range(3)]
    assert lengths == [2, 5, 8]


def test_candidates_as_a_fraction_of_the_unlabeled_pool():
    from tavaal_core.data.pool import Pool

    pool = Pool.initial(32120, 1000, seed=0)
    assert len(pool.candidates(100, 10, 0, 0, fraction=0.05)) == 1556  # Godwin et al. 2022, Figure 5


def test_imagenet_weights_are_never_silently_replaced(tmp_path, monkeypatch, digits_dataset):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty"))
    config = fast("digits", "random", model="resnet18_imagenet", stages=1, task_epochs=1, analysis_size=0)
    assert config.pretrained_weights == "imagenet"
    with pytest.raises(ConfigError) as err:
        ActiveLearner(config, dataset=digits_dataset).start()
    assert err.value.field == "pretrained" and "pretrained 'none'" in str(err.value)
    accepted = ActiveLearner(config.with_(pretrained="none"), dataset=digits_dataset).start()
    assert accepted.step().task_init == "random"
    with pytest.raises(ConfigError) as err:
        ExperimentConfig(dataset="digits", model="cnn", pretrained="imagenet")
    assert err.value.field == "pretrained"


# -- presets as the papers ran them, with their sources ---------------------------------------------------
def test_presets_carry_the_papers_settings():
    from tavaal_core.presets import load_preset

    moons = load_preset("moons_fig1").config.resolve()
    assert moons.subset_factor == 10 and moons.lr == 0.1
    cifar100 = load_preset("cifar100_tavaal").config
    assert (cifar100.initial_size, cifar100.budget) == (2000, 2000)
    for name in ("mnist_scipy22", "chestmnist_scipy22"):
        c = load_preset(name).config
        assert (c.model, c.pretrained, c.optimizer, c.lr, c.momentum) == ("resnet18_imagenet", "imagenet", "sgd", 0.001, 0.9)
        assert (c.initial_size, c.budget, c.task_epochs, c.task_epochs_increment) == (3000, 3000, 10, 5)
    fig5 = load_preset("chestmnist_scipy22_fig5")
    assert fig5.config.subset_fraction == 0.05 and fig5.config.initial_size == 1000 and fig5.config.budget == 100
    assert set(fig5.methods) == {"coreset", "coreset_vae"}


def test_every_preset_value_names_its_source_and_users_never_read_internal_names(capsys):
    from tavaal_core.presets import available_presets, preset_data

    for name in available_presets():
        data = preset_data(name)
        text = json.dumps(data)
        assert "seed 004" not in text.lower() and "../shared" not in text, name
        missing = set(data["config"]) - set(data["notes"])
        assert not missing, f"{name}: no source for {sorted(missing)}"
    assert main(["presets", "moons_fig1"]) == 0
    out = capsys.readouterr().out
    line = next(line for line in out.splitlines() if line.strip().startswith("subset_factor"))
    assert " 10 " in line and "4.1" in line


def test_strategies_credit_the_right_authors():
    assert get_strategy("tavaal").paper.startswith("Kim, Park, Kim & Chun")
    for method in available_methods():
        assert "seed 004" not in get_strategy(method).paper.lower()


# -- issue 12: precision recorded, selection in fp32, each pool predicted once a stage ---------------------
@pytest.mark.skipif(not __import__("tavaal_core.training", fromlist=["x"]).cpu_supports_bf16(),
                    reason="this CPU has no native bf16")
def test_bf16_training_records_its_precision_and_still_scores_in_fp32(digits_dataset):
    records = {}
    for precision in ("bf16", "fp32"):
        learner = ActiveLearner(fast("digits", "lloss", stages=1, budget=20, subset_factor=25, precision=precision),
                                dataset=digits_dataset).start()
        records[precision] = learner.step()
    assert records["bf16"].precision == "bf16" and records["fp32"].precision == "fp32"
    l_hat = records["bf16"].candidate_predicted_loss
    assert l_hat.dtype == np.float32 and len(np.unique(l_hat)) == len(l_hat)
    assert abs(records["bf16"].accuracy - records["fp32"].accuracy) < 0.15, (records["bf16"].accuracy,
                                                                            records["fp32"].accuracy)


def test_auto_precision_keeps_the_mlp_in_fp32():
    from tavaal_core.training import resolve_precision

    assert resolve_precision("auto", torch.device("cpu"), "mlp") == "fp32"
    assert resolve_precision("fp32", torch.device("cpu"), "cnn") == "fp32"


def test_each_pool_is_predicted_once_per_stage(monkeypatch, digits_dataset):
    import tavaal_core.engine as engine

    sizes = []
    original = engine.predict
    monkeypatch.setattr(engine, "predict", lambda model, x, *a, **k: sizes.append(len(x)) or original(model, x, *a, **k))
    learner = ActiveLearner(fast("digits", "tavaal", stages=1), dataset=digits_dataset).start()
    record = learner.step()
    # test set, labeled set, candidates, analysis sample: once each (the Ranker's r, the scores and the
    # labeled likelihood share them)
    assert sorted(sizes) == sorted([len(digits_dataset.y_test), record.labeled_count, len(record.candidates),
                                    len(record.analysis_indices)])


# -- issue 12: a time estimate before every run -----------------------------------------------------------
def test_the_estimate_is_within_a_factor_of_two_of_a_measured_run(tmp_path, monkeypatch):
    from tavaal_core.estimate import estimate_spec

    monkeypatch.setenv("TAVAAL_CACHE_DIR", str(tmp_path / "cache"))
    spec = ExperimentSpec(ExperimentConfig(dataset="digits", stages=2, task_epochs=10, vae_epochs=4, initial_size=100,
                                           budget=50, analysis_size=200, device="cpu"),
                          methods=("random", "tavaal"), trials=1)
    estimate = estimate_spec(spec)
    assert estimate.probe_seconds > 0 and estimate_spec(spec).probe_seconds == 0.0  # probed once, then cached
    run = Experiment.create(spec, tmp_path, "timed")
    import time

    started = time.perf_counter()
    run.run()
    actual = time.perf_counter() - started
    assert 0.5 <= estimate.seconds / actual <= 2.0, (estimate.describe(), actual)


def test_a_probe_taken_on_a_busy_machine_is_taken_again_once_it_is_quiet(tmp_path, monkeypatch):
    """A probe measured while other work kept the cores busy reads slow; kept forever, every later estimate
    on the quiet machine would be several times too long (as the Stage explorer's once was, 4x)."""
    import tavaal_core.estimate as estimate_module

    monkeypatch.setenv("TAVAAL_CACHE_DIR", str(tmp_path / "cache"))
    config = ExperimentConfig(dataset="moons", stages=1, task_epochs=2, device="cpu")
    load = {"now": 3.0}
    monkeypatch.setattr(estimate_module, "load_per_core", lambda: load["now"])
    assert estimate_module.probe(config, vae=False)[1] > 0  # measured, on a busy machine
    assert estimate_module.probe(config, vae=False)[1] == 0.0  # still busy: the cached probe
    load["now"] = 0.4
    assert estimate_module.probe(config, vae=False)[1] > 0  # quiet now: measured again
    load["now"] = 3.0
    assert estimate_module.probe(config, vae=False)[1] == 0.0  # a quiet probe is kept


def test_a_step_estimate_counts_shared_task_models_once_and_methods_side_by_side(tmp_path, monkeypatch):
    from tavaal_core.estimate import estimate_step, makespan

    assert makespan([5, 4, 3, 3], 2) == 8 and makespan([5, 4, 3, 3], 1) == 15 and makespan([5], 4) == 5
    monkeypatch.setenv("TAVAAL_CACHE_DIR", str(tmp_path / "cache"))
    config = ExperimentConfig(dataset="digits", stages=2, task_epochs=4, initial_size=100, budget=50, device="cpu")
    methods = ["random", "coreset"]  # the same task learner: shared at stage 0
    alone = estimate_step(config, methods, 0, shared_task=False, workers=1)
    shared = estimate_step(config, methods, 0, shared_task=True, workers=1)
    task = alone.phases["task training"] / 2
    assert shared.seconds == pytest.approx(alone.seconds - task)
    side_by_side = estimate_step(config, methods, 0, shared_task=False, workers=2)
    assert side_by_side.seconds == pytest.approx(alone.seconds / 2)


def test_the_cli_prints_the_estimate_and_asks_for_yes_above_an_hour(tmp_path, monkeypatch, capsys):
    import tavaal_core.estimate as estimate_module

    monkeypatch.setenv("TAVAAL_CACHE_DIR", str(tmp_path / "cache"))
    config = tmp_path / "tiny.json"
    config.write_text(json.dumps({"config": {"dataset": "moons", "stages": 1, "task_epochs": 5, "vae_epochs": 2,
                                             "device": "cpu", "analysis_size": 50}, "methods": ["random"]}))
    out = tmp_path / "runs"
    assert main(["run", "--config", str(config), "--output", str(out), "--name", "a", "--quiet"]) == 0
    assert "estimate: about" in capsys.readouterr().err
    real = estimate_module.probe
    monkeypatch.setattr(estimate_module, "probe", lambda *a, **k: (estimate_module.Rates(task_step=1000.0, infer_image=0.1), 0.0))
    code = main(["run", "--config", str(config), "--output", str(out), "--name", "b", "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and "--yes" in err.splitlines()[-1] and not (out / "b").exists()
    assert main(["run", "--config", str(config), "--output", str(out), "--name", "c", "--quiet", "--yes"]) == 0
    monkeypatch.setattr(estimate_module, "probe", real)
