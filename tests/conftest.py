"""Shared test set-up: passive OpenMP waits, one CPU thread, and small, fast configs."""
import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # see tavaal_core/__init__.py

import pytest  # noqa: E402
import torch  # noqa: E402

# One thread: our models are small enough that intra-op threads cost more than they give (bench/).
torch.set_num_threads(1)


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
