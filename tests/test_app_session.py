"""The app's session layer without a browser: learners step together, an interrupted step is completed,
a failing method is dropped with its message, and a Source exposes the records by stage."""
import numpy as np
import pytest

from explorer_ui.session import LiveSession, fit_stages, pool_size
from explorer_ui.source import DatasetMeta, Source
from tavaal_core import ConfigError, ExperimentConfig
from tavaal_core.data import load_dataset

FAST = dict(dataset="moons", dataset_options=dict(n_per_class=(60, 30)), initial_size=10, budget=5, stages=30,
            task_epochs=5, vae_epochs=2)


def session(methods=("random", "coreset")) -> LiveSession:
    return LiveSession.create("t", "Test", ExperimentConfig(**FAST), list(methods))


def test_methods_start_from_the_same_labels_and_step_together():
    s = session()
    labeled = [lrn.pool.labeled for lrn in s.learners.values()]
    assert np.array_equal(labeled[0], labeled[1])
    assert s.config.stages == (90 - 10) // 5  # as many stages as the pool allows
    s.step()
    assert s.stage == 1 and s.aligned
    assert [len(r) for r in s.source.records.values()] == [1, 1]
    assert s.source.at(0).keys() == {"random", "coreset"}


def test_an_interrupted_step_is_completed_by_the_next():
    s = session()
    s.learners["random"].step()  # as if the click was cut short after the first method
    assert s.stage == 0 and not s.aligned
    s.step()
    assert s.stage == 1 and s.aligned
    assert {m: lrn.stage for m, lrn in s.learners.items()} == {"random": 1, "coreset": 1}


def test_a_failing_method_is_dropped_with_its_message(monkeypatch):
    s = session()

    def broken(progress=None):
        raise RuntimeError("boom")

    monkeypatch.setattr(s.learners["coreset"], "step", broken)
    failures = s.step()
    assert [(f.method, f.message) for f in failures] == [("coreset", "RuntimeError: boom")]
    assert list(s.learners) == ["random"] and "coreset" not in s.source.records
    assert "Core-set could not run" in s.failure_text(failures[0])


def test_bad_settings_raise_config_errors_naming_the_field():
    with pytest.raises(ConfigError) as e:
        LiveSession.create("t", "T", ExperimentConfig(**dict(FAST, initial_size=200)), ["random"])
    assert e.value.field == "initial_size"
    with pytest.raises(ConfigError) as e:
        LiveSession.create("t", "T", ExperimentConfig(**dict(FAST, budget=500)), ["random"])
    assert e.value.field == "budget"
    with pytest.raises(ConfigError) as e:
        LiveSession.create("t", "T", ExperimentConfig(**FAST), [])
    assert e.value.field == "methods"


def test_pool_size_follows_the_imbalance_cut():
    ds = load_dataset("digits")
    cfg = ExperimentConfig(dataset="digits", imbalance_ratio=10.0)
    n = pool_size(cfg, ds)
    assert n < len(ds.y_train)
    assert fit_stages(cfg, n).stages == min(30, (n - 100) // 50)


def test_saved_records_open_as_a_source():
    s = session()
    s.step()
    saved = Source.from_records("run:x", "Run x", {m: list(r) for m, r in s.source.records.items()},
                                config=s.config)
    assert not saved.live and saved.stages == 1 and saved.methods == ["random", "coreset"]
    assert isinstance(saved.meta, DatasetMeta) and saved.meta.points.shape == (90, 2)
    assert np.array_equal(saved.meta.labels, s.source.meta.labels)
