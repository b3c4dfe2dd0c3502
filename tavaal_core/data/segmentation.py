"""Segmentation datasets: generated ``shapes`` scenes (embedded, offline) and ``cityscapes`` from a local
folder. Masks are uint8 (N, H, W) class indices; :data:`~.datasets.IGNORE_INDEX` (255) marks pixels
without a label.
"""
from __future__ import annotations

import functools
import os
from pathlib import Path

import numpy as np
import torch

from ..errors import ConfigError, DatasetUnavailable
from ..rng import numpy_rng
from ..constraints import Boolean, Interval, check
from .base import IGNORE_INDEX, Dataset, _image_dataset
from .registry import _register
from .local import cached_arrays, files_digest, read_images

# --------------------------------------------------------------------------------------------
# Shapes: generated scenes with per-pixel labels
# --------------------------------------------------------------------------------------------
SHAPE_CLASSES = ["background", "disc", "square", "triangle", "ring"]
# How often each shape is drawn: the rarer ones make the class-balance view worth a look.
SHAPE_FREQUENCIES = (0.40, 0.30, 0.18, 0.12)


def _shape_field(kind: int, yy: np.ndarray, xx: np.ndarray, cy: float, cx: float, r: float, angle: float) -> np.ndarray:
    """Approximately the signed distance (pixels) to the shape's outline: > 0 inside, < 0 outside."""
    dy, dx = yy - cy, xx - cx
    if kind == 1:  # disc
        return r - np.hypot(dy, dx)
    if kind == 4:  # ring: between 0.55 r and r
        d = np.hypot(dy, dx)
        return np.minimum(r - d, d - 0.55 * r)
    c, s = np.cos(angle), np.sin(angle)
    u, v = c * dx + s * dy, -s * dx + c * dy
    if kind == 2:  # square of half-side 0.8 r, rotated
        half = 0.8 * r
        return np.minimum(half - np.abs(u), half - np.abs(v))
    # triangle: equilateral, inradius r / 2, as the intersection of three half-planes
    field = None
    for k in range(3):
        a = angle + 2 * np.pi * k / 3
        edge = 0.5 * r - (np.cos(a) * dx + np.sin(a) * dy)
        field = edge if field is None else np.minimum(field, edge)
    return field


def draw_shapes(n: int, size: int, max_shapes: int, seed: int, purpose: str) -> tuple[np.ndarray, np.ndarray]:
    """``n`` scenes (N, 3, size, size) uint8 and their masks (N, size, size) uint8.

    A scene: a colour gradient with noise, then 1..``max_shapes`` shapes (disc, square, triangle, ring)
    of random size, position, rotation and colour (at least 80 grey levels off the background in some
    channel), later ones on top. A shape's colour says nothing about its class, so the model must learn
    the form. Pixels within half a pixel of an outline are
    :data:`IGNORE_INDEX` (as VOC marks object borders "void"): their class is ambiguous.
    """
    rng = numpy_rng(seed, 0, purpose)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) + 0.5
    ramp_y, ramp_x = yy / size - 0.5, xx / size - 0.5
    images = np.empty((n, 3, size, size), np.uint8)
    masks = np.zeros((n, size, size), np.uint8)
    for i in range(n):
        base = rng.uniform(20, 200, 3)
        slope = rng.uniform(-60, 60, (3, 2))
        img = (base[:, None, None] + slope[:, 0, None, None] * ramp_y + slope[:, 1, None, None] * ramp_x
               + rng.normal(0, 10, (3, size, size)))
        mask = masks[i]
        for _ in range(int(rng.integers(1, max_shapes + 1))):
            kind = int(rng.choice(4, p=SHAPE_FREQUENCIES)) + 1
            r = rng.uniform(0.15, 0.32) * size
            cy, cx = rng.uniform(0.1 * size, 0.9 * size, 2)
            field = _shape_field(kind, yy, xx, cy, cx, r, rng.uniform(0, 2 * np.pi))
            inside = field >= 0.5
            edge = np.abs(field) < 0.5
            colour = rng.uniform(0, 255, 3)
            while np.abs(colour - base).max() < 80:  # visible against the background (form decides the class)
                colour = rng.uniform(0, 255, 3)
            img[:, inside | edge] = colour[:, None] + rng.normal(0, 10, (3, int((inside | edge).sum())))
            mask[inside] = kind
            mask[edge] = IGNORE_INDEX
        images[i] = np.clip(np.rint(img), 0, 255).astype(np.uint8)
    return images, masks


@functools.lru_cache(maxsize=4)
def _shapes_arrays(n_train: int, n_test: int, size: int, max_shapes: int, seed: int):
    x_tr, y_tr = draw_shapes(n_train, size, max_shapes, seed, "shapes/train")
    x_te, y_te = draw_shapes(n_test, size, max_shapes, seed, "shapes/test")
    return x_tr, y_tr, x_te, y_te


@_register(
    "shapes",
    kind="segmentation",
    embedded=True,
    description="Shapes (generated): 1,000 + 200 scenes of discs, squares, triangles, rings, 32x32, per-pixel labels",
)
def load_shapes(*, n_train: int = 1000, n_test: int = 200, size: int = 32, max_shapes: int = 3, seed: int = 0) -> Dataset:
    """Generated segmentation scenes (see :func:`draw_shapes`): 5 classes (background, disc, square,
    triangle, ring), uint8 images (N, 3, size, size) and masks (N, size, size). Deterministic from
    ``seed``; needs no files. Trained with random horizontal flips."""
    n_train = check("n_train", n_train, Interval(int, 2, 100_000))
    n_test = check("n_test", n_test, Interval(int, 1, 100_000))
    size = check("size", size, Interval(int, 8, 512))
    max_shapes = check("max_shapes", max_shapes, Interval(int, 1, 10))
    seed = check("seed", seed, Interval(int, 0))
    x_tr, y_tr, x_te, y_te = _shapes_arrays(n_train, n_test, size, max_shapes, seed)
    return _image_dataset(
        "shapes", torch.from_numpy(x_tr.copy()), torch.from_numpy(y_tr.copy()), torch.from_numpy(x_te.copy()),
        torch.from_numpy(y_te.copy()), SHAPE_CLASSES, augment=True, kind="segmentation", crop_padding=0,
        background_class=0,
        description=f"Shapes: {n_train:,} train / {n_test:,} test generated scenes, {size}x{size}, "
                    f"up to {max_shapes} shapes each, per-pixel labels",
    )


# --------------------------------------------------------------------------------------------
# Cityscapes from the user's folder
# --------------------------------------------------------------------------------------------
# The 19 evaluation classes and the label ids (gtFine *_labelIds.png) that map to them: the table of
# the Cityscapes benchmark (Cordts et al., CVPR 2016; cityscapesScripts' labels.py, "trainId").
# Every other id (void, rare classes such as caravan or trailer, license plate) is ignored.
CITYSCAPES_CLASSES = ["road", "sidewalk", "building", "wall", "fence", "pole", "traffic light", "traffic sign",
                      "vegetation", "terrain", "sky", "person", "rider", "car", "truck", "bus", "train",
                      "motorcycle", "bicycle"]
CITYSCAPES_LABEL_IDS = (7, 8, 11, 12, 13, 17, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 31, 32, 33)


def cityscapes_train_ids() -> np.ndarray:
    """A 256-entry lookup table: label id -> train id (0..18), IGNORE_INDEX for the rest."""
    table = np.full(256, IGNORE_INDEX, np.uint8)
    for train_id, label_id in enumerate(CITYSCAPES_LABEL_IDS):
        table[label_id] = train_id
    return table


_CITYSCAPES_LAYOUT = ("leftImg8bit/{split}/<city>/<name>_leftImg8bit.png and "
                      "gtFine/{split}/<city>/<name>_gtFine_labelIds.png")


def _cityscapes_pairs(root: Path, split: str) -> list[tuple[Path, Path]]:
    images = sorted((root / "leftImg8bit" / split).glob("*/*_leftImg8bit.png"))
    pairs, missing = [], []
    for img in images:
        stem = img.name[: -len("_leftImg8bit.png")]
        label = root / "gtFine" / split / img.parent.name / f"{stem}_gtFine_labelIds.png"
        (pairs if label.is_file() else missing).append((img, label))
    if missing:
        raise DatasetUnavailable(
            f"Cityscapes: {len(missing)} image(s) in {root / 'leftImg8bit' / split} have no label map, e.g. "
            f"{missing[0][1]} is missing. Unzip gtFine_trainvaltest.zip into {root} as well (it holds gtFine/)."
        )
    return pairs


def _cityscapes_absent(root: Path, train_split: str, test_split: str) -> str | None:
    needed = [f"{top}/{s}" for s in (train_split, test_split) for top in ("leftImg8bit", "gtFine")]
    absent = [d for d in needed if not (root / d).is_dir()]
    if not absent:
        return None
    return (
        f"Cityscapes ('cityscapes') is not in {root}: expected the folders {', '.join(needed)} "
        f"(missing: {', '.join(absent)}), laid out as {root}/{_CITYSCAPES_LAYOUT.format(split='<split>')}. "
        f"Download leftImg8bit_trainvaltest.zip and gtFine_trainvaltest.zip from "
        f"https://www.cityscapes-dataset.com/downloads/ (free registration) and unzip both into {root}."
    )


@_register(
    "cityscapes",
    kind="segmentation",
    embedded=False,
    description="Cityscapes from a local folder (leftImg8bit/, gtFine/): 2,975 + 500 street scenes, 19 classes",
)
def load_cityscapes(*, root: str = "data/cityscapes", height: int = 256, width: int = 512, train_split: str = "train",
                    test_split: str = "val", cache: bool = True) -> Dataset:
    """Cityscapes fine annotations from ``root`` in the dataset's own layout: images
    ``leftImg8bit/<split>/<city>/*_leftImg8bit.png``, labels ``gtFine/<split>/<city>/*_gtFine_labelIds.png``.
    Label ids map to the 19 training classes (:func:`cityscapes_train_ids`), the rest to IGNORE_INDEX.
    Images are resized to ``height`` x ``width`` (bilinear), label maps likewise (nearest). The training
    pool is ``train_split`` (2,975 frames), the test set ``test_split`` (500; the test split's labels
    are not public). ``cache`` keeps the decoded arrays in ``root/.tavaal-cache/``."""
    if not isinstance(root, (str, os.PathLike)) or str(root) == "":
        raise ConfigError("root", f"must be a folder path, got {root!r}")
    height = check("height", height, Interval(int, 4, 4096))
    width = check("width", width, Interval(int, 4, 8192))
    cache = check("cache", cache, Boolean())
    for name, value in (("train_split", train_split), ("test_split", test_split)):
        if value not in ("train", "val", "test", "train_extra"):
            raise ConfigError(name, f"must be one of: train, val, test, train_extra; got {value!r}")
    root_path = Path(root).expanduser().resolve()
    absent = _cityscapes_absent(root_path, train_split, test_split)
    if absent:
        raise DatasetUnavailable(absent)
    pairs = {s: _cityscapes_pairs(root_path, s) for s in (train_split, test_split)}
    for s, found in pairs.items():
        if not found:
            raise DatasetUnavailable(f"Cityscapes: no images in {root_path / 'leftImg8bit' / s}; expected "
                                     f"{root_path}/{_CITYSCAPES_LAYOUT.format(split=s)}")
    arrays = _read_cityscapes(root_path, pairs[train_split], pairs[test_split], height, width, cache)
    return _image_dataset(
        "cityscapes", torch.from_numpy(arrays["x_train"]), torch.from_numpy(arrays["y_train"]),
        torch.from_numpy(arrays["x_test"]), torch.from_numpy(arrays["y_test"]), CITYSCAPES_CLASSES,
        augment=True, kind="segmentation", crop_padding=0,
        description=f"Cityscapes: {len(pairs[train_split]):,} {train_split} / {len(pairs[test_split]):,} "
                    f"{test_split} frames at {height}x{width}, 19 classes, from {root_path}",
    )


def _read_cityscapes(root: Path, train: list, test: list, height: int, width: int, cache: bool) -> dict:
    files = [p for pair in train + test for p in pair]
    key = f"cityscapes-{height}x{width}-{len(train)}-{len(test)}-{files_digest(files, root)}"
    table = cityscapes_train_ids()

    def build():
        out = {}
        for split, pairs in (("train", train), ("test", test)):
            images = read_images([p[0] for p in pairs], (height, width), "RGB", "bilinear")
            labels = read_images([p[1] for p in pairs], (height, width), "L", "nearest")
            out[f"x_{split}"] = np.ascontiguousarray(images.transpose(0, 3, 1, 2))
            out[f"y_{split}"] = table[labels]
        return out

    return cached_arrays(root, key, build, cache)
