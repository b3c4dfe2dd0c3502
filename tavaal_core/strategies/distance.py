"""Distance-based strategies: core-set (k-center greedy) and MedAL, on task features or on the
seed-004 VAE-augmented features concat(task_features, alpha * mu)."""
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


def k_center_greedy(candidates: torch.Tensor, labeled: torch.Tensor, budget: int, with_gains: bool = False):
    """Core-set (Sener & Savarese 2018): repeatedly take u* = argmax_u min_l ||f(u) - f(l)||^2, then
    count u* as labeled. Returns (positions into ``candidates`` in pick order, initial min distances), and
    with ``with_gains`` each pick's min distance at the moment it was taken."""
    min_dist = min_sq_distance(candidates, labeled) if labeled.shape[0] else torch.full(
        (candidates.shape[0],), float("inf"), device=candidates.device)
    initial = min_dist.clone()
    picks, gains = [], []
    for _ in range(min(budget, candidates.shape[0])):
        i = int(torch.argmax(min_dist))
        picks.append(i)
        gains.append(float(min_dist[i]))
        min_dist = torch.minimum(min_dist, _sq_dists(candidates, candidates[i:i + 1])[:, 0])
        min_dist[i] = -1.0  # chosen: never again
    out = np.asarray(picks, dtype=np.int64), initial.cpu().numpy()
    return (*out, gains) if with_gains else out


def medal_greedy(candidates: torch.Tensor, labeled: torch.Tensor, budget: int, with_gains: bool = False):
    """MedAL (Smailagic et al. 2018): repeatedly take u* = argmax_u mean_l ||f(u) - f(l)||^2 and count it
    as labeled. The mean squared distance has a closed form, ||u||^2 - 2 u.mean(l) + mean(||l||^2), so the
    running update only needs the labeled set's sum and sum of squared norms."""
    total = labeled.sum(0)
    total_sq = labeled.pow(2).sum()
    count = labeled.shape[0]
    cand_sq = candidates.pow(2).sum(1)

    def mean_dist():
        return cand_sq - 2 * candidates @ (total / count) + total_sq / count

    scores = mean_dist()
    initial = scores.clone()
    taken = torch.zeros(candidates.shape[0], dtype=torch.bool, device=candidates.device)
    picks, gains = [], []
    for _ in range(min(budget, candidates.shape[0])):
        i = int(torch.argmax(torch.where(taken, torch.full_like(scores, -float("inf")), scores)))
        picks.append(i)
        gains.append(float(scores[i]))
        taken[i] = True
        total = total + candidates[i]
        total_sq = total_sq + cand_sq[i]
        count += 1
        scores = mean_dist()
    out = np.asarray(picks, dtype=np.int64), initial.cpu().numpy()
    return (*out, gains) if with_gains else out


def greedy_gains(scores_at_pick: list[float], n: int, positions: np.ndarray) -> np.ndarray:
    """Per candidate: the greedy score it had when it was picked (NaN for candidates not picked)."""
    gains = np.full(n, np.nan)
    gains[positions] = scores_at_pick
    return gains


class _Greedy(Strategy):
    greedy = staticmethod(k_center_greedy)

    def select(self, ctx) -> Selection:
        cand, lab = ctx.features()
        positions, initial, at_pick = self.greedy(cand, lab, ctx.budget, with_gains=True)
        diagnostics = {"candidate_gain": greedy_gains(at_pick, len(ctx.candidates), positions)}
        if lab.shape[0]:
            # What "far from the labeled set" means for one sample: which labeled sample is closest to it.
            _, nearest = nearest_center(cand, lab)
            diagnostics["candidate_nearest_labeled"] = np.asarray(ctx.labeled, np.int64)[nearest.cpu().numpy()]
        return Selection(ctx.candidates[positions], initial, self.score_name, True, diagnostics)


@register
class CoreSet(_Greedy):
    name = "coreset"
    label = "Core-set"
    paper = "Sener & Savarese, Active Learning for CNNs: A Core-Set Approach, ICLR 2018"
    description = "Picks samples far from everything labeled so far, so the labels cover the feature space."
    score_name = "squared distance to nearest labeled"


@register
class MedAL(_Greedy):
    name = "medal"
    label = "MedAL"
    paper = "Smailagic et al., MedAL: Accurate and Robust Deep Active Learning for Medical Image Analysis, ICMLA 2018"
    description = "Picks samples whose average distance to the labeled set is largest."
    score_name = "mean squared distance to labeled"
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
