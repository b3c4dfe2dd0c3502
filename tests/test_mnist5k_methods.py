"""Every method runs on the third embedded dataset, real MNIST-5k (28x28), through what_if and step."""
import numpy as np
import pytest

from tavaal_core import ActiveLearner, available_methods
from tests.conftest import fast


@pytest.fixture(scope="module")
def mnist5k():
    from tavaal_core.data import load_dataset

    return load_dataset("mnist5k")


def test_every_method_on_mnist5k(mnist5k):
    learner = ActiveLearner(fast("mnist5k", "tavaal", analysis_size=100, subset_factor=5), dataset=mnist5k).start()
    labeled = set(learner.pool.labeled.tolist())
    records = learner.what_if(available_methods())
    for method, record in records.items():
        picks = record.selected.tolist()
        assert len(picks) == 20 and len(set(picks)) == 20 and not labeled & set(picks), method
        assert 0.0 <= record.accuracy <= 1.0
    assert records["tavaal"].candidate_likelihood.shape == records["tavaal"].candidates.shape
    step = learner.step()  # reuses the what-if's trained models: the same picks
    assert step.selected.tolist() == records["tavaal"].selected.tolist()
    assert np.isin(step.selected, learner.pool.labeled).all()
