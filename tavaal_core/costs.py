"""What a stage will cost, said before it starts.

The work of a stage, per phase, is counted in samples passed through a network (``stage_work``): the
task learner sees ``labeled x epochs`` samples, a VAAL-family VAE ``2 x batch x steps`` per epoch over the
candidate subset, scoring ``candidates`` (x passes for MC dropout). A machine's speed is a rate in seconds
per sample and phase, measured from the stages it already ran (``rates_from_record``); before any, a
rough rate for a 2-core CPU (``CPU_RATES``, from ``bench/bench_stages.py``) stands in. Pure: no clock here.
"""
from __future__ import annotations

import math

from .config import ExperimentConfig
from .records import StageRecord

PHASES = ("unsupervised VAE", "task training", "evaluation", "VAE / discriminator", "scoring")

# Seconds per sample and phase on the 2-core CPU, small CNN on 28x28 (bench/bench_stages.py, MNIST-5k), and
# the MLP on 2-d points. Only for a first estimate: later ones use the machine's own measured rates.
CPU_RATES = {
    "cnn": {"task training": 4e-4, "VAE / discriminator": 2.5e-4, "unsupervised VAE": 1.5e-4, "scoring": 2e-4},
    "mlp": {"task training": 1e-6, "VAE / discriminator": 2e-6, "unsupervised VAE": 1e-6, "scoring": 5e-5},
    "resnet18": {"task training": 1e-2, "VAE / discriminator": 1e-3, "unsupervised VAE": 1e-3, "scoring": 3e-3},
}
CPU_RATES["resnet18_imagenet"] = CPU_RATES["resnet18"]


def candidate_count(config: ExperimentConfig, unlabeled: int) -> int:
    c = config.resolve()
    return unlabeled if not c.subset_factor else min(unlabeled, c.subset_factor * c.budget)


def stage_work(config: ExperimentConfig, method: str, labeled: int, unlabeled: int,
               first_stage: bool = False) -> dict[str, float]:
    """Samples through a network per phase for one stage of ``method`` with ``labeled`` labels and
    ``unlabeled`` samples in the pool (the seed-004 VAE trains once per trial: ``first_stage``)."""
    from .strategies import get_strategy

    c = config.resolve()
    needs = get_strategy(method).needs
    cand = candidate_count(c, unlabeled)
    work = {"task training": float(c.task_epochs * labeled * (1.3 if needs.head != "none" else 1.0))}
    if needs.vae in ("adversarial", "rank_conditioned"):
        steps = math.ceil(cand / max(1, c.vae_batch_size)) * c.vae_epochs
        work["VAE / discriminator"] = float(steps * 2 * min(c.vae_batch_size, cand))
    if needs.vae == "unsupervised" and first_stage:
        work["unsupervised VAE"] = float(c.unsupervised_vae_epochs * (labeled + unlabeled))
    work["scoring"] = float(cand * (c.mc_passes if needs.mc_dropout else 1) + min(c.analysis_size, labeled + unlabeled))
    return work


def rates_from_record(config: ExperimentConfig, record: StageRecord, pool_size: int) -> dict[str, float]:
    """Seconds per sample and phase measured on one finished stage."""
    work = stage_work(config, record.method, record.labeled_count, pool_size - record.labeled_count,
                      first_stage=record.stage == 0)
    rates = {}
    for phase, units in work.items():
        seconds = record.timings.get(phase, 0.0) + (record.timings.get("evaluation", 0.0) if phase == "scoring" else 0)
        if units > 0 and seconds > 0:
            rates[phase] = seconds / units
    return rates


def estimate_seconds(config: ExperimentConfig, method: str, labeled: int, unlabeled: int,
                     rates: dict[str, float] | None = None, first_stage: bool = False) -> float:
    """Expected seconds of one stage of ``method`` at ``rates`` (default: ``CPU_RATES`` of its model)."""
    c = config.resolve()
    fallback = CPU_RATES.get(c.model, CPU_RATES["cnn"])
    rates = {**fallback, **(rates or {})}
    return sum(units * rates.get(phase, 0.0) for phase, units in
               stage_work(c, method, labeled, unlabeled, first_stage=first_stage).items())
