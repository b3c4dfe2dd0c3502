"""Datasets, one file a family, behind one registry (the split follows baal's ``active/dataset``):

- ``base``: the :class:`Dataset` every loader returns, and the helpers loaders share;
- ``registry``: names, kinds and options (``dataset_info``), ``load_dataset``;
- ``embedded``: the sets that work offline with no files: ``moons``, ``digits``, ``mnist5k``;
- ``torchvision_sets``: ``mnist``, ``fashion_mnist``, ``cifar10``, ``cifar100``, ``svhn`` from torchvision's
  on-disk layout under ``root``; ``medmnist``: a MedMNIST ``.npz``;
- ``segmentation``: the generated ``shapes`` scenes and ``cityscapes``; ``caltech``: ``caltech101``;
- ``imbalance``: the training-set cuts and :func:`prepare_dataset`, the one function that prepares a
  config's dataset (for the engine and for the app); ``pool``: the labeled / unlabeled :class:`Pool`.

A dataset whose files are absent raises :class:`DatasetUnavailable` with one message saying where to put
which files.
"""
from .base import IGNORE_INDEX, KINDS, Dataset, channel_stats
from .registry import DATASETS, available_datasets, dataset_info, load_dataset
# Registration, in the order the datasets are listed (embedded ones first).
from . import embedded, torchvision_sets, medmnist, segmentation, caltech  # noqa: F401, E402
from .imbalance import imbalanced_counts, make_imbalanced, prepare_dataset, subsample
from .pool import Pool

__all__ = [
    "DATASETS",
    "KINDS",
    "Pool",
    "Dataset",
    "IGNORE_INDEX",
    "available_datasets",
    "channel_stats",
    "dataset_info",
    "imbalanced_counts",
    "load_dataset",
    "make_imbalanced",
    "prepare_dataset",
    "subsample",
]
