"""VAAL and TA-VAAL: the VAE / discriminator losses, their training loop, and the scores.

References
----------
- VAAL: Sinha, Ebrahimi, Darrell, "Variational Adversarial Active Learning", ICCV 2019.
- TA-VAAL: Kim, Park, Kim, Chun, "Task-Aware Variational Adversarial Active Learning", CVPR 2021.
  Equation numbers below are TA-VAAL's.
- VAE-augmented selection: Godwin et al. 2022, :func:`train_unsupervised_vae`.

The pieces, in the order a stage uses them:

- :func:`reconstruction_kl_loss`, :func:`transductive_vae_loss` (eq. 4),
  :func:`adversarial_loss` (eq. 5), :func:`discriminator_loss` (eq. 6): pure functions of tensors.
- :func:`rank_inputs`: TA-VAAL's ``r`` for the decoder and the discriminator.
- :class:`VAALSettings`, :func:`train_vaal` -> :class:`VAALModels`: fresh VAE + discriminator
  trained on the labeled and unlabeled pools.
- :func:`discriminator_likelihood`: the score; VAAL / TA-VAAL pick the LOWEST (eq. 7).
- :func:`encode_mu`: the VAE features ``mu`` (encoder only).

Choices that differ from the reference codes (docs/METHODS.md) are marked "Choice:" where they apply.
"""
from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass, field
from typing import Callable, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from . import rng
from .config import KL_REDUCTIONS, RANK_INPUTS, VAE_PRESETS
from .constraints import Boolean, Interval, Options, check, check_fields
from .models.discriminator import Discriminator
from .models.vae import build_vae
from .training import inference_batch_size, to_input, uses_channels_last

__all__ = [
    "Normalize",
    "Progress",
    "KL_REDUCTIONS",
    "RANK_MODES",
    "kl_divergence",
    "reconstruction_kl_loss",
    "transductive_vae_loss",
    "adversarial_loss",
    "discriminator_loss",
    "rank_inputs",
    "VAALSettings",
    "VAALModels",
    "train_vaal",
    "encode_mu",
    "discriminator_likelihood",
    "train_unsupervised_vae",
]

Normalize = Callable[[Tensor], Tensor]
Progress = Optional[Callable[[float, str], None]]

# The allowed values live with the other settings' (config.py): one list each.
RANK_MODES = RANK_INPUTS
_KL_RULE = Options(KL_REDUCTIONS)  # "mean": TA-VAAL's code; "sum": VAAL's code
_RANK_RULE = Options(RANK_INPUTS)  # "sigmoid": the paper; "raw": the reference code's fault, kept as an option


# ----------------------------------------------------------------------------------------------
# Losses
# ----------------------------------------------------------------------------------------------
def _check_kl_reduction(kl_reduction: str) -> None:
    check("kl_reduction", kl_reduction, _KL_RULE)


def kl_divergence(mu: Tensor, logvar: Tensor, reduction: str = "mean") -> Tensor:
    """``KL(N(mu, exp(logvar)) || N(0, I)) = -0.5 * red(1 + logvar - mu^2 - exp(logvar))``.

    ``reduction="sum"`` sums over batch and latent dimensions (VAAL's code); ``"mean"`` averages
    over both (TA-VAAL's code).
    """
    _check_kl_reduction(reduction)
    terms = 1.0 + logvar - mu.pow(2) - logvar.exp()
    return -0.5 * (terms.mean() if reduction == "mean" else terms.sum())


def reconstruction_kl_loss(
    x: Tensor, recon: Tensor, mu: Tensor, logvar: Tensor, beta: float = 1.0, kl_reduction: str = "mean"
) -> Tensor:
    """The VAE loss on one batch: ``MSE(recon, x) + beta * KL``, in fp32.

    ``MSE`` is the mean over all elements (``nn.MSELoss()`` in both reference codes); ``x`` is the
    normalised input (the reconstruction target).

    Choice: the KL reduction differs between the codes (VAAL: sum, TA-VAAL: mean); it is the
    ``kl_reduction`` option, default ``"mean"``.
    """
    _check_kl_reduction(kl_reduction)
    mse = F.mse_loss(recon.float(), x.float())
    return mse + beta * kl_divergence(mu.float(), logvar.float(), kl_reduction)


def transductive_vae_loss(
    x_labeled: Tensor,
    out_labeled: Sequence[Tensor],
    x_unlabeled: Tensor,
    out_unlabeled: Sequence[Tensor],
    *,
    beta: float = 1.0,
    kl_reduction: str = "mean",
) -> Tensor:
    """TA-VAAL eq. (4): the VAE loss on a labeled and an unlabeled batch, summed.

    ``L_VAE^trd = E[log p(x_L | z_L, r_L)] - beta KL(q(z_L | x_L) || p(z))
    + E[log p(x_U | z_U, r_U)] - beta KL(q(z_U | x_U) || p(z))``, as a loss: the sum of
    :func:`reconstruction_kl_loss` on both batches. ``out_*`` is the VAE's ``(recon, mu, logvar)``.
    """
    rec_l, mu_l, logvar_l = out_labeled
    rec_u, mu_u, logvar_u = out_unlabeled
    return reconstruction_kl_loss(x_labeled, rec_l, mu_l, logvar_l, beta, kl_reduction) + reconstruction_kl_loss(
        x_unlabeled, rec_u, mu_u, logvar_u, beta, kl_reduction
    )


def adversarial_loss(d_logits_labeled: Tensor, d_logits_unlabeled: Tensor) -> Tensor:
    """TA-VAAL eq. (5), the VAE's adversarial term (fool D: both pools look "labeled"):
    ``BCE(D(mu_L, r_L), 1) + BCE(D(mu_U, r_U), 1)``, each BCE the batch mean, from logits."""
    l_l, l_u = d_logits_labeled.float(), d_logits_unlabeled.float()
    return F.binary_cross_entropy_with_logits(l_l, torch.ones_like(l_l)) + F.binary_cross_entropy_with_logits(
        l_u, torch.ones_like(l_u)
    )


def discriminator_loss(d_logits_labeled: Tensor, d_logits_unlabeled: Tensor) -> Tensor:
    """TA-VAAL eq. (6), the discriminator's loss: ``BCE(D(mu_L, r_L), 1) + BCE(D(mu_U, r_U), 0)``,
    each BCE the batch mean, from logits (``mu`` detached from the VAE)."""
    l_l, l_u = d_logits_labeled.float(), d_logits_unlabeled.float()
    return F.binary_cross_entropy_with_logits(l_l, torch.ones_like(l_l)) + F.binary_cross_entropy_with_logits(
        l_u, torch.zeros_like(l_u)
    )


# ----------------------------------------------------------------------------------------------
# Rank input r (TA-VAAL)
# ----------------------------------------------------------------------------------------------
def _check_rank_mode(mode: str) -> None:
    check("discriminator_rank_input", mode, _RANK_RULE)


def rank_inputs(
    ranker_output: Tensor | None,
    n: int,
    mode: str = "sigmoid",
    generator: torch.Generator | None = None,
    device: str | torch.device | None = None,
) -> tuple[Tensor, Tensor]:
    """TA-VAAL's rank input ``r`` for the decoder and for the discriminator, each ``(n, 1)`` fp32.

    - ``ranker_output`` given (the frozen Ranker's raw outputs ``l_hat``, shape ``(n,)`` or
      ``(n, 1)``): the decoder gets ``sigmoid(l_hat)``; the discriminator gets the same
      ``sigmoid(l_hat)`` (``mode="sigmoid"``, paper, default) or the raw ``l_hat``
      (``mode="raw"``: TA-VAAL's reference code feeds the raw output to D, a fault kept as a named
      option).
    - ``ranker_output=None``: ``r ~ U(0, 1)`` drawn from ``generator``, the same tensor for both. The
      engine always has a trained Ranker; uniform ``r`` enters training only at the first
      ``VAALSettings.uniform_rank_steps`` iterations of a stage (TA-VAAL Algorithm 1 and its code).
    """
    _check_rank_mode(mode)
    if ranker_output is None:
        if generator is not None:
            device = generator.device
        r = torch.rand(n, 1, generator=generator, device=device)
        return r, r
    out = ranker_output.detach().float().reshape(-1, 1)
    if out.shape[0] != n:
        raise ValueError(f"ranker_output has {out.shape[0]} values for {n} samples")
    if device is not None:
        out = out.to(device)
    r_dec = torch.sigmoid(out)
    return r_dec, (r_dec if mode == "sigmoid" else out)


# ----------------------------------------------------------------------------------------------
# Settings and models
# ----------------------------------------------------------------------------------------------
@dataclass
class VAALSettings:
    """Hyper-parameters of one VAE + discriminator training (VAAL / TA-VAAL).

    One epoch is ``ceil((n_labeled + n_unlabeled) / batch_size)`` steps: TA-VAAL's reference code runs
    ``(labeled + subset) x epochs / batch`` iterations a stage (CIFAR-10: 8,593 at the first query rising
    to 14,843 at the last), so the schedule grows with the labeled set. Each step takes an unlabeled
    batch of ``b = min(batch_size, n_unlabeled)`` samples and a labeled batch of ``min(b, n_labeled)``
    samples, makes one VAE step on eq. (4) + ``adversary_weight`` * eq. (5), then one
    discriminator step on eq. (6).

    ``uniform_rank_steps``: TA-VAAL's first this-many steps of a stage feed ``r ~ U(0, 1)`` instead of
    the Ranker's output (Algorithm 1; the reference code does so at its first iteration, so the default
    is 1; 0 conditions on the Ranker from the first step).

    Defaults are the papers' image settings (Adam 5e-4, beta 1, lambda 1, latent 32, D 5 x 512,
    100 epochs) with a CPU-sized VAE (``vae_preset="small"``). Use :meth:`two_moons` for 2-d
    data and :meth:`images` for the CPU-friendly image defaults.
    """

    epochs: int = 100
    batch_size: int = 64
    lr_vae: float = 5e-4
    lr_discriminator: float = 5e-4
    beta: float = 1.0
    adversary_weight: float = 1.0
    kl_reduction: str = "mean"
    latent_dim: int = 32
    vae_width: int = 32
    vae_preset: str = "small"
    discriminator_layers: int = 5
    discriminator_hidden: int = 512
    rank_conditioned: bool = False
    discriminator_rank_input: str = "sigmoid"
    uniform_rank_steps: int = 1
    precision: str = "fp32"  # training autocast: "fp32" or "bf16" (training.resolve_precision); scoring is fp32

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise :class:`ConfigError` naming the first field out of range (``VAAL_RULES``)."""
        check_fields(self, VAAL_RULES)

    @classmethod
    def two_moons(cls, **overrides) -> "VAALSettings":
        """TA-VAAL's two-moons setting: Adam 1e-2 for both nets, a 2-layer discriminator (64 wide),
        a small MLP VAE (latent 8, hidden 32), 100 epochs, and batches of 1024: one full-batch step
        an epoch for the paper's 500 + 50 points (about 0.2 s a stage on 2 CPU cores)."""
        base = dict(
            epochs=100, batch_size=1024, lr_vae=1e-2, lr_discriminator=1e-2, latent_dim=8, vae_width=32,
            discriminator_layers=2, discriminator_hidden=64,
        )
        base.update(overrides)
        return cls(**base)

    @classmethod
    def images(cls, **overrides) -> "VAALSettings":
        """Image defaults sized for a CPU demo stage: the papers' optimiser (Adam 5e-4), losses and
        5 x 512 discriminator, the small VAE, batch 128 (TA-VAAL's code) and 10 epochs (papers:
        100; pass ``epochs=100`` on a GPU). See ``bench/bench_stages.py`` for measured stage times.

        Measured per step on the CPU: the 5 x 512 discriminator costs about as much as the VAE, so
        ``discriminator_hidden`` is the knob for a faster demo."""
        base = dict(epochs=10, batch_size=128)
        base.update(overrides)
        return cls(**base)

    @classmethod
    def for_shape(cls, input_shape: Sequence[int], **overrides) -> "VAALSettings":
        """:meth:`two_moons` for vector data ``(D,)``, :meth:`images` for ``(C, H, W)``."""
        return cls.two_moons(**overrides) if len(tuple(input_shape)) == 1 else cls.images(**overrides)


_POSITIVE_INT = Interval(int, 1)
_POSITIVE = Interval(float, 0, open_low=True)
_NON_NEGATIVE = Interval(float, 0)
VAAL_RULES = {
    "epochs": _POSITIVE_INT, "batch_size": _POSITIVE_INT, "latent_dim": _POSITIVE_INT, "vae_width": _POSITIVE_INT,
    "discriminator_layers": _POSITIVE_INT, "discriminator_hidden": _POSITIVE_INT,
    "uniform_rank_steps": Interval(int, 0),
    "lr_vae": _POSITIVE, "lr_discriminator": _POSITIVE,
    "beta": _NON_NEGATIVE, "adversary_weight": _NON_NEGATIVE,
    "kl_reduction": _KL_RULE, "discriminator_rank_input": _RANK_RULE, "vae_preset": Options(VAE_PRESETS),
    "rank_conditioned": Boolean(), "precision": Options(("fp32", "bf16")),
}


@dataclass
class VAALModels:
    """The trained VAE and discriminator of one stage, with what is needed to score with them.

    ``history`` holds per-epoch means of the three losses: ``"vae"`` (eq. 4), ``"adversarial"``
    (eq. 5) and ``"discriminator"`` (eq. 6), plain floats.
    """

    vae: nn.Module
    discriminator: Discriminator
    settings: VAALSettings
    history: dict[str, list[float]] = field(default_factory=dict)
    seed: int = 0
    stage: int = 0

    @property
    def final_losses(self) -> dict[str, float]:
        """The last epoch's mean of each loss."""
        return {k: v[-1] for k, v in self.history.items() if v}

    @property
    def rank_conditioned(self) -> bool:
        return self.discriminator.rank_dim > 0


# ----------------------------------------------------------------------------------------------
# Helpers for the loops
# ----------------------------------------------------------------------------------------------
def _autocast(device: torch.device, precision: str = "fp32"):
    """bf16 autocast for the training forward passes when ``precision`` is "bf16" (CPU or CUDA)."""
    if precision == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def _adam(params, lr: float, device: torch.device, weight_decay: float = 0.0) -> torch.optim.Adam:
    # fused Adam: one kernel for all parameters (CPU and CUDA); deterministic on the CPU.
    try:
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay, fused=True)
    except (RuntimeError, TypeError, ValueError):  # pragma: no cover - old torch or odd device
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)


def _index_stream(n: int, total: int, generator: torch.Generator, device: torch.device) -> Tensor:
    """``total`` indices in ``[0, n)``: shuffled copies of ``range(n)`` laid end to end.

    Consecutive chunks are the batches: every sample is used equally often (+-1) and, within a
    copy, without repetition. One op, no per-sample Python.
    """
    reps = -(-total // n)
    return torch.rand(reps, n, generator=generator, device=device).argsort(dim=1).flatten()[:total]


def _progress_points(epochs: int, max_calls: int = 20) -> set[int]:
    """The epochs (1-based, at their end) after which progress is reported: at most ``max_calls``."""
    return {math.ceil(epochs * k / max_calls) for k in range(1, max_calls + 1)}


def _model_device(module: nn.Module) -> torch.device:
    return next(module.parameters()).device


def _prepare(module: nn.Module, device: torch.device) -> nn.Module:
    """On ``device``; conv nets channels-last (faster on CUDA and on this project's CPUs, fp32 and bf16)."""
    module.to(device)
    if any(isinstance(m, nn.Conv2d) for m in module.modules()):
        module.to(memory_format=torch.channels_last)
    return module


# ----------------------------------------------------------------------------------------------
# VAAL / TA-VAAL training
# ----------------------------------------------------------------------------------------------
def train_vaal(
    x_labeled: Tensor,
    x_unlabeled: Tensor,
    normalize: Normalize,
    settings: VAALSettings | None = None,
    *,
    ranker_output_labeled: Tensor | None = None,
    ranker_output_unlabeled: Tensor | None = None,
    seed: int = 0,
    stage: int = 0,
    device: str | torch.device = "cpu",
    progress: Progress = None,
) -> VAALModels:
    """Train a fresh VAE and discriminator (VAAL; TA-VAAL when ``settings.rank_conditioned``).

    Parameters
    ----------
    x_labeled, x_unlabeled : raw tensors on ``device``, ``(N, D)`` float or ``(N, C, H, W)`` uint8.
    normalize : maps a raw batch to the network input; reconstruction targets are its output.
    settings : :class:`VAALSettings` (default: the dataclass defaults).
    ranker_output_labeled, ranker_output_unlabeled : TA-VAAL only: the frozen Ranker's raw output
        ``l_hat`` per sample (``(N,)``). The first ``settings.uniform_rank_steps`` steps use
        ``r ~ U(0, 1)`` instead (TA-VAAL Algorithm 1 and its code). Both ``None`` (no Ranker at all, for
        callers outside the engine, which always trains one first): uniform ``r`` at every step.
        Ignored for plain VAAL.
    seed, stage : models are built under ``rng.seeded(seed, stage, "vae")``; batches and random
        ``r`` come from ``rng.torch_generator(seed, stage, "vae-batches", device)``. Same inputs
        and seed on the same device -> identical weights.
    progress : ``progress(fraction, message)``, called at most 20 times.

    Each step (TA-VAAL Algorithm 1, one VAE step and one discriminator step):

    1. VAE step on ``eq.(4) + adversary_weight * eq.(5)`` (discriminator weights frozen).
    2. Discriminator step on eq. (6), with ``mu`` re-encoded by the updated VAE under
       ``no_grad`` (as the reference codes do), ENCODER ONLY (the reference runs the whole VAE).

    Choice: a labeled set smaller than the batch is used whole at every step (labeled batch
    ``min(b, n_labeled)``), rather than padded up to ``b`` samples by drawing with replacement.
    All losses are batch means, so the expected gradient is the same; it has less noise and
    costs less.

    Choice: the labeled and unlabeled batches go through the VAE and D as one concatenated batch
    (then are split for eqs. 4-6, so each loss is exactly the per-batch sum the equations state).
    This halves the kernel launches; with BatchNorm (the conv VAE) the batch statistics are taken
    over both batches together rather than each alone as in the reference code, which matches
    the eval-mode statistics used for scoring better.
    """
    settings = settings if settings is not None else VAALSettings()
    settings.validate()
    device = torch.device(device)
    n_l, n_u = int(x_labeled.shape[0]), int(x_unlabeled.shape[0])
    if n_l == 0 or n_u == 0:
        raise ValueError(f"train_vaal needs labeled and unlabeled samples, got {n_l} and {n_u}")
    if tuple(x_labeled.shape[1:]) != tuple(x_unlabeled.shape[1:]):
        raise ValueError("labeled and unlabeled samples differ in shape")
    input_shape = tuple(x_labeled.shape[1:])
    rank_dim = 1 if settings.rank_conditioned else 0

    with rng.seeded(seed, stage, "vae", device):
        vae = build_vae("adversarial", input_shape, settings.latent_dim, settings.vae_width, rank_dim, settings.vae_preset)
        disc = Discriminator(settings.latent_dim, rank_dim, settings.discriminator_hidden, settings.discriminator_layers)
    _prepare(vae, device).train()
    _prepare(disc, device).train()
    gen = rng.torch_generator(seed, stage, "vae-batches", device)
    opt_vae = _adam(vae.parameters(), settings.lr_vae, device)
    opt_d = _adam(disc.parameters(), settings.lr_discriminator, device)

    # Rank inputs for every sample, once (TA-VAAL with a trained Ranker).
    r_dec_all = r_disc_all = None
    if rank_dim:
        if (ranker_output_labeled is None) != (ranker_output_unlabeled is None):
            raise ValueError("give ranker outputs for both the labeled and the unlabeled samples, or neither")
        if ranker_output_labeled is not None:
            mode = settings.discriminator_rank_input
            rl = rank_inputs(ranker_output_labeled, n_l, mode, device=device)
            ru = rank_inputs(ranker_output_unlabeled, n_u, mode, device=device)
            r_dec_all = torch.cat([rl[0], ru[0]])
            r_disc_all = r_dec_all if mode == "sigmoid" else torch.cat([rl[1], ru[1]])

    same_r = r_dec_all is r_disc_all
    vae_params = [p for p in vae.parameters() if p.requires_grad]
    x_all = torch.cat([x_labeled, x_unlabeled.to(device=x_labeled.device)]).to(device)
    b = min(settings.batch_size, n_u)
    b_l = min(b, n_l)
    steps = -(-(n_l + n_u) // settings.batch_size)  # the reference's (labeled + subset) / batch
    epochs = settings.epochs
    beta, lam, klr = settings.beta, settings.adversary_weight, settings.kl_reduction
    report_at = _progress_points(epochs)
    per_epoch: list[Tensor] = []
    amp = _autocast(device, settings.precision)
    channels_last = uses_channels_last(vae)
    step_count = 0

    # Reparameterisation noise from its own generator (derived from (seed, stage)): the loop draws nothing
    # from torch's global RNG, so VAAL and TA-VAAL of one Step can train at once in two threads.
    vae.noise = rng.torch_generator(seed, stage, "vae-noise", device)
    try:
        for epoch in range(1, epochs + 1):
            idx_l = _index_stream(n_l, steps * b_l, gen, device).view(steps, b_l)
            idx_u = _index_stream(n_u, steps * b, gen, device).view(steps, b) + n_l
            idx = torch.cat([idx_l, idx_u], dim=1)  # (steps, b_l + b): labeled part, then unlabeled
            acc = torch.zeros(3, device=device)
            for s in range(steps):
                ib = idx[s]
                xb = to_input(normalize(x_all[ib]), channels_last)
                r_dec = r_disc = None
                if rank_dim:
                    if r_dec_all is None or step_count < settings.uniform_rank_steps:
                        r_dec = r_disc = torch.rand(b_l + b, 1, generator=gen, device=device)
                    else:
                        r_dec = r_dec_all[ib]
                        r_disc = r_dec if same_r else r_disc_all[ib]

                # 1. VAE step: eq. (4) + lambda * eq. (5). Gradients are taken for the VAE's parameters
                #    only (backward(inputs=...)): D's weight gradients are never computed here.
                with amp:
                    recon, mu, logvar = vae(xb, r_dec)
                    logits = disc(mu, r_disc)
                l_vae = transductive_vae_loss(
                    xb[:b_l], (recon[:b_l], mu[:b_l], logvar[:b_l]), xb[b_l:], (recon[b_l:], mu[b_l:], logvar[b_l:]),
                    beta=beta, kl_reduction=klr,
                )
                l_adv = adversarial_loss(logits[:b_l], logits[b_l:])
                opt_vae.zero_grad(set_to_none=True)
                (l_vae + lam * l_adv).backward(inputs=vae_params)
                opt_vae.step()

                # 2. Discriminator step: eq. (6) on mu from the updated encoder, detached.
                with torch.no_grad(), amp:
                    mu_d, _ = vae.encode(xb)
                with amp:
                    logits_d = disc(mu_d.float(), r_disc)
                l_d = discriminator_loss(logits_d[:b_l], logits_d[b_l:])
                opt_d.zero_grad(set_to_none=True)
                l_d.backward()
                opt_d.step()

                acc += torch.stack([l_vae.detach(), l_adv.detach(), l_d.detach()])
                step_count += 1
            per_epoch.append(acc / steps)
            if progress is not None and epoch in report_at:
                progress(epoch / epochs, f"VAE and discriminator: epoch {epoch}/{epochs}")
    finally:
        vae.noise = None  # a trained model carries no generator (copies, pickles and scoring stay plain)

    hist = torch.stack(per_epoch).cpu().tolist()  # one device sync, at the end
    history = {k: [row[i] for row in hist] for i, k in enumerate(("vae", "adversarial", "discriminator"))}
    vae.eval()
    disc.eval()
    return VAALModels(vae=vae, discriminator=disc, settings=settings, history=history, seed=seed, stage=stage)


# ----------------------------------------------------------------------------------------------
# Scoring
# ----------------------------------------------------------------------------------------------
@torch.no_grad()
def encode_mu(vae: nn.Module, x: Tensor, normalize: Normalize, batch_size: int | None = None) -> Tensor:
    """``mu`` for every sample, ``(N, latent_dim)`` fp32, in eval mode, ENCODER ONLY.

    docs/METHODS.md "Known waste": the reference codes run the whole VAE (decoder included) where only
    ``mu`` is used; we never run the decoder here. The VAE's train/eval mode is restored after.

    Choice: scoring runs in fp32 even on CUDA (training uses bf16 autocast): bf16 keeps about 3
    significant digits, which would tie many candidates' scores and make the order of the picks
    arbitrary; an encoder-only pass in fp32 is cheap.
    """
    device = _model_device(vae)
    batch_size = batch_size or inference_batch_size(device, x)
    channels_last = uses_channels_last(vae)
    was_training = vae.training
    vae.eval()
    try:
        outs = []
        for i in range(0, int(x.shape[0]), batch_size):
            mu, _ = vae.encode(to_input(normalize(x[i:i + batch_size].to(device)).float(), channels_last))
            outs.append(mu.float())
    finally:
        vae.train(was_training)
    if not outs:
        return torch.zeros(0, vae.latent_dim, device=device)
    return torch.cat(outs)


@torch.no_grad()
def discriminator_likelihood(
    models: VAALModels,
    x: Tensor,
    normalize: Normalize,
    ranker_output: Tensor | None = None,
    settings: VAALSettings | None = None,
    *,
    batch_size: int | None = None,
    generator: torch.Generator | None = None,
) -> Tensor:
    """The discriminator likelihood ``sigmoid(D(mu, r))`` per sample, ``(N,)`` fp32 in (0, 1).

    "Probability labeled". VAAL and TA-VAAL (eq. 7) select the candidates with the LOWEST value
    (most confidently unlabeled).

    Both the VAE and the discriminator are put in eval mode (the reference code forgets
    ``vae.eval()``, so its BatchNorm uses the candidates' batch statistics and its scores depend on
    the batch); modes are restored after. Only the encoder runs, in fp32 (see :func:`encode_mu`).

    TA-VAAL: ``ranker_output`` is the frozen Ranker's raw output for these samples; it enters D as
    in training (``settings.discriminator_rank_input``). Without it (stage 0, no Ranker),
    ``r ~ U(0, 1)`` from ``generator`` (default: ``rng.torch_generator(models.seed, models.stage,
    "vae-score-rank", device)``).
    """
    settings = settings if settings is not None else models.settings
    vae, disc = models.vae, models.discriminator
    device = _model_device(vae)
    batch_size = batch_size or inference_batch_size(device, x)
    n = int(x.shape[0])
    mu = encode_mu(vae, x, normalize, batch_size)
    r_disc = None
    if disc.rank_dim:
        if ranker_output is None and generator is None:
            generator = rng.torch_generator(models.seed, models.stage, "vae-score-rank", device)
        _, r_disc = rank_inputs(ranker_output, n, settings.discriminator_rank_input, generator, device=device)
    was_training = disc.training
    disc.eval()
    try:
        outs = []
        for i in range(0, n, batch_size):  # fp32, like encode_mu
            r = None if r_disc is None else r_disc[i:i + batch_size]
            outs.append(disc(mu[i:i + batch_size], r).float())
    finally:
        disc.train(was_training)
    if not outs:
        return torch.zeros(0, device=device)
    return torch.sigmoid(torch.cat(outs))


# ----------------------------------------------------------------------------------------------
# VAE-augmented selection (Godwin et al. 2022)
# ----------------------------------------------------------------------------------------------
def train_unsupervised_vae(
    x_all: Tensor,
    normalize: Normalize,
    *,
    epochs: int = 20,
    lr: float = 1e-3,
    weight_decay: float = 0.005,
    batch_size: int = 128,
    latent_dim: int = 32,
    width: int = 32,
    seed: int = 0,
    device: str | torch.device = "cpu",
    progress: Progress = None,
    precision: str = "fp32",
) -> nn.Module:
    """Godwin et al. 2022's VAE, trained unsupervised on the whole training set.

    Trained once per trial and reused by every stage (so it is keyed by the seed alone:
    ``rng.seeded(seed, 0, "unsupervised-vae")`` for the init, ``"unsupervised-vae-batches"`` for
    the batches). Adam (lr 1e-3, weight decay 0.005, as L2 in Adam as the paper states), 20
    epochs, loss ``MSE + KL`` (KL mean-reduced, beta 1). An epoch is ``ceil(N / batch_size)``
    full batches of shuffled samples. Images get :class:`~tavaal_core.models.vae.UnsupervisedVAE`,
    vectors :class:`~tavaal_core.models.vae.VectorVAE` (hidden = ``width``).
    Returns the VAE in eval mode; its features are ``V(x) = mu`` (:func:`encode_mu`).
    """
    for name, v in (("epochs", epochs), ("batch_size", batch_size), ("latent_dim", latent_dim), ("vae_width", width)):
        check(name, v, _POSITIVE_INT)
    check("lr", lr, _POSITIVE)
    check("weight_decay", weight_decay, _NON_NEGATIVE)
    device = torch.device(device)
    n = int(x_all.shape[0])
    if n < 2:
        raise ValueError(f"train_unsupervised_vae needs at least 2 samples, got {n}")
    with rng.seeded(seed, 0, "unsupervised-vae", device):
        vae = build_vae("unsupervised", tuple(x_all.shape[1:]), latent_dim, width)
    _prepare(vae, device).train()
    gen = rng.torch_generator(seed, 0, "unsupervised-vae-batches", device)
    opt = _adam(vae.parameters(), lr, device, weight_decay=weight_decay)
    x_all = x_all.to(device)
    b = min(batch_size, n)
    steps = -(-n // batch_size)
    report_at = _progress_points(epochs)
    amp = _autocast(device, precision)
    channels_last = uses_channels_last(vae)
    vae.noise = rng.torch_generator(seed, 0, "unsupervised-vae-noise", device)  # as in train_vaal
    try:
        for epoch in range(1, epochs + 1):
            idx = _index_stream(n, steps * b, gen, device).view(steps, b)
            for s in range(steps):
                xb = to_input(normalize(x_all[idx[s]]), channels_last)
                with amp:
                    recon, mu, logvar = vae(xb)
                loss = reconstruction_kl_loss(xb, recon, mu, logvar)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
            if progress is not None and epoch in report_at:
                progress(epoch / epochs, f"unsupervised VAE: epoch {epoch}/{epochs}")
    finally:
        vae.noise = None
    return vae.eval()
