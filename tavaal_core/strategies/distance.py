"""Distance-based strategies: core-set (k-center greedy) and MedAL, on task features or on the
Godwin et al. 2022 VAE-augmented features concat(task_features, alpha * mu)."""
from __future__ import annotations

import numpy as np
import torch

from .base import Needs, Selection, Strategy, register


def _sq_dists(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Squared Euclidean distances (len(a), len(b)), clamped at 0 against rounding."""
    return (a.pow(2).sum(1, keepdim=True) - 2 * a @ b.T + b.pow(2).sum(1)[None, :]).clamp_min_(0)


def min_sq_distance(candidates: torch.Tensor, centers: torch.Tensor, chunk: int = 4096) -> torch.Tensor:
    """For each candidate, min over centers of ||f(u) - f(l)||^2, in chunks: never an N x M matrix."""
    return nearest_center(candidates, centers, chunk)[0]


def nearest_center(candidates: torch.Tensor, centers: torch.Tensor, chunk: int = 4096
                   ) -> tuple[torch.Tensor, torch.Tensor]:
    """(min over centers of ||f(u) - f(l)||^2, position of that nearest center) per candidate, in chunks."""
    out = torch.full((candidates.shape[0],), float("inf"), device=candidates.device, dtype=candidates.dtype)
    arg = torch.full((candidates.shape[0],), -1, device=candidates.device, dtype=torch.long)
    for start in range(0, centers.shape[0], chunk):
        best = _sq_dists(candidates, centers[start:start + chunk]).min(1)
        closer = best.values < out
        out = torch.where(closer, best.values, out)
        arg = torch.where(closer, best.indices + start, arg)
    return out, arg


def k_center_greedy(candidates: torch.Tensor, labeled: torch.Tensor, budget: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Core-set (Sener & Savarese 2018): repeatedly take u* = argmax_u min_l ||f(u) - f(l)||^2, then
    count u* as labeled.

    Returns ``(positions, gains, scores)``: positions into ``candidates`` in pick order; each pick's
    gain (its squared distance to the nearest labeled-or-picked point at its turn, non-increasing);
    and a score per candidate that explains the order: a pick's gain, and for every other candidate
    its distance at the last pick's turn (never above the last gain, so no unpicked candidate
    outranks a pick)."""
    min_dist = min_sq_distance(candidates, labeled) if labeled.shape[0] else torch.full(
        (candidates.shape[0],), float("inf"), device=candidates.device)
    return _greedy_loop(candidates, budget, min_dist,
                        lambda dist, i: torch.minimum(dist, _sq_dists(candidates, candidates[i:i + 1])[:, 0]))


def _greedy_loop(candidates: torch.Tensor, budget: int, scores: torch.Tensor, update):
    """The shared greedy loop: take the argmax of ``scores`` among the candidates not taken yet, record
    its gain, ``scores = update(scores, i)``. Scores are fp32 or better (selection never runs in bf16)."""
    n = candidates.shape[0]
    taken = torch.zeros(n, dtype=torch.bool, device=candidates.device)
    at_last_turn = scores.clone()
    picks, gains = [], []
    for _ in range(min(budget, n)):
        masked = torch.where(taken, torch.full_like(scores, -float("inf")), scores)
        i = int(torch.argmax(masked))
        at_last_turn = scores.clone()
        picks.append(i)
        gains.append(float(scores[i]))
        taken[i] = True
        scores = update(scores, i)
    explained = at_last_turn.double().cpu().numpy()
    positions = np.asarray(picks, dtype=np.int64)
    gain = np.asarray(gains, dtype=np.float64)
    explained[positions] = gain
    return positions, gain, explained


def medal_greedy(candidates: torch.Tensor, labeled: torch.Tensor, budget: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """MedAL (Smailagic et al. 2018): repeatedly take u* = argmax_u mean_l ||f(u) - f(l)||^2 and count it
    as labeled. The mean squared distance has a closed form, ||u||^2 - 2 u.mean(l) + mean(||l||^2), so the
    running update only needs the labeled set's sum and sum of squared norms.

    Returns ``(positions, gains, scores)`` as :func:`k_center_greedy`. Unlike core-set's, MedAL's gains
    need not fall from pick to pick (adding a point moves the labeled mean), so the views show the picks
    in pick order and each pick's gain at its turn; an unpicked candidate's score is its mean distance at
    the last pick's turn."""
    state = {"total": labeled.sum(0), "total_sq": labeled.pow(2).sum(), "count": labeled.shape[0]}
    cand_sq = candidates.pow(2).sum(1)

    def mean_dist():
        return cand_sq - 2 * candidates @ (state["total"] / state["count"]) + state["total_sq"] / state["count"]

    def update(_scores, i):
        state["total"] = state["total"] + candidates[i]
        state["total_sq"] = state["total_sq"] + cand_sq[i]
        state["count"] += 1
        return mean_dist()

    return _greedy_loop(candidates, budget, mean_dist(), update)


class _Greedy(Strategy):
    greedy = staticmethod(k_center_greedy)

    def select(self, ctx) -> Selection:
        cand, lab = ctx.features()
        cand, lab = cand.float(), lab.float()
        positions, gains, scores = self.greedy(cand, lab, ctx.budget)
        diagnostics = {}
        if lab.shape[0]:
            # What "far from the labeled set" means for one sample: the labeled sample closest to it.
            _, nearest = nearest_center(cand, lab)
            diagnostics["candidate_nearest_labeled"] = np.asarray(ctx.labeled, np.int64)[nearest.cpu().numpy()]
        return Selection(ctx.candidates[positions], scores, self.score_name, True, diagnostics, gains=gains,
                         greedy=True)


@register
class CoreSet(_Greedy):
    name = "coreset"
    label = "Core-set"
    paper = "Sener & Savarese, Active Learning for CNNs: A Core-Set Approach, ICLR 2018"
    description = "Picks samples far from everything labeled so far, so the labels cover the feature space."
    score_name = "squared distance to nearest labeled, at its turn"


@register
class MedAL(_Greedy):
    name = "medal"
    label = "MedAL"
    paper = "Smailagic et al., MedAL: Accurate and Robust Deep Active Learning for Medical Image Analysis, ICMLA 2018"
    description = "Picks samples whose average distance to the labeled set is largest."
    score_name = "mean squared distance to labeled, at its turn"
    greedy = staticmethod(medal_greedy)


@register
class CoreSetVAE(CoreSet):
    name = "coreset_vae"
    label = "Core-set + VAE"
    paper = "Godwin et al., SciPy 2022 (eq. 6): core-set on concat(task features, alpha * VAE mu)"
    description = "Core-set on the task features with the VAE's features appended (scaled by alpha)."
    needs = Needs(vae="unsupervised", features="task+vae")


@register
class MedALVAE(MedAL):
    name = "medal_vae"
    label = "MedAL + VAE"
    paper = "Godwin et al., SciPy 2022: MedAL on concat(task features, alpha * VAE mu)"
    description = "MedAL on the task features with the VAE's features appended (scaled by alpha)."
    needs = Needs(vae="unsupervised", features="task+vae")
