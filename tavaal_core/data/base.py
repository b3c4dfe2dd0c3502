"""Datasets as tensors held in memory: the :class:`Dataset` every loader returns (training and test tensors,
class names, the per-channel statistics that normalise images on the fly), and the helpers loaders share.
Images stay ``uint8`` (N, C, H, W) so a whole training set fits on the device once; ``Dataset.normalize``
turns a batch into float32.

Three kinds: ``vector`` (2-d points), ``image`` (one class per image) and ``segmentation`` (one
class per pixel: ``y`` is uint8 ``(N, H, W)``, :data:`IGNORE_INDEX` marks pixels without a label).
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field

import numpy as np
import torch

from ..errors import ConfigError
from ..rng import derive_seed


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

    @property
    def train_size(self) -> int:
        return int(len(self.y_train))

    def arrays(self, split: str = "train") -> tuple[np.ndarray, np.ndarray]:
        """``(x, y)`` of ``split`` as numpy arrays on the host (what the app draws; it never holds tensors)."""
        x, y = (self.x_train, self.y_train) if split == "train" else (self.x_test, self.y_test)
        return x.cpu().numpy(), y.cpu().numpy()

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
