"""Selection rules against brute force and by hand: k-center greedy, MedAL, BALD, entropy, random."""
import itertools

import numpy as np
import pytest
import torch

from tavaal_core.strategies import available_methods, get_strategy, top_k
from tavaal_core.strategies.distance import k_center_greedy, medal_greedy
from tavaal_core.strategies.uncertainty import bald_scores, predictive_entropy
from tavaal_core.training import mc_dropout_probs
from tavaal_core.models.task import SmallCNN


def brute_k_center(cand, lab, budget, with_gains=False):
    chosen, gains, centers = [], [], list(lab)
    for _ in range(budget):
        best, best_d = None, -1.0
        for i, u in enumerate(cand):
            if i in chosen:
                continue
            d = min(float(((u - c) ** 2).sum()) for c in centers)
            if d > best_d:
                best, best_d = i, d
        chosen.append(best)
        gains.append(best_d)
        centers.append(cand[best])
    return (chosen, gains) if with_gains else chosen


def brute_medal(cand, lab, budget, with_gains=False):
    chosen, gains, centers = [], [], list(lab)
    for _ in range(budget):
        scores = [(-np.inf if i in chosen else np.mean([((u - c) ** 2).sum() for c in centers])) for i, u in enumerate(cand)]
        chosen.append(int(np.argmax(scores)))
        gains.append(max(scores))
        centers.append(cand[chosen[-1]])
    return (chosen, gains) if with_gains else chosen


@pytest.mark.parametrize("seed", range(5))
def test_k_center_greedy_matches_brute_force(seed):
    g = np.random.default_rng(seed)
    cand, lab = g.normal(size=(40, 3)), g.normal(size=(7, 3))
    picks, gains, scores = k_center_greedy(torch.tensor(cand), torch.tensor(lab), 6)
    expected_picks, expected_gains = brute_k_center(cand, lab, 6, with_gains=True)
    assert picks.tolist() == expected_picks
    assert np.allclose(gains, expected_gains)
    assert np.all(np.diff(gains) <= 1e-12), "k-center gains never rise"
    # Each unpicked candidate's score is its distance to labeled + the first 5 picks (the last turn) ...
    centers = np.concatenate([lab, cand[picks[:-1]]])
    rest = np.setdiff1d(np.arange(len(cand)), picks)
    assert np.allclose(scores[rest], ((cand[rest, None, :] - centers[None]) ** 2).sum(-1).min(1))
    # ... so no unpicked candidate scores above any pick: "higher is picked first" holds.
    assert scores[rest].max() <= gains.min() + 1e-12


def test_k_center_chunked_distance_equals_unchunked():
    from tavaal_core.strategies.distance import min_sq_distance

    g = torch.Generator().manual_seed(0)
    cand, lab = torch.randn(50, 4, generator=g, dtype=torch.float64), torch.randn(33, 4, generator=g, dtype=torch.float64)
    assert torch.allclose(min_sq_distance(cand, lab, chunk=5), min_sq_distance(cand, lab, chunk=1000))


@pytest.mark.parametrize("seed", range(3))
def test_medal_matches_brute_force(seed):
    g = np.random.default_rng(seed)
    cand, lab = g.normal(size=(30, 2)), g.normal(size=(5, 2))
    picks, gains, scores = medal_greedy(torch.tensor(cand), torch.tensor(lab), 5)
    expected_picks, expected_gains = brute_medal(cand, lab, 5, with_gains=True)
    assert picks.tolist() == expected_picks
    assert np.allclose(gains, expected_gains)
    rest = np.setdiff1d(np.arange(len(cand)), picks)
    assert np.allclose(scores[picks], gains)
    assert scores[rest].max() <= gains[-1] + 1e-12  # nothing unpicked beat the last pick at its turn


def test_entropy_and_bald_by_hand():
    probs = np.array([[0.5, 0.5], [1.0, 0.0], [0.9, 0.1]])
    assert np.allclose(predictive_entropy(probs), [np.log(2), 0.0, -(0.9 * np.log(0.9) + 0.1 * np.log(0.1))])
    # Two passes that disagree completely: mean is uniform (H = log 2), each pass is certain (H = 0).
    disagree = np.array([[[1.0, 0.0]], [[0.0, 1.0]]])
    agree = np.array([[[0.5, 0.5]], [[0.5, 0.5]]])
    assert np.allclose(bald_scores(disagree), [np.log(2)])
    assert np.allclose(bald_scores(agree), [0.0])


def test_bald_is_nonnegative_and_leaves_batchnorm_untouched():
    torch.manual_seed(0)
    model = SmallCNN(1, 10, dropout=0.5, input_size=(8, 8))
    model.train()
    model(torch.randn(16, 1, 8, 8))  # give BN some non-default running statistics
    model.eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    x = torch.randn(30, 1, 8, 8)
    probs = mc_dropout_probs(model, x, lambda t: t, passes=10, generator=torch.Generator().manual_seed(1))
    assert probs.shape == (10, 30, 10)
    assert not np.allclose(probs[0], probs[1])  # dropout really was on
    scores = bald_scores(probs)
    assert (scores >= 0).all() and scores.max() > 0
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert not model.training


def test_top_k_direction_and_ties():
    cand = np.array([10, 11, 12, 13])
    scores = np.array([0.1, 0.9, 0.9, 0.5])
    assert top_k(cand, scores, 2, higher_is_better=True).tolist() == [11, 12]
    assert top_k(cand, scores, 2, higher_is_better=False).tolist() == [10, 13]


class _Ctx:
    def __init__(self, n, budget, seed):
        self.candidates = np.arange(100, 100 + n)
        self.labeled = np.arange(5)
        self.budget = budget
        self.rng = np.random.default_rng(seed)


def test_random_is_without_replacement_and_uniform():
    random = get_strategy("random")
    picks = random.select(_Ctx(50, 50, 0)).indices
    assert sorted(picks.tolist()) == list(range(100, 150))  # all of them, each once
    counts = np.zeros(50)
    for seed in range(400):
        counts[random.select(_Ctx(50, 5, seed)).indices - 100] += 1
    assert counts.min() > 10 and counts.max() < 75  # expected 40 each


def test_every_strategy_names_its_paper_and_needs():
    for name in available_methods():
        s = get_strategy(name)
        assert s.paper and s.label and s.description
    assert get_strategy("vaal").higher_is_better is False  # lowest discriminator output first (eq. 7)
    assert get_strategy("tavaal").needs.vae == "rank_conditioned" and get_strategy("tavaal").needs.head == "ranking"
    assert get_strategy("lloss").needs.head == "margin" and get_strategy("lloss_v2").needs.head == "ranking"
    # Baselines never train the loss head (the reference code's `if method == 'lloss' or 'TA-VAAL'` fault).
    for name in ("random", "entropy", "bald", "coreset", "medal", "vaal"):
        assert get_strategy(name).needs.head == "none"
