"""The experiment configuration: one place for defaults, limits and their validation.

``ExperimentConfig`` holds what the user gave. Fields left at ``None`` take the dataset's default
(see ``DATASET_DEFAULTS``) when the config is resolved, so switching the dataset of a config does not
carry over another dataset's model or learning rate. Every field is checked at construction; a bad
value raises ``ConfigError`` naming the field and the allowed values.
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any

from .constraints import Boolean, Constraint, Interval, Options, check, is_whole
from .errors import ConfigError

MODELS = ("mlp", "cnn", "resnet18", "resnet18_imagenet", "encdec", "drn")
SEGMENTATION_MODELS = ("encdec", "drn")  # per-pixel logits; the others classify whole samples
OPTIMIZERS = ("adam", "sgd")
DEVICES = ("auto", "cpu", "cuda")
KL_REDUCTIONS = ("mean", "sum")
RANK_INPUTS = ("sigmoid", "raw")
VAE_PRESETS = ("small", "reference")
PRETRAINED = ("imagenet", "none")
PRECISIONS = ("auto", "fp32", "bf16")
# Dropout for methods that sample MC dropout (BALD) when the user gives none: no paper model has dropout,
# so every other method trains the paper's model without it (our choice; see docs/METHODS.md).
MC_DROPOUT_DEFAULT = 0.2

# Per-dataset defaults. moons follows TA-VAAL's Figure 1 (MLP, Adam, 100 epochs, 20 initial, 10 per
# stage; the VAE trains full-batch, one step per epoch on 550 points); the CIFAR-like sets follow the paper's CIFAR protocol (ResNet-18, SGD 0.1, momentum 0.9,
# weight decay 5e-4, 200 epochs, lr x0.1 at epoch 160); digits / MNIST use the small CNN so a stage
# takes seconds on a CPU.
_IMAGE_SMALL = dict(model="cnn", optimizer="adam", lr=1e-3, momentum=0.9, weight_decay=5e-4, task_epochs=30,
                    batch_size=64, initial_size=100, budget=50, subset_factor=10, vae_epochs=10,
                    vae_batch_size=128)
_CIFAR = dict(model="resnet18", optimizer="sgd", lr=0.1, momentum=0.9, weight_decay=5e-4, task_epochs=200,
              batch_size=128, initial_size=1000, budget=1000, subset_factor=10, vae_epochs=100,
              vae_batch_size=128)
DATASET_DEFAULTS: dict[str, dict[str, Any]] = {
    # subset_factor 10: TA-VAAL 4.1 scores a random candidate subset on the toy too ("even after performing
    # a random subset method"), 10 x budget as in its other experiments.
    "moons": dict(model="mlp", optimizer="adam", lr=0.1, momentum=0.9, weight_decay=0.0, task_epochs=100,
                  batch_size=128, initial_size=20, budget=10, subset_factor=10, vae_epochs=100,
                  vae_batch_size=1024),
    "digits": dict(_IMAGE_SMALL),
    "mnist5k": dict(_IMAGE_SMALL, budget=100),
    "mnist": dict(_IMAGE_SMALL, initial_size=1000, budget=1000, task_epochs=20, batch_size=128),
    "fashion_mnist": dict(_IMAGE_SMALL, initial_size=1000, budget=1000, task_epochs=20, batch_size=128),
    "medmnist": dict(_IMAGE_SMALL, initial_size=500, budget=500, task_epochs=20, batch_size=128),
    "cifar10": dict(_CIFAR),
    "cifar100": dict(_CIFAR, initial_size=2000, budget=2000),  # TA-VAAL 4.2
    "svhn": dict(_CIFAR),
    # Segmentation: the small encoder-decoder on the generated shapes (a CPU stage in seconds, bench/);
    # Cityscapes follows TA-VAAL 4.4 (DRN, SGD 1e-3, batch 4, 200 + 200 per stage; presets name sources).
    "shapes": dict(_IMAGE_SMALL, model="encdec", lr=3e-3, weight_decay=0.0, task_epochs=20, batch_size=16,
                   initial_size=40, budget=20, vae_epochs=5, vae_batch_size=128),
    "cityscapes": dict(_CIFAR, model="drn", lr=1e-3, weight_decay=5e-4, task_epochs=100, batch_size=4,
                       initial_size=200, budget=200, vae_epochs=100, vae_batch_size=4),
    # Caltech-101 (TA-VAAL 4.3): ResNet-18 on 224x224 images (ImageNet stem), 1,000 + 500 per stage.
    "caltech101": dict(_CIFAR, model="resnet18_imagenet", initial_size=1000, budget=500),
}
_FALLBACK_DEFAULTS = dict(_IMAGE_SMALL)
RESOLVED_FIELDS = tuple(DATASET_DEFAULTS["moons"])


@dataclass(frozen=True)
class ExperimentConfig:
    """Everything that defines one active-learning run (one method, one trial)."""

    dataset: str = "moons"
    method: str = "random"
    dataset_options: dict = field(default_factory=dict)
    imbalance_ratio: float | None = None
    class_counts: tuple | None = None
    subsample: int | None = None
    # Pool and protocol.
    initial_size: int | None = None
    budget: int | None = None
    stages: int = 5
    subset_factor: int | None = None
    # Candidates as a fraction of the unlabeled pool (Godwin et al. 2022, Figure 5: a random 5%); when
    # given it replaces subset_factor.
    subset_fraction: float | None = None
    seed: int = 0
    # Task learner.
    model: str | None = None
    optimizer: str | None = None
    lr: float | None = None
    momentum: float | None = None
    weight_decay: float | None = None
    task_epochs: int | None = None
    # Epoch schedule: stage s trains task_epochs + s * task_epochs_increment epochs (Godwin et al. 2022:
    # 10 at the first stage and 5 more each stage; TA-VAAL: a fixed 200).
    task_epochs_increment: int = 0
    batch_size: int | None = None
    lr_milestone: float = 0.8
    # None: no dropout (as in every paper model), except for methods that need MC dropout, which get
    # MC_DROPOUT_DEFAULT. A number applies to every method.
    dropout: float | None = None
    # ImageNet weights for the ImageNet-stem ResNet-18 ("imagenet", refused when the file is absent) or a
    # random initialisation ("none"). None: "imagenet" for model resnet18_imagenet, else "none".
    pretrained: str | None = None
    warm_start: bool = False
    # Loss-prediction head / Ranker (Learning Loss, TA-VAAL eq. 1-2).
    head_weight: float = 1.0
    margin: float = 1.0
    head_stop_fraction: float = 0.6
    # MC dropout (BALD).
    mc_passes: int = 20
    # VAE + discriminator (VAAL, TA-VAAL) and the Godwin et al. 2022 unsupervised VAE.
    vae_epochs: int | None = None
    vae_batch_size: int | None = None
    latent_dim: int | None = None
    vae_width: int = 32
    vae_preset: str = "small"
    vae_lr: float | None = None  # Adam lr of the VAE and the discriminator; None: 5e-4 images, 1e-2 two-moons
    beta: float = 1.0
    adversary_weight: float = 1.0
    kl_reduction: str = "mean"
    discriminator_rank_input: str = "sigmoid"
    alpha: float = 1.0
    # TA-VAAL Algorithm 1 and its reference code feed r ~ U(0, 1) at the first VAE iteration of every
    # stage; this many first iterations do so (0: the Ranker's r from the start).
    uniform_rank_steps: int = 1
    unsupervised_vae_epochs: int = 20
    # Analysis and execution.
    analysis_size: int = 2000
    device: str = "auto"
    # Training precision: "auto" (bf16 on CUDA, and for conv models on a CPU with native bf16), "fp32" or
    # "bf16". Candidates are always scored in fp32. Resolved when a stage runs, and recorded per stage.
    precision: str = "auto"
    # CUDA only: deterministic kernels (slower), so the same seed gives bit-identical picks on the GPU too.
    # On the CPU results are always bit-identical for the same seed.
    deterministic: bool = False

    def __post_init__(self):
        _normalise(self)  # types are checked before anything is converted
        validate(self)

    # -- derived -------------------------------------------------------------------------------
    def resolve(self) -> "ExperimentConfig":
        """A copy with every dataset-dependent field filled in from ``DATASET_DEFAULTS``."""
        defaults = DATASET_DEFAULTS.get(self.dataset, _FALLBACK_DEFAULTS)
        filled = {k: defaults[k] for k in RESOLVED_FIELDS if getattr(self, k) is None}
        if self.latent_dim is None:
            filled["latent_dim"] = 8 if self.dataset == "moons" else 32
        resolved = dataclasses.replace(self, **filled) if filled else self
        validate(resolved, resolved=True)
        return resolved

    def epochs_at(self, stage: int) -> int:
        """Task-learner epochs at ``stage`` (the epoch schedule); needs a resolved config."""
        return int(self.task_epochs) + max(0, int(stage)) * int(self.task_epochs_increment)

    def dropout_for(self, method: str) -> float:
        """The task learner's dropout for ``method``: the given rate, or none unless it samples MC dropout."""
        if self.dropout is not None:
            return float(self.dropout)
        from .strategies import get_strategy

        return MC_DROPOUT_DEFAULT if get_strategy(method).needs.mc_dropout else 0.0

    @property
    def pretrained_weights(self) -> str:
        """"imagenet" or "none" (``pretrained`` resolved against the model)."""
        if self.pretrained is not None:
            return self.pretrained
        return "imagenet" if self.model == "resnet18_imagenet" else "none"

    def to_dict(self) -> dict:
        data = dataclasses.asdict(self)
        data["class_counts"] = list(self.class_counts) if self.class_counts is not None else None
        return data

    @classmethod
    def from_dict(cls, data: dict) -> "ExperimentConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(unknown[0], f"unknown config field; allowed fields: {', '.join(sorted(known))}")
        return cls(**data)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    def with_(self, **changes) -> "ExperimentConfig":
        return dataclasses.replace(self, **changes)


# -- validation -------------------------------------------------------------------------------------
# Bounds on what the code can hold and what still means what it says. Seeds: trial t runs seed + t, and
# every seed is stored as a 64-bit integer and fed to libraries that take 32 bits (scikit-learn).
MAX_SEED = 2**32 - 1
MAX_SAMPLES = 10_000_000  # sizes of pools, batches and subsets: far above any supported dataset
MAX_EPOCHS = 10_000  # the papers train 200 epochs; 10^9 would never finish and is surely a typo
MAX_LR = 10.0  # the papers use 0.1 (SGD) and 1e-3 (Adam); above 10 training only diverges
MAX_WEIGHT = 1e6  # loss weights, margins, beta, alpha: finite and far from float32's overflow


def _datasets() -> list[str]:
    from .data import available_datasets

    return available_datasets()


def _methods() -> list[str]:
    from .strategies import available_methods

    return available_methods()


def _normalise(cfg) -> None:
    """Check the types of the fields that are converted (options, class counts, numpy integers), then
    convert: a string is never split into characters, a dict never read as its keys, 400.9 never cut to 400."""
    import numbers

    options = cfg.dataset_options
    if options is None:
        options = {}
    if not isinstance(options, dict) or not all(isinstance(k, str) for k in options):
        raise ConfigError("dataset_options", f"must be a mapping of option name to value, got {options!r}")
    object.__setattr__(cfg, "dataset_options", dict(options))
    counts = cfg.class_counts
    if counts is not None:
        if isinstance(counts, dict):
            raise ConfigError("class_counts", "must be a list with one count per class, in class order "
                                              f"(e.g. [50, 500]); a mapping is not accepted, got {counts!r}")
        if isinstance(counts, (str, bytes)) or not isinstance(counts, (list, tuple)):
            raise ConfigError("class_counts", f"must be a list with one count per class, got {counts!r}")
        for c in counts:
            if not is_whole(c):
                raise ConfigError("class_counts", f"every count must be a whole number, got {c!r}")
            if not 0 <= c <= MAX_SAMPLES:
                raise ConfigError("class_counts", f"every count must be from 0 to {MAX_SAMPLES:,}, got {c}")
        object.__setattr__(cfg, "class_counts", tuple(int(c) for c in counts))
    for f in dataclasses.fields(cfg):  # numpy integers (e.g. from a UI) become plain ints, nothing else changes
        value = getattr(cfg, f.name)
        if isinstance(value, numbers.Integral) and not isinstance(value, (bool, int)):
            object.__setattr__(cfg, f.name, int(value))


# Each field's allowed values, in the order they are checked (the first bad one is named). Fields whose
# default comes from the dataset are optional here and filled by ``resolve``.
FIELD_RULES: dict[str, Constraint] = {
    "dataset": Options(_datasets, what="dataset"),
    "method": Options(_methods, what="method"),
    "model": Options(MODELS, optional=True),
    "optimizer": Options(OPTIMIZERS, optional=True),
    "device": Options(DEVICES),
    "kl_reduction": Options(KL_REDUCTIONS),
    "discriminator_rank_input": Options(RANK_INPUTS),
    "vae_preset": Options(VAE_PRESETS),
    "pretrained": Options(PRETRAINED, optional=True),
    "precision": Options(PRECISIONS),
    "imbalance_ratio": Interval(float, 1, MAX_SAMPLES, optional=True),
    "subsample": Interval(int, 1, MAX_SAMPLES, optional=True),
    "initial_size": Interval(int, 1, MAX_SAMPLES, optional=True),
    "budget": Interval(int, 1, MAX_SAMPLES, optional=True),
    "stages": Interval(int, 1, 1000),
    "subset_factor": Interval(int, 0, MAX_SAMPLES, optional=True, hint=" (0 = score the whole pool)"),
    "subset_fraction": Interval(float, 0, 1, open_low=True, optional=True),
    "seed": Interval(int, 0, MAX_SEED, hint=" (seeds are 32-bit)"),
    "lr": Interval(float, 0, MAX_LR, open_low=True, optional=True,
                   hint=" (larger steps only diverge; the papers use 0.1 with SGD, 1e-3 with Adam)"),
    "momentum": Interval(float, 0, 1, optional=True),
    "weight_decay": Interval(float, 0, 1, optional=True),
    "task_epochs": Interval(int, 1, MAX_EPOCHS, optional=True, hint=" (the papers train 200 epochs)"),
    "task_epochs_increment": Interval(int, 0, MAX_EPOCHS),
    "batch_size": Interval(int, 2, MAX_SAMPLES, optional=True),
    "lr_milestone": Interval(float, 0, 1, open_low=True),
    "dropout": Interval(float, 0, 0.9, optional=True),
    "head_weight": Interval(float, 0, MAX_WEIGHT),
    "margin": Interval(float, 0, MAX_WEIGHT),
    "head_stop_fraction": Interval(float, 0, 1),
    "mc_passes": Interval(int, 2, 1000),
    "vae_epochs": Interval(int, 1, MAX_EPOCHS, optional=True, hint=" (VAAL trains 100 epochs)"),
    "vae_batch_size": Interval(int, 2, MAX_SAMPLES, optional=True),
    "latent_dim": Interval(int, 1, 1024, optional=True),
    "vae_width": Interval(int, 1, 1024),
    "vae_lr": Interval(float, 0, MAX_LR, open_low=True, optional=True),
    "beta": Interval(float, 0, MAX_WEIGHT),
    "adversary_weight": Interval(float, 0, MAX_WEIGHT),
    "alpha": Interval(float, 0, MAX_WEIGHT),
    "uniform_rank_steps": Interval(int, 0, MAX_SAMPLES),
    "unsupervised_vae_epochs": Interval(int, 1, MAX_EPOCHS),
    "analysis_size": Interval(int, 0, MAX_SAMPLES),
    "warm_start": Boolean(),
    "deterministic": Boolean(),
}


def validate(cfg: ExperimentConfig, resolved: bool = False) -> None:
    """Check every field against ``FIELD_RULES``, each rule that relates fields right after the field it
    follows; raise ``ConfigError`` naming the first bad one. (``resolved``: the same rules hold before
    and after ``resolve``; it is kept for callers.)"""
    for name, rule in FIELD_RULES.items():
        check(name, getattr(cfg, name), rule)
        if name in _PAIRINGS:
            _PAIRINGS[name](cfg)
    if cfg.pretrained == "imagenet" and cfg.model is not None and cfg.model != "resnet18_imagenet":
        raise ConfigError("pretrained", f"ImageNet weights exist only for model 'resnet18_imagenet', not {cfg.model!r}; "
                                        "use pretrained 'none'")
    check_method(cfg, cfg.method)
    # Whether a CUDA GPU is present is a fact about the machine, not the config: it is checked where the
    # device is resolved (training.resolve_device), so a run made on a GPU opens anywhere.


def _check_imbalance(cfg: ExperimentConfig) -> None:
    if cfg.imbalance_ratio is not None and cfg.class_counts is not None:
        raise ConfigError("class_counts", "give either imbalance_ratio or class_counts, not both")
    if cfg.imbalance_ratio is not None and cfg.dataset == "moons":
        # imbalance_ratio cuts the first half of the classes; two moons' class 0 is already the 500 of
        # TA-VAAL's 500/50 set, so a ratio of 10 would silently make it 50/50
        raise ConfigError("imbalance_ratio", "two moons is imbalanced by dataset_options n_per_class (TA-VAAL "
                                             "Figure 1: [500, 50]); set that, or class_counts, instead")


def check_method(cfg: ExperimentConfig, method: str) -> None:
    """Checks of a method against the config: a method that samples MC dropout needs dropout > 0
    (with none, every pass is the same and the scores are all 0)."""
    from .strategies import get_strategy

    if get_strategy(method).needs.mc_dropout and cfg.dropout is not None and cfg.dropout <= 0:
        raise ConfigError("dropout", f"method {method!r} samples MC dropout and needs dropout > 0 (e.g. "
                                     f"{MC_DROPOUT_DEFAULT}), or leave dropout unset; got {cfg.dropout}")


# Models that take images (channels x height x width); the MLP takes any input, flattened.
IMAGE_MODELS = ("cnn", "resnet18", "resnet18_imagenet")


def _check_model_input(cfg, kind: str | None = None, shape=None) -> None:
    """A convolutional model on vector data (two moons) would fail inside the first stage: refuse it here.
    ``kind`` and ``shape`` come from a loaded dataset; without them the registry says the dataset's kind."""
    if cfg.model not in IMAGE_MODELS:
        return
    if kind is None:
        from .data import dataset_info

        kind = dataset_info(cfg.dataset)["kind"]
    if kind != "image" or (shape is not None and len(shape) != 3):
        got = f" of shape {tuple(shape)}" if shape is not None else ""
        raise ConfigError("model", f"{cfg.model!r} takes images (channels x height x width) but {cfg.dataset!r} "
                                   f"holds {kind} data{got}; use 'mlp'")


def check_dataset(cfg: ExperimentConfig, dataset) -> None:
    """Checks that need the loaded dataset (called by ``ActiveLearner.start`` before anything trains)."""
    _check_model_input(cfg, dataset.kind, dataset.input_shape)
    check_pool_size(cfg, len(dataset.y_train))


def _check_task_kind(cfg: ExperimentConfig) -> None:
    """Segmentation datasets take the segmentation models and no class cuts; the others the classifiers."""
    from .data import dataset_info

    segmentation = dataset_info(cfg.dataset)["kind"] == "segmentation"
    if cfg.model is not None:
        if segmentation and cfg.model not in SEGMENTATION_MODELS:
            raise ConfigError("model", f"'{cfg.dataset}' labels every pixel; choose a segmentation model: "
                                       f"{', '.join(SEGMENTATION_MODELS)}")
        if not segmentation and cfg.model in SEGMENTATION_MODELS:
            allowed = [m for m in MODELS if m not in SEGMENTATION_MODELS]
            raise ConfigError("model", f"{cfg.model!r} segments images; '{cfg.dataset}' needs one of: {', '.join(allowed)}")
    if segmentation and (cfg.imbalance_ratio is not None or cfg.class_counts is not None):
        field = "imbalance_ratio" if cfg.imbalance_ratio is not None else "class_counts"
        raise ConfigError(field, f"cuts a classification set by class; '{cfg.dataset}' labels pixels, not images")


def check_pool_size(cfg: ExperimentConfig, pool_size: int) -> None:
    """Checks that need the dataset's size (called once the dataset is loaded)."""
    if cfg.initial_size >= pool_size:
        raise ConfigError("initial_size", f"must be smaller than the pool ({pool_size} samples), got {cfg.initial_size}")
    needed = cfg.initial_size + cfg.budget * cfg.stages
    if needed > pool_size:
        most = (pool_size - cfg.initial_size) // cfg.stages
        raise ConfigError(
            "budget",
            f"initial_size + budget x stages = {needed} exceeds the pool ({pool_size} samples); "
            f"with {cfg.stages} stages the budget can be at most {most}",
        )


# Rules relating fields, each run right after the field it follows in FIELD_RULES.
_PAIRINGS = {"model": _check_task_kind, "precision": lambda cfg: _check_model_input(cfg),
             "imbalance_ratio": _check_imbalance}
