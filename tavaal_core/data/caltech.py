"""Caltech-101 from a local folder in torchvision's layout (TA-VAAL section 4.3)."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from ..errors import ConfigError, DatasetUnavailable
from ..constraints import Boolean, Interval, check
from .base import Dataset, _image_dataset, _stratified_split
from .registry import _register
from .local import cached_arrays, files_digest, read_images

CALTECH_FOLDER = "caltech101/101_ObjectCategories"
BACKGROUND = "BACKGROUND_Google"
_IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")


def _categories_dir(root: Path) -> Path | None:
    """torchvision's ``<root>/caltech101/101_ObjectCategories``; ``<root>/101_ObjectCategories`` (the
    archive unpacked in place) is accepted too."""
    for candidate in (root / CALTECH_FOLDER, root / "101_ObjectCategories"):
        if candidate.is_dir():
            return candidate
    return None


@_register(
    "caltech101",
    kind="image",
    embedded=False,
    description="Caltech-101 from a local folder (torchvision's layout): 101 imbalanced classes (31-800 images), 224x224",
)
def load_caltech101(*, root: str = "data", size: int = 224, test_size: int = 1019, include_background: bool = False,
                    seed: int = 0, cache: bool = True) -> Dataset:
    """Caltech-101 from ``root/caltech101/101_ObjectCategories/<category>/*.jpg`` (the layout
    torchvision's ``Caltech101`` reads). Classes are the sorted category folders without
    ``BACKGROUND_Google`` (as torchvision; ``include_background`` keeps it as a 102nd class). Its natural
    imbalance is kept (31 to 800 images per class). Every image is converted to RGB and resized to
    ``size`` x ``size``; ``test_size`` images (stratified, from ``seed``) form the test set. Trained with
    random horizontal flips. ``cache`` keeps the decoded arrays in ``root/.tavaal-cache/``."""
    if not isinstance(root, (str, os.PathLike)) or str(root) == "":
        raise ConfigError("root", f"must be a folder path, got {root!r}")
    size = check("size", size, Interval(int, 8, 1024))
    test_size = check("test_size", test_size, Interval(int, 1))
    include_background = check("include_background", include_background, Boolean())
    seed = check("seed", seed, Interval(int, 0))
    cache = check("cache", cache, Boolean())
    root_path = Path(root).expanduser().resolve()
    folder = _categories_dir(root_path)
    if folder is None:
        raise DatasetUnavailable(
            f"Caltech-101 ('caltech101') is not in {root_path}: torchvision's layout is "
            f"{root_path}/{CALTECH_FOLDER}/<category>/image_0001.jpg (101 category folders). Get "
            f"101_ObjectCategories.tar.gz (inside caltech-101.zip) from https://data.caltech.edu/records/mzrjq-6wc02 "
            f"or with torchvision.datasets.Caltech101(root, download=True) on a machine with internet access, "
            f"and unpack it so that {root_path}/{CALTECH_FOLDER} holds the category folders."
        )
    categories = sorted(d.name for d in folder.iterdir() if d.is_dir() and (include_background or d.name != BACKGROUND))
    files, labels = [], []
    for k, name in enumerate(categories):
        found = sorted(p for p in (folder / name).iterdir() if p.suffix.lower() in _IMAGE_SUFFIXES)
        files += found
        labels += [k] * len(found)
    if len(categories) < 2 or not files:
        raise DatasetUnavailable(f"Caltech-101: {folder} holds {len(categories)} category folder(s) with "
                                 f"{len(files)} images; expected 101 folders of .jpg images")
    y = np.asarray(labels, np.int64)
    if test_size >= len(y):
        raise ConfigError("test_size", f"must be smaller than the {len(y)} images found, got {test_size}")
    try:
        train_idx, test_idx = _stratified_split(y, test_size, seed, "caltech101/split")
    except ConfigError as e:
        raise ConfigError("test_size", f"{test_size} test images leave a split without some class ({e})") from None
    key = f"caltech101-{size}-{len(files)}-{files_digest(files, root_path)}"
    images = cached_arrays(root_path, key, lambda: {"x": np.ascontiguousarray(
        read_images(files, (size, size), "RGB", "bilinear").transpose(0, 3, 1, 2))}, cache)["x"]
    train_idx, test_idx = np.sort(train_idx), np.sort(test_idx)
    return _image_dataset(
        "caltech101", torch.from_numpy(images[train_idx]), torch.from_numpy(y[train_idx]),
        torch.from_numpy(images[test_idx]), torch.from_numpy(y[test_idx]), categories, augment=True, crop_padding=0,
        description=f"Caltech-101: {len(train_idx):,} train / {len(test_idx):,} test images, {len(categories)} classes "
                    f"({np.bincount(y).min()}-{np.bincount(y).max()} per class), {size}x{size}, from {folder}",
    )
