"""MedMNIST from a local ``.npz`` (ChestMNIST's 14 findings reduced to normal / abnormal)."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from ..errors import ConfigError, DatasetUnavailable
from ..constraints import Boolean, check
from .base import Dataset, _image_dataset
from .registry import _register


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
    include_val = check("include_val", include_val, Boolean())
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
