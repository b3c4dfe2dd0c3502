"""Shared test set-up: two CPU threads (the CI machine's cores), and small, fast configs."""
import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # see tavaal_core/__init__.py

import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(min(2, os.cpu_count() or 1))


@pytest.fixture(scope="session")
def digits_dataset():
    from tavaal_core.data import load_dataset

    return load_dataset("digits")


def fast(dataset: str, method: str, **overrides):
    """A config small enough for unit tests (a few epochs, small budgets)."""
    from tavaal_core import ExperimentConfig

    base = dict(dataset=dataset, method=method, stages=3, seed=0)
    if dataset == "moons":
        base.update(task_epochs=30, vae_epochs=20)
    else:
        base.update(task_epochs=3, vae_epochs=2, unsupervised_vae_epochs=1, initial_size=40, budget=20,
                    analysis_size=200, mc_passes=5)
    base.update(overrides)
    return ExperimentConfig(**base)
