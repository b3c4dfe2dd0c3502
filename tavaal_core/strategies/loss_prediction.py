"""Loss-prediction strategies: pick the candidates whose predicted loss l_hat is highest."""
from __future__ import annotations

from .base import Needs, Strategy, register


class _PredictedLoss(Strategy):
    score_name = "predicted loss"

    def scores(self, ctx):
        return ctx.predictions().predicted_loss


@register
class LearningLoss(_PredictedLoss):
    name = "lloss"
    label = "Learning loss"
    paper = "Yoo & Kweon, Learning Loss for Active Learning, CVPR 2019"
    description = "A small head learns to predict the model's loss; the samples with the highest predicted loss are picked."
    needs = Needs(head="margin")


@register
class LearningLossV2(_PredictedLoss):
    name = "lloss_v2"
    label = "Learning loss v2 (ranking)"
    paper = "Kim et al., TA-VAAL, CVPR 2021, eq. (1) without VAAL (ablation, section 5.1)"
    description = "Learning loss trained with TA-VAAL's ranking loss instead of the margin loss."
    needs = Needs(head="ranking")


@register
class LearningLossVAE(_PredictedLoss):
    name = "lloss_vae"
    label = "Learning loss + VAE"
    paper = "Godwin et al., SciPy 2022: VAE mu appended to the loss head's concatenated features"
    description = "Learning loss whose head also sees the VAE's features of each sample."
    needs = Needs(head="margin", vae="unsupervised", head_extra=True)
