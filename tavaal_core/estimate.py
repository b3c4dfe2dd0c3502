"""How long a run will take on this machine, before it starts.

A short probe measures each phase on this machine's device and precision with the config's models (one
task-learner training step, one inference image, one VAE + discriminator step, one unsupervised-VAE
step); the probe is cached on disk per (device, precision, threads, model and sizes), so it runs once.
The estimate multiplies those rates by the steps the config implies, stage by stage, the way the engine
runs them (docs/METHODS.md): task epochs x batches of the growing labeled set; the VAE schedule
``vae_epochs x (labeled + candidates) / batch``; inference over the test set, the labeled set, the
candidates and the analysis sample; one unsupervised VAE per trial for the Godwin et al. 2022 methods.

>>> est = estimate_spec(load_preset("digits_demo"))      # doctest: +SKIP
>>> est.seconds, est.describe()                          # doctest: +SKIP

The Stage explorer and the two-moons page say what their next Step costs with the same estimate, for one
stage (``estimate_config(config, methods, stages=[stage])``).
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from .config import ExperimentConfig
from .errors import TavaalError
from .phases import PHASE_INFERENCE, PHASE_TASK, PHASE_UNSUP_VAE, PHASE_VAE

# Input shape, training and test sizes of the sets that need files, for an estimate before they exist
# (the loaded dataset's own sizes are used whenever it loads).
NOMINAL_SIZES = {
    "mnist": ((1, 28, 28), 60_000, 10_000, 10), "fashion_mnist": ((1, 28, 28), 60_000, 10_000, 10),
    "cifar10": ((3, 32, 32), 50_000, 10_000, 10), "cifar100": ((3, 32, 32), 50_000, 10_000, 100),
    "svhn": ((3, 32, 32), 73_257, 26_032, 10), "medmnist": ((1, 28, 28), 78_468, 22_433, 2),
}
PROBE_VERSION = 2
# A probe taken while other work kept the cores busy reads slow (a shared CI box, a second session): it is
# kept with the load it saw, and taken again once the machine is this much quieter.
BUSY_LOAD_PER_CORE = 1.0


@dataclass
class Rates:
    """Measured seconds on this machine: one training step (``batch_size`` images, with a loss head),
    one inference image (fp32), one VAE + discriminator step, one unsupervised-VAE step."""

    task_step: float
    infer_image: float
    vae_step: float = 0.0
    unsupervised_step: float = 0.0


@dataclass
class Estimate:
    seconds: float
    device: str
    precision: str
    phases: dict = field(default_factory=dict)  # phase -> seconds
    probe_seconds: float = 0.0  # time spent measuring now (0 when the cached probe was used)
    per_method: dict = field(default_factory=dict)  # method -> {phase -> seconds}

    def describe(self) -> str:
        parts = ", ".join(f"{k} {format_duration(v)}" for k, v in self.phases.items() if v >= 0.5)
        return (f"about {format_duration(self.seconds)} on this {self.device.upper()} ({self.precision})"
                + (f": {parts}" if parts else ""))


def format_duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.0f} s"
    if seconds < 3600:
        return f"{seconds / 60:.1f} min"
    if seconds < 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"


def _cache_file() -> Path:
    root = Path(os.environ.get("TAVAAL_CACHE_DIR", Path.home() / ".cache" / "tavaal-explorer"))
    return root / "probes.json"


def _shape_and_sizes(config: ExperimentConfig):
    """(input shape, train size, test size, classes, dataset or None) after the config's cuts."""
    from .data import prepare_dataset

    try:
        ds = prepare_dataset(config)
        return tuple(ds.input_shape), len(ds.y_train), len(ds.y_test), ds.num_classes, ds
    except TavaalError:
        if config.dataset not in NOMINAL_SIZES:
            raise
        shape, n_train, n_test, k = NOMINAL_SIZES[config.dataset]
        if config.subsample is not None:
            n_train = min(n_train, config.subsample)
        return shape, n_train, n_test, k, None


def probe(config: ExperimentConfig, vae: bool = True, unsupervised: bool = False) -> tuple[Rates, float]:
    """Rates for ``config`` (resolved) on this machine, from the disk cache or measured now (a few steps of
    each phase on random data of the right shape). Returns (rates, seconds spent measuring)."""
    from . import vaal_training
    from .models.loss_head import LossPredictionHead
    from .models.task import build_task_model
    from .training import (TrainSettings, predict, resolve_device, resolve_precision, small_model_cpu_threads,
                           train_task_model)

    cfg = config.resolve()
    device = resolve_device(cfg.device)
    precision = resolve_precision(cfg.precision, device, cfg.model)
    shape, *_ = _shape_and_sizes(cfg)
    threads = (small_model_cpu_threads(cfg.model) or torch.get_num_threads()) if device.type == "cpu" else 0
    key_parts = [PROBE_VERSION, str(device), torch.cuda.get_device_name(device) if device.type == "cuda" else "",
                 precision, threads, cfg.model, list(shape), cfg.batch_size, cfg.vae_batch_size, cfg.vae_preset,
                 cfg.vae_width, cfg.latent_dim, vae, unsupervised]
    key = hashlib.sha1(json.dumps(key_parts).encode()).hexdigest()[:16]
    path = _cache_file()
    try:
        cache = json.loads(path.read_text())
    except (OSError, ValueError):
        cache = {}
    entry = cache.get(key)
    load_now = load_per_core()
    if entry is not None and not (entry.get("load_per_core", 0.0) >= BUSY_LOAD_PER_CORE
                                  and load_now < entry["load_per_core"] / 2):
        return Rates(**entry["rates"]), 0.0

    started = time.perf_counter()
    previous_threads = torch.get_num_threads()
    if device.type == "cpu" and threads:
        torch.set_num_threads(threads)
    try:
        image = len(shape) == 3
        make = (lambda n: torch.randint(0, 256, (n, *shape), dtype=torch.uint8, device=device)) if image \
            else (lambda n: torch.randn(n, *shape, device=device))
        normalize = (lambda x: x.float() / 255.0) if image else (lambda x: x)
        # Probe batches as large as the run's: a full batch, or the whole labeled set midway when smaller.
        mid_labeled = cfg.initial_size + cfg.budget * (cfg.stages // 2)
        bs = max(2, min(cfg.batch_size, mid_labeled))
        model = build_task_model(cfg.model, shape, 10).to(device)
        if image:
            model = model.to(memory_format=torch.channels_last)
        head = LossPredictionHead(model.tap_dims, hidden=None if cfg.model == "mlp" else 128).to(device)
        settings = TrainSettings(epochs=4, batch_size=bs, optimizer=cfg.optimizer, lr=1e-3, momentum=0.9,
                                 weight_decay=0.0, head_kind="ranking", precision=precision)
        gen = torch.Generator(device=device).manual_seed(0)
        from .config import SEGMENTATION_MODELS

        labels = (3 * bs, *shape[1:]) if cfg.model in SEGMENTATION_MODELS else (3 * bs,)  # masks: one label a pixel
        x, y = make(3 * bs), torch.randint(0, 10, labels, device=device)
        train_task_model(model, head, x[:bs], y[:bs], normalize, settings, gen)  # warm-up
        task_step = _timed(lambda: train_task_model(model, head, x, y, normalize, settings, gen)) / 12
        n_inf = 512 if image else 4096
        xi = make(n_inf)
        predict(model, xi[:64], normalize, head=head)
        infer = _timed(lambda: predict(model, xi, normalize, head=head)) / n_inf
        rates = Rates(task_step, infer)
        if vae:
            vs = vaal_training.VAALSettings.for_shape(shape, epochs=1, batch_size=cfg.vae_batch_size,
                                                    latent_dim=cfg.latent_dim, vae_preset=cfg.vae_preset,
                                                    rank_conditioned=True, precision=precision,
                                                    **({"vae_width": cfg.vae_width} if image else {}))
            subset = cfg.subset_factor * cfg.budget if cfg.subset_factor else 4 * cfg.vae_batch_size
            b = max(2, min(cfg.vae_batch_size, (mid_labeled + subset) // 2))
            xv = make(2 * b)
            r = torch.randn(2 * b, device=device)

            def vae_epoch():
                vaal_training.train_vaal(xv[:b], xv[b:], normalize, vs, ranker_output_labeled=r[:b],
                                       ranker_output_unlabeled=r[b:], device=device)

            vae_epoch()  # warm-up
            rates.vae_step = _timed(vae_epoch) / math.ceil(2 * b / cfg.vae_batch_size)
        if unsupervised:
            xu = make(256)
            t = time.perf_counter()
            vaal_training.train_unsupervised_vae(xu, normalize, epochs=1, batch_size=128, latent_dim=cfg.latent_dim,
                                               width=cfg.vae_width, device=device, precision=precision)
            rates.unsupervised_step = (time.perf_counter() - t) / 2
    finally:
        torch.set_num_threads(previous_threads)
    seconds = time.perf_counter() - started
    cache[key] = {"rates": rates.__dict__, "load_per_core": load_now}
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(cache))
        os.replace(tmp, path)
    except OSError:  # a read-only home: the estimate still works, it just probes again next time
        pass
    return rates, seconds


def load_per_core() -> float:
    """The 1-minute load average per usable core (0 where the platform has none)."""
    from .executors import usable_cpus

    try:
        return os.getloadavg()[0] / usable_cpus()
    except (OSError, AttributeError):
        return 0.0


def makespan(seconds: list[float], workers: int) -> float:
    """Wall time of jobs of these lengths on ``workers`` parallel workers, longest first, each to the worker
    free first (how a parallel Step schedules its methods)."""
    free = [0.0] * max(1, workers)
    for s in sorted(seconds, reverse=True):
        i = free.index(min(free))
        free[i] += s
    return max(free)


def _timed(fn, at_least: float = 0.3, at_most: int = 20) -> float:
    """Seconds per call of ``fn``, repeated until ``at_least`` seconds passed (tiny models are noisy)."""
    calls, started = 0, time.perf_counter()
    while True:
        fn()
        calls += 1
        elapsed = time.perf_counter() - started
        if elapsed >= at_least or calls >= at_most:
            return elapsed / calls


def estimate_step(config: ExperimentConfig, methods, stage: int, shared_task: bool = False,
                  workers: int = 1) -> Estimate:
    """Seconds for one stage of each of ``methods`` run side by side, as a live session steps them: each
    method's own estimate; with ``shared_task`` (every learner has the same labels, as at stage 0) methods
    with the same task-learner needs train it once; then the makespan on ``workers`` threads."""
    from .strategies import get_strategy

    cfg = config.resolve()
    methods = list(methods)
    if not methods:
        raise ValueError("no methods to estimate")
    est = estimate_config(cfg, methods, stages=[stage])
    seen, per_method = set(), []
    for m in methods:
        phases = est.per_method[m]
        need = get_strategy(m).needs
        group = (need.head, need.head_extra, cfg.dropout_for(m))
        if shared_task and group in seen:
            phases[PHASE_TASK] = 0.0
        seen.add(group)
        per_method.append(sum(phases.values()))
    est.phases = _phase_totals(est.per_method)
    est.seconds = makespan(per_method, workers)
    return est


_PHASES = (PHASE_TASK, PHASE_VAE, PHASE_INFERENCE, PHASE_UNSUP_VAE)


def _phase_totals(per_method: dict) -> dict:
    return {k: sum(ph[k] for ph in per_method.values()) for k in _PHASES}


def estimate_spec(spec, trials: int | None = None, methods=None) -> Estimate:
    """Seconds for an experiment spec (every setting x trial x method x stage) on this machine, one unit after
    another (parallel workers share this compute time). A sweep's settings are estimated at the base config's
    sizes."""
    methods = list(methods if methods is not None else spec.methods)
    settings = max(1, len(getattr(spec, "settings", ()) or ()))
    return estimate_config(spec.config, methods, (trials if trials is not None else spec.trials) * settings)


def estimate_config(config: ExperimentConfig, methods, trials: int = 1, stages=None) -> Estimate:
    """Seconds for ``methods`` x ``trials`` over ``stages`` (default: all of the config's stages)."""
    from .strategies import get_strategy
    from .training import resolve_device, resolve_precision

    cfg = config.resolve()
    needs = [get_strategy(m).needs for m in methods]
    vae = any(n.vae in ("adversarial", "rank_conditioned") for n in needs)
    unsupervised = any(n.vae == "unsupervised" for n in needs)
    rates, probe_seconds = probe(cfg, vae=vae, unsupervised=unsupervised)
    _, n_train, n_test, _, _ = _shape_and_sizes(cfg)
    device = resolve_device(cfg.device)
    precision = resolve_precision(cfg.precision, device, cfg.model)
    stages = range(cfg.stages) if stages is None else stages
    per_method = {}
    for method, need in zip(methods, needs):
        phases = per_method.setdefault(method, dict.fromkeys(_PHASES, 0.0))
        if need.vae == "unsupervised":
            steps = cfg.unsupervised_vae_epochs * math.ceil(n_train / 128)
            phases[PHASE_UNSUP_VAE] += steps * rates.unsupervised_step + n_train * rates.infer_image
        for s in stages:
            labeled = cfg.initial_size + s * cfg.budget
            unlabeled = n_train - labeled
            if cfg.subset_fraction is not None:
                candidates = min(unlabeled, max(cfg.budget, round(cfg.subset_fraction * unlabeled)))
            elif cfg.subset_factor:
                candidates = min(unlabeled, cfg.subset_factor * cfg.budget)
            else:
                candidates = unlabeled
            phases[PHASE_TASK] += cfg.epochs_at(s) * math.ceil(labeled / cfg.batch_size) * rates.task_step
            images = n_test + labeled + candidates + min(cfg.analysis_size, n_train)
            phases[PHASE_INFERENCE] += images * rates.infer_image
            if need.vae in ("adversarial", "rank_conditioned"):
                steps = cfg.vae_epochs * math.ceil((labeled + candidates) / cfg.vae_batch_size)
                phases[PHASE_VAE] += steps * rates.vae_step
    per_method = {m: {k: v * trials for k, v in ph.items()} for m, ph in per_method.items()}
    phases = _phase_totals(per_method)
    return Estimate(sum(phases.values()), device.type, precision, phases, probe_seconds, per_method)

