"""The stage engine: every strategy, on moons and digits, picks `budget` new unique unlabeled samples per
stage, deterministically; what_if equals what a learner of that method would pick."""
import numpy as np
import pytest

from tavaal_core import ActiveLearner, available_methods
from tests.conftest import fast

METHODS = available_methods()


def run(cfg, dataset=None):
    learner = ActiveLearner(cfg, dataset=dataset).start()
    initial = set(learner.pool.labeled.tolist())
    for _ in range(cfg.stages):
        learner.step()
    return learner, initial


def check_stages(learner, initial, budget):
    labeled = set(initial)
    for rec in learner.records:
        picks = rec.selected.tolist()
        assert len(picks) == budget and len(set(picks)) == budget
        assert not labeled & set(picks), "picked an already-labeled sample"
        assert rec.labeled_count == len(labeled)
        assert 0.0 <= rec.accuracy <= 1.0
        assert rec.class_counts.sum() == len(labeled)
        assert len(rec.candidate_scores) == len(rec.candidates) == len(rec.candidate_loss)
        assert np.isin(rec.selected, rec.candidates).all()
        labeled |= set(picks)


@pytest.mark.parametrize("method", METHODS)
def test_moons_three_stages(method):
    cfg = fast("moons", method)
    learner, initial = run(cfg)
    check_stages(learner, initial, cfg.resolve().budget)
    assert learner.records[0].boundary_prob.shape == (80, 80)
    again, _ = run(cfg)
    for a, b in zip(learner.records, again.records):
        assert a.selected.tolist() == b.selected.tolist()
        assert a.accuracy == b.accuracy


@pytest.mark.parametrize("method", METHODS)
def test_digits_three_stages(method, digits_dataset):
    cfg = fast("digits", method)
    learner, initial = run(cfg, digits_dataset)
    check_stages(learner, initial, 20)
    again, _ = run(cfg, digits_dataset)
    assert [r.selected.tolist() for r in learner.records] == [r.selected.tolist() for r in again.records]


def test_every_method_starts_from_the_same_labels():
    pools = {m: ActiveLearner(fast("moons", m)).start().pool.labeled.tolist() for m in ("random", "coreset", "tavaal")}
    assert len({tuple(v) for v in pools.values()}) == 1


def test_what_if_equals_a_learner_of_that_method_and_changes_nothing():
    learner = ActiveLearner(fast("moons", "random")).start()
    learner.step()
    labeled_before = learner.pool.labeled.tolist()
    others = learner.what_if(["coreset", "lloss_v2", "entropy"])
    assert learner.pool.labeled.tolist() == labeled_before and learner.stage == 1
    for method, record in others.items():
        twin = ActiveLearner(fast("moons", method)).start()
        twin.pool = learner.pool.copy()
        twin.records = list(learner.records)
        assert twin.step().selected.tolist() == record.selected.tolist(), method
    # the learner's own next step is unaffected by the what-if
    fresh = ActiveLearner(fast("moons", "random")).start()
    fresh.step()
    assert learner.step().selected.tolist() == fresh.step().selected.tolist()


def test_subset_factor_limits_candidates():
    learner = ActiveLearner(fast("digits", "entropy", subset_factor=3)).start()
    rec = learner.step()
    assert len(rec.candidates) == 60 and len(set(rec.candidates.tolist())) == 60


def test_loss_head_records_predictions_and_ranker_output():
    rec = ActiveLearner(fast("moons", "lloss_v2")).start().step()
    assert rec.candidate_predicted_loss.shape == rec.candidates.shape
    assert np.allclose(rec.candidate_rank, 1 / (1 + np.exp(-rec.candidate_predicted_loss)))
    # l_hat is the score, highest first
    assert np.allclose(rec.candidate_scores, rec.candidate_predicted_loss)
    top = rec.candidates[np.argsort(-rec.candidate_scores, kind="stable")[:10]]
    assert top.tolist() == rec.selected.tolist()


def test_imbalanced_digits_counts_reach_the_pool():
    learner = ActiveLearner(fast("digits", "random", imbalance_ratio=10)).start()
    counts = learner.pool_class_counts
    assert (counts[:5] < counts[5:].min()).all()


def test_the_recorded_rank_is_the_sigmoid_and_a_drifted_ranker_warns_nothing():
    import warnings

    from tavaal_core.engine import rank_of

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the overflow of exp(1000) used to warn at every stage
        r = rank_of(np.array([-1000.0, 0.0, 2.0, 1000.0], np.float32))
    assert r[0] == 0.0 and r[1] == 0.5 and r[3] == 1.0
    assert r[2] == pytest.approx(1 / (1 + np.exp(-2.0)))
