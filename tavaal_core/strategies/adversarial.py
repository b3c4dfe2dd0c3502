"""VAAL and TA-VAAL: pick the candidates the discriminator is most confident are unlabeled."""
from __future__ import annotations

from .base import Needs, Strategy, register


class _Adversarial(Strategy):
    score_name = "discriminator likelihood (labeled)"
    higher_is_better = False  # eq. (7): the lowest D output first

    def scores(self, ctx):
        return ctx.discriminator_likelihood()


@register
class VAAL(_Adversarial):
    name = "vaal"
    label = "VAAL"
    paper = "Sinha, Ebrahimi & Darrell, Variational Adversarial Active Learning, ICCV 2019"
    description = ("A VAE and a discriminator play a game on labeled vs unlabeled data; the samples the "
                   "discriminator is surest are unlabeled get picked.")
    needs = Needs(vae="adversarial")


@register
class TAVAAL(_Adversarial):
    name = "tavaal"
    label = "TA-VAAL"
    paper = "Kim, Park, Kim & Chun, Task-Aware Variational Adversarial Active Learning, CVPR 2021"
    description = ("VAAL whose VAE decoder and discriminator also see the Ranker's predicted loss rank, so "
                   "picks are both hard for the task and spread over the data.")
    needs = Needs(head="ranking", vae="rank_conditioned")


@register
class VAALLearningLoss(_Adversarial):
    name = "vaal_lloss"
    label = "VAAL + learning loss"
    paper = "Kim et al., TA-VAAL, CVPR 2021, Figure 6 ablation: rank conditioning with the margin-loss head"
    description = "TA-VAAL's conditioning, but the rank comes from Learning Loss's margin-trained head."
    needs = Needs(head="margin", vae="rank_conditioned")
