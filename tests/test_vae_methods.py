"""The VAAL family and the seed-004 VAE-augmented methods, through the engine."""
import numpy as np
import pytest
import torch

from tavaal_core import ActiveLearner, ExperimentConfig, available_methods
from tests.conftest import fast


@pytest.mark.parametrize("method", available_methods())
def test_paper_two_moons_setting_five_stages_deterministic(method):
    """TA-VAAL Fig. 1 setting: MLP, 100 task + 100 VAE epochs, 20 initial, 10 per stage, 5 stages."""
    cfg = ExperimentConfig(dataset="moons", method=method, stages=5)
    resolved = cfg.resolve()
    assert (resolved.task_epochs, resolved.vae_epochs, resolved.initial_size, resolved.budget) == (100, 100, 20, 10)
    runs = []
    for _ in range(2):
        learner = ActiveLearner(cfg).start()
        for _ in range(5):
            learner.step()
        runs.append([r.selected.tolist() for r in learner.records])
    assert runs[0] == runs[1]
    assert len({i for stage in runs[0] for i in stage}) == 50


@pytest.mark.parametrize("method", ["vaal", "tavaal", "vaal_lloss"])
def test_adversarial_methods_pick_the_lowest_discriminator_output(method):
    rec = ActiveLearner(fast("moons", method)).start().step()
    likelihood = rec.candidate_likelihood
    assert likelihood.shape == rec.candidates.shape and ((likelihood > 0) & (likelihood < 1)).all()
    assert np.allclose(rec.candidate_scores, likelihood)
    lowest = rec.candidates[np.argsort(likelihood, kind="stable")[:len(rec.selected)]]
    assert sorted(lowest.tolist()) == sorted(rec.selected.tolist())
    assert rec.selected_likelihood.max() <= np.sort(likelihood)[len(rec.selected)]
    assert rec.labeled_likelihood.shape == (rec.labeled_count,)
    assert rec.analysis_vae_mu.shape[0] == len(rec.analysis_indices)


def test_tavaal_records_ranker_output_and_conditions_on_it():
    learner = ActiveLearner(fast("moons", "tavaal")).start()
    rec = learner.what_if(["tavaal"])["tavaal"]
    assert rec.candidate_rank.shape == rec.candidates.shape
    assert ((rec.candidate_rank > 0) & (rec.candidate_rank < 1)).all()
    models = learner._cache[("vaal", "rank_conditioned", "ranking")]
    latent = models.settings.latent_dim
    first_d = next(m for m in models.discriminator.modules() if isinstance(m, torch.nn.Linear))
    assert first_d.in_features == latent + 1  # D sees concat(mu, r)
    plain = learner.what_if(["vaal"])["vaal"]
    plain_models = learner._cache[("vaal", "adversarial", "none")]
    first_plain = next(m for m in plain_models.discriminator.modules() if isinstance(m, torch.nn.Linear))
    assert first_plain.in_features == latent
    assert plain.candidate_rank.size == 0  # VAAL has no Ranker


def test_seed004_features_are_task_features_with_alpha_mu_appended(digits_dataset):
    learner = ActiveLearner(fast("digits", "coreset_vae", alpha=2.5), dataset=digits_dataset).start()
    learner.step()
    learner2 = ActiveLearner(fast("digits", "coreset_vae", alpha=2.5), dataset=digits_dataset).start()
    from tavaal_core.engine import _StageContext

    trained = learner2._task_model(learner2.pool.labeled, "none", False, 0.0, lambda *a: None)
    learner2._unsupervised(lambda *a: None)
    cand = learner2.pool.candidates(20, 10, 0, 0)
    ctx = _StageContext(learner2, trained, cand, learner2.pool.labeled, "coreset_vae", 0)
    feats, _ = ctx.features()
    task = learner2._predict(trained, digits_dataset.x_train[torch.as_tensor(cand)]).embedding
    from tavaal_core.vaal_training import encode_mu

    mu = encode_mu(learner2._unsupervised_vae, digits_dataset.x_train[torch.as_tensor(cand)], digits_dataset.normalize)
    expected = np.concatenate([task, 2.5 * mu.numpy()], axis=1)
    assert np.allclose(feats.numpy(), expected, atol=1e-5)
    assert learner.records[0].analysis_vae_mu.shape == (200, mu.shape[1])


@pytest.mark.parametrize("pair", [("coreset", "coreset_vae"), ("medal", "medal_vae")])
def test_alpha_zero_gives_exactly_the_plain_methods_picks(pair, digits_dataset):
    plain, augmented = pair
    picks = {}
    for method in pair:
        learner = ActiveLearner(fast("digits", method, alpha=0.0), dataset=digits_dataset).start()
        for _ in range(2):
            learner.step()
        picks[method] = [r.selected.tolist() for r in learner.records]
    assert picks[plain] == picks[augmented]
    nonzero = ActiveLearner(fast("digits", augmented, alpha=5.0), dataset=digits_dataset).start()
    nonzero.step()
    nonzero.step()
    assert [r.selected.tolist() for r in nonzero.records] != picks[plain]


def test_unsupervised_vae_is_trained_once_per_trial(digits_dataset, monkeypatch):
    from tavaal_core import vaal_training

    calls = []
    original = vaal_training.train_unsupervised_vae
    monkeypatch.setattr(vaal_training, "train_unsupervised_vae", lambda *a, **k: calls.append(1) or original(*a, **k))
    learner = ActiveLearner(fast("digits", "lloss_vae"), dataset=digits_dataset).start()
    for _ in range(3):
        learner.step()
    learner.what_if(["coreset_vae", "medal_vae"])
    assert len(calls) == 1
