"""Baselines that need only the task learner's predictions: random, entropy, MC-dropout BALD."""
from __future__ import annotations

import numpy as np

from .base import Needs, Selection, Strategy, register


def predictive_entropy(probs: np.ndarray) -> np.ndarray:
    """H(p) = -sum_k p_k log p_k along the last axis (0 log 0 = 0)."""
    p = np.clip(probs, 1e-12, 1.0)
    return -(probs * np.log(p)).sum(-1)


def bald_scores(mc_probs: np.ndarray) -> np.ndarray:
    """BALD mutual information from T stochastic passes (T, N, K): H(mean_t p_t) - mean_t H(p_t).
    Non-negative by Jensen's inequality; float rounding is clipped at 0."""
    return np.maximum(predictive_entropy(mc_probs.mean(0)) - predictive_entropy(mc_probs).mean(0), 0.0)


@register
class RandomSampling(Strategy):
    name = "random"
    label = "Random"
    paper = "uniform sampling baseline"
    description = "Picks unlabeled samples uniformly at random, without replacement."
    score_name = "random draw"

    def select(self, ctx) -> Selection:
        scores = ctx.rng.random(len(ctx.candidates))
        order = np.argsort(-scores, kind="stable")
        return Selection(ctx.candidates[order[: ctx.budget]], scores, self.score_name, True)


@register
class EntropySampling(Strategy):
    name = "entropy"
    label = "Entropy"
    paper = "Shannon entropy uncertainty sampling (Settles 2009)"
    description = ("Picks the samples whose predicted class probabilities are the most uncertain "
                   "(segmentation: the per-pixel entropy averaged over the image).")
    score_name = "predictive entropy"

    def scores(self, ctx):
        return ctx.predictive_entropy()


@register
class BALD(Strategy):
    name = "bald"
    label = "MC-dropout (BALD)"
    paper = "Gal, Islam & Ghahramani, Deep Bayesian Active Learning with Image Data, ICML 2017"
    description = ("Runs the model many times with dropout on and picks the samples the runs disagree on "
                   "most (mutual information; segmentation: per pixel, averaged over the image).")
    needs = Needs(mc_dropout=True)
    score_name = "BALD mutual information"

    def scores(self, ctx):
        return ctx.bald()

    def diagnostics(self, ctx):
        # BALD's two terms, so a pick can be explained: uncertain overall, yet each pass confident.
        if getattr(ctx, "segmentation", False):
            return {}
        mc = ctx.mc_probs()
        return {"candidate_entropy": predictive_entropy(mc.mean(0)),
                "candidate_expected_entropy": predictive_entropy(mc).mean(0)}
