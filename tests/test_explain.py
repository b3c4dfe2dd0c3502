"""'Why was this picked?': ranks, deciding terms and sentences from records; the what-if at a past stage."""
import numpy as np
import pytest
import torch

from tavaal_core import ActiveLearner, StageRecord
from tavaal_core.explain import (CANDIDATE, LABELED, NOT_CANDIDATE, PICKED, compare_ranks, explain, family,
                                 rank_of, ranking, same_state)
from tavaal_core.strategies.distance import k_center_greedy, nearest_center

from conftest import fast


def record(method="vaal", scores=(0.9, 0.1, 0.5, 0.3, 0.7), higher=False, selected=(11, 13), **extra):
    candidates = np.array([10, 11, 12, 13, 14])
    return StageRecord(
        stage=2, method=method, labeled_count=3, accuracy=0.8, per_class_accuracy=np.ones(2),
        class_counts=np.array([2, 1]), class_entropy=0.6, class_entropy_normalized=0.9,
        selected=np.array(selected), selected_labels=np.array([0, 1]), score_name="discriminator likelihood",
        higher_is_better=higher, labeled=np.array([0, 1, 2]), candidates=candidates,
        candidate_scores=np.array(scores, np.float64), candidate_loss=np.array([0.1, 2.0, 0.3, 1.0, 0.2]), **extra)


def test_ranking_puts_picks_first_then_the_rest_in_the_methods_direction():
    r = record()  # lower is better: 11 (0.1), 13 (0.3), then 12 (0.5), 14 (0.7), 10 (0.9)
    assert ranking(r).tolist() == [11, 13, 12, 14, 10]
    assert rank_of(r, 12) == 3 and rank_of(r, 10) == 5 and rank_of(r, 0) is None
    # greedy methods: the batch order wins over the initial score
    g = record("coreset", scores=(5, 1, 4, 3, 2), higher=True, selected=(11, 10), greedy=True)
    assert ranking(g).tolist() == [11, 10, 12, 13, 14]


def test_explain_a_vaal_pick_names_the_discriminator_output_and_its_standing():
    lik = np.array([0.9, 0.1, 0.5, 0.3, 0.7], np.float32)
    r = record(candidate_likelihood=lik)
    e = explain(r, 11, labels=np.array([0] * 10 + [0, 1, 0, 1, 0]), class_names=["upper", "lower"])
    assert e.status == PICKED and e.rank == 1 and e.pick_order == 1 and e.budget == 2 and e.candidates == 5
    assert e.true_class == "lower"
    d = next(t for t in e.terms if t.name.startswith("Discriminator"))
    assert d.value == pytest.approx(0.1) and d.note == "lower than all 4 other candidates"
    assert e.sentence.startswith("VAAL picked #11 (1st of its 2 picks at stage 2) because its discriminator")
    assert "0.1 probability of being labeled" in e.sentence


def test_explain_tavaal_adds_the_rankers_r():
    r = record("tavaal", candidate_likelihood=np.array([0.9, 0.1, 0.5, 0.3, 0.7], np.float32),
               candidate_rank=np.array([0.2, 0.95, 0.4, 0.6, 0.1], np.float32))
    e = explain(r, 11)
    assert any(t.name.startswith("Ranker's r") and t.value == pytest.approx(0.95) for t in e.terms)
    assert "Ranker's r = 0.95 (higher than all 4 other candidates)" in e.sentence


def test_explain_statuses_candidate_labeled_and_outside_the_subset():
    r = record()
    e = explain(r, 14)
    assert e.status == CANDIDATE and e.rank == 4 and "ranked 4th of 5 candidates" in e.sentence
    assert "only the first 2 are picked" in e.sentence and "the last pick had 0.3" in e.sentence
    assert explain(r, 1).status == LABELED and "already labeled" in explain(r, 1).sentence
    assert explain(r, 99).status == NOT_CANDIDATE and "random subset" in explain(r, 99).sentence


def test_explain_greedy_pick_names_its_gain_and_nearest_labeled_sample():
    r = record("coreset", scores=(5, 1, 2.5, 3, 2), higher=True, selected=(10, 12), greedy=True,
               selection_gain=np.array([5.0, 2.5]), candidate_nearest_labeled=np.array([2, 0, 1, 1, 2]))
    e = explain(r, 12, labels=np.array([0, 1, 1] + [0] * 12), class_names=["a", "b"])
    assert e.pick_order == 2
    assert "squared distance 2.5" in e.sentence and "nearest labeled sample is #1" in e.sentence
    near = next(t for t in e.terms if t.name.startswith("Nearest labeled"))
    assert near.value == 1 and near.note == "class b"


@pytest.mark.parametrize("method, fam", [("random", "random"), ("entropy", "entropy"), ("bald", "bald"),
                                         ("lloss", "loss"), ("coreset_vae", "distance"), ("medal", "distance"),
                                         ("vaal", "adversarial"), ("tavaal", "adversarial"),
                                         ("no_such_method", "score")])
def test_every_method_has_a_family(method, fam):
    assert family(method) == fam


def test_compare_ranks_and_same_state():
    a, b = record("vaal"), record("coreset", scores=(5, 1, 4, 3, 2), higher=True, selected=(10, 12))
    rows = {row["method"]: row for row in compare_ranks({"vaal": a, "coreset": b}, 12)}
    assert rows["vaal"]["rank"] == 3 and not rows["vaal"]["picked"]
    assert rows["coreset"]["rank"] == 2 and rows["coreset"]["picked"]
    assert same_state({"vaal": a, "coreset": b})
    b.candidates = b.candidates + 1
    assert not same_state({"vaal": a, "coreset": b})


def test_nearest_center_matches_brute_force_across_chunks():
    g = torch.Generator().manual_seed(0)
    cand, centers = torch.randn(50, 3, generator=g), torch.randn(23, 3, generator=g)
    dist, arg = nearest_center(cand, centers, chunk=5)
    full = torch.cdist(cand, centers).pow(2)
    assert torch.equal(arg, full.argmin(1))
    assert torch.allclose(dist, full.min(1).values, atol=1e-4)
    _, gains, _ = k_center_greedy(cand, centers, 4)
    assert gains[0] == pytest.approx(float(dist.max())) and list(gains) == sorted(gains, reverse=True)


def test_engine_records_what_explanations_need_and_fork_at_replays_a_past_state():
    learners = {m: ActiveLearner(fast("moons", m)).start() for m in ("coreset", "bald")}
    for lrn in learners.values():
        lrn.step()
        lrn.step()
    cs = learners["coreset"].records[1]
    assert cs.greedy and np.isfinite(cs.selection_gain).all() and len(cs.selection_gain) == len(cs.selected)
    e = explain(cs, cs.selected[0])
    assert f"squared distance {cs.selection_gain[0]:.3g}" in e.sentence and "nearest labeled sample is #" in e.sentence
    assert np.isin(cs.candidate_nearest_labeled, cs.labeled).all()
    bald = learners["bald"].records[1]
    assert bald.candidate_expected_entropy.shape == bald.candidates.shape
    assert np.allclose(bald.candidate_entropy - bald.candidate_expected_entropy, bald.candidate_scores, atol=1e-5)
    # what every method would have picked from core-set's labeled set at stage 1 (the learner is unchanged)
    fork = learners["coreset"].fork_at(1)
    assert fork.stage == 1 and learners["coreset"].stage == 2
    again = fork.what_if(["coreset", "random"])
    assert np.array_equal(again["coreset"].selected, cs.selected)
    assert same_state(again)
    with pytest.raises(ValueError, match="stage must be between 0 and 2"):
        learners["coreset"].fork_at(3)
