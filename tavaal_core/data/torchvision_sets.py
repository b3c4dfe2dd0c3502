"""Datasets read from torchvision's on-disk layout under ``root`` (MNIST, Fashion-MNIST, CIFAR-10/100,
SVHN); absent files raise :class:`DatasetUnavailable` saying which files go where."""
from __future__ import annotations

import functools
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..errors import ConfigError, DatasetUnavailable
from ..constraints import Boolean, check
from .base import Dataset, _image_dataset, channel_stats
from .registry import _register


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
    download = check("download", download, Boolean())
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
