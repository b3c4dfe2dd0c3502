"""Dataset registry, loaders and training-set cuts (imbalance, subsets); the labeled/unlabeled Pool is in ``.pool``."""
from .pool import Pool
from .datasets import DATASETS, IGNORE_INDEX, Dataset, available_datasets, channel_stats, dataset_info, load_dataset
from . import segmentation, caltech  # noqa: F401,E402  (registration: shapes, cityscapes, caltech101)
from .imbalance import imbalanced_counts, make_imbalanced, prepare_dataset, subsample

__all__ = [
    "DATASETS",
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
