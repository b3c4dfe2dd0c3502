"""Task models shared by the methods of a session (what makes the first Step cheaper)."""
import numpy as np

from tavaal_core import ActiveLearner

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
