"""Dataset registry, loaders and training-set cuts (imbalance, subsets); the labeled/unlabeled Pool is in ``.pool``."""
from .pool import Pool
from .datasets import DATASETS, Dataset, available_datasets, channel_stats, dataset_info, load_dataset
from .imbalance import imbalanced_counts, make_imbalanced, prepare_dataset, subsample

__all__ = [
    "DATASETS",
    "Pool",
    "Dataset",
    "available_datasets",
    "channel_stats",
    "dataset_info",
    "imbalanced_counts",
    "load_dataset",
    "make_imbalanced",
    "prepare_dataset",
    "subsample",
]
