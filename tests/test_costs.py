"""A Step's cost said before it starts, and task models shared by the methods of a session."""
import numpy as np
import pytest

from tavaal_core import ActiveLearner
from tavaal_core import estimate as costs
from tavaal_core.data import load_dataset

from conftest import fast


def test_task_models_trained_on_the_same_labels_are_shared_without_changing_picks(digits_dataset):
    shared = {}
    cfg = fast("digits", "random")
    together = {m: ActiveLearner(cfg.with_(method=m), dataset=digits_dataset, shared=shared).start()
                for m in ("random", "coreset", "entropy")}
    alone = ActiveLearner(cfg.with_(method="coreset"), dataset=digits_dataset).start()
    first = {m: lrn.step() for m, lrn in together.items()}
    assert "task training" in first["random"].timings  # trained here ...
    assert "task training" not in first["coreset"].timings  # ... and reused: same seed, stage, labels, needs
    assert "task training" not in first["entropy"].timings
    assert np.array_equal(first["coreset"].selected, alone.step().selected)
    assert first["coreset"].accuracy == first["random"].accuracy
    second = {m: lrn.step() for m, lrn in together.items()}  # the labeled sets differ now: each trains its own
    assert all("task training" in r.timings for r in second.values())
    assert np.array_equal(second["coreset"].selected, alone.step().selected)


def test_stage_work_counts_what_each_method_trains():
    cfg = fast("digits", "random", task_epochs=10, vae_epochs=4)
    plain = costs.stage_work(cfg, "random", labeled=100, unlabeled=1000)
    vaal = costs.stage_work(cfg, "vaal", labeled=100, unlabeled=1000)
    assert plain["task training"] == 10 * 100 and "VAE / discriminator" not in plain
    assert vaal["VAE / discriminator"] > 0
    assert costs.stage_work(cfg, "random", 200, 900)["task training"] == 2 * plain["task training"]
    assert "unsupervised VAE" in costs.stage_work(cfg, "coreset_vae", 100, 1000, first_stage=True)
    assert "unsupervised VAE" not in costs.stage_work(cfg, "coreset_vae", 100, 1000)


def test_rates_measured_on_a_stage_predict_that_stage(digits_dataset):
    cfg = fast("digits", "vaal")
    learner = ActiveLearner(cfg, dataset=digits_dataset).start()
    record = learner.step()
    n = len(digits_dataset.y_train)
    rates = costs.rates_from_record(cfg, record, n)
    predicted = costs.estimate_seconds(cfg, "vaal", record.labeled_count, n - record.labeled_count, rates)
    assert predicted == pytest.approx(sum(record.timings.values()), rel=0.05)
    # a larger labeled set costs more
    assert costs.estimate_seconds(cfg, "vaal", 4 * record.labeled_count, n, rates) > predicted
