"""Smaller training sets cut from a Dataset: class imbalance (TA-VAAL) and random subsets (Godwin et al. 2022).

Both only touch the training split; the test split stays as it was (balanced, so accuracy is
comparable). Normalisation (mean/std) stays that of the full training set, and ``name`` stays the
dataset's name; what was done is appended to ``description``. Kept samples stay in their original
relative order. Both are deterministic given ``seed``.
"""
from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

from ..errors import ConfigError
from ..rng import numpy_rng
from .base import Dataset

__all__ = ["make_imbalanced", "subsample", "imbalanced_counts"]


def _take(ds: Dataset, keep: np.ndarray, note: str) -> Dataset:
    idx = torch.from_numpy(np.sort(keep).astype(np.int64)).to(ds.y_train.device)
    return dataclasses.replace(
        ds,
        x_train=ds.x_train[idx],
        y_train=ds.y_train[idx],
        description=f"{ds.description}; {note}" if ds.description else note,
    )


def _class_index(ds: Dataset, key: Any) -> int:
    """A class given by index or by name."""
    if isinstance(key, str) and key in ds.class_names:
        return ds.class_names.index(key)
    if isinstance(key, (int, np.integer)) and not isinstance(key, bool) and 0 <= key < ds.num_classes:
        return int(key)
    raise ConfigError("class_counts", f"unknown class {key!r}; classes are 0..{ds.num_classes - 1} or their names")


def imbalanced_counts(available: Sequence[int], ratio: float) -> list[int]:
    """Training samples kept per class under TA-VAAL's construction.

    Classes ``0 .. K//2 - 1`` keep ``floor(n / ratio)`` of their ``n`` samples, at least 1 so the
    class still exists (CIFAR-10, ratio 10: 5000 -> 500; digits: 143 -> 14); the others keep all.
    """
    half = len(available) // 2
    # the epsilon keeps e.g. 100 / (10 / 3) from flooring to 29 through rounding error
    return [max(1, math.floor(n / ratio + 1e-9)) if c < half else int(n) for c, n in enumerate(available)]


def make_imbalanced(
    ds: Dataset,
    ratio: float | None = None,
    class_counts: Mapping[Any, int] | Sequence[int] | None = None,
    seed: int = 0,
) -> Dataset:
    """The dataset with an imbalanced training set (TA-VAAL, section 5).

    Give either ``ratio`` (>= 1, e.g. 10 or 100: the first half of the classes keep 1/ratio of
    their samples, see :func:`imbalanced_counts` for the rounding), or ``class_counts``: a list
    with one count per class, or a dict ``{class index or name: count}`` (classes not named keep
    all their samples). Which samples of a class are kept is drawn at random from
    ``rng.numpy_rng(seed, 0, "imbalance")``. The test set is unchanged.
    """
    if ds.is_segmentation:
        field = "imbalance_ratio" if ratio is not None else "class_counts"
        raise ConfigError(field, f"cuts a classification set by class; '{ds.name}' labels pixels, not images")
    available = np.bincount(ds.y_train.cpu().numpy(), minlength=ds.num_classes)
    if (ratio is None) == (class_counts is None):
        raise ConfigError("imbalance_ratio", "give either an imbalance ratio (>= 1) or explicit class_counts, not both")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ConfigError("seed", f"must be a non-negative integer, got {seed!r}")

    if ratio is not None:
        if isinstance(ratio, bool) or not isinstance(ratio, (int, float, np.integer, np.floating)) \
                or not math.isfinite(ratio) or ratio < 1:
            raise ConfigError("imbalance_ratio", f"must be a number >= 1 (e.g. 10 or 100), got {ratio!r}")
        counts = imbalanced_counts(available.tolist(), float(ratio))
        half = ds.num_classes // 2
        note = f"imbalanced: classes 0-{half - 1} keep 1/{ratio:g} (seed {seed})" if half else "imbalanced: no cut"
    else:
        counts = available.tolist()
        if isinstance(class_counts, Mapping):
            requested = {_class_index(ds, k): v for k, v in class_counts.items()}
        elif isinstance(class_counts, Sequence) and not isinstance(class_counts, (str, bytes)):
            if len(class_counts) != ds.num_classes:
                raise ConfigError(
                    "class_counts", f"needs one count per class ({ds.num_classes}), got {len(class_counts)}"
                )
            requested = dict(enumerate(class_counts))
        else:
            raise ConfigError(
                "class_counts", f"must be a list of counts or a dict class -> count, got {class_counts!r}"
            )
        for c, n in requested.items():
            label = f"class {c} ({ds.class_names[c]})"
            if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
                raise ConfigError("class_counts", f"{label}: count must be a non-negative integer, got {n!r}")
            if n > available[c]:
                raise ConfigError(
                    "class_counts", f"{label}: asks for {n} samples but the training set has {available[c]}"
                )
            counts[c] = int(n)
        note = f"class counts {counts} (seed {seed})"

    rng = numpy_rng(seed, 0, "imbalance")
    y = ds.y_train.cpu().numpy()
    keep = []
    for c, n in enumerate(counts):
        members = np.flatnonzero(y == c)
        keep.append(members if n == len(members) else rng.choice(members, size=n, replace=False))
    return _take(ds, np.concatenate(keep), note)


def subsample(ds: Dataset, n: int, seed: int = 0) -> Dataset:
    """A uniformly random subset of ``n`` training samples (Godwin et al. 2022 uses 25k of MNIST),
    drawn from ``rng.numpy_rng(seed, 0, "subsample")``. Test set unchanged."""
    available = len(ds.y_train)
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or not 1 <= n <= available:
        raise ConfigError("subsample", f"must be an integer from 1 to {available} (training set size), got {n!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ConfigError("seed", f"must be a non-negative integer, got {seed!r}")
    keep = numpy_rng(seed, 0, "subsample").choice(available, size=int(n), replace=False)
    return _take(ds, keep, f"random subset of {int(n):,} training samples (seed {seed})")


def prepare_dataset(config, dataset: Dataset | None = None) -> Dataset:
    """The training set a config's runs use: loaded (unless given), then cut to the config's class
    imbalance and subsample, from the config's seed. The one place this is derived, for the engine and
    for views of saved runs (which need the data, never a model, a GPU or weights)."""
    from .registry import load_dataset

    ds = dataset if dataset is not None else load_dataset(config.dataset, **config.dataset_options)
    if config.imbalance_ratio is not None or config.class_counts is not None:
        counts = list(config.class_counts) if config.class_counts is not None else None
        ds = make_imbalanced(ds, ratio=config.imbalance_ratio, class_counts=counts, seed=config.seed)
    if config.subsample is not None:
        ds = subsample(ds, config.subsample, seed=config.seed)
    return ds
