"""Labeled / unlabeled bookkeeping by dataset index."""
from __future__ import annotations

import numpy as np

from ..errors import ConfigError
from ..rng import numpy_rng


class Pool:
    """Which training samples are labeled. Indices are positions in the dataset's training tensors.

    The order in which samples were labeled is kept (``labeled_order``), so a record can say which
    stage labeled what.
    """

    def __init__(self, size: int, labeled: np.ndarray | None = None):
        self.size = int(size)
        self._mask = np.zeros(self.size, dtype=bool)
        self._order: list[int] = []
        if labeled is not None:
            self.add(labeled)

    @classmethod
    def initial(cls, size: int, initial_size: int, seed: int) -> "Pool":
        """The stage-0 labeled set: uniform without replacement, drawn from the trial's seed only, so
        every method of a trial starts from the same labels (Godwin et al. 2022, Algorithm 1)."""
        if not 0 < initial_size < size:
            raise ConfigError("initial_size", f"must be between 1 and {size - 1}, got {initial_size}")
        picks = numpy_rng(seed, 0, "initial-labeled").choice(size, size=initial_size, replace=False)
        return cls(size, picks)

    @property
    def labeled(self) -> np.ndarray:
        return np.flatnonzero(self._mask)

    @property
    def unlabeled(self) -> np.ndarray:
        return np.flatnonzero(~self._mask)

    @property
    def labeled_order(self) -> np.ndarray:
        return np.asarray(self._order, dtype=np.int64)

    @property
    def labeled_mask(self) -> np.ndarray:
        return self._mask.copy()

    def __len__(self) -> int:
        return len(self._order)

    def add(self, indices) -> None:
        """Label ``indices``; refuses duplicates and already-labeled samples (a strategy bug, not a user error)."""
        indices = np.asarray(indices, dtype=np.int64).ravel()
        if len(np.unique(indices)) != len(indices):
            raise ValueError("selection contains duplicate indices")
        if indices.size and (indices.min() < 0 or indices.max() >= self.size):
            raise ValueError("selection contains indices outside the pool")
        if self._mask[indices].any():
            raise ValueError(f"selection contains already-labeled indices: {indices[self._mask[indices]][:5].tolist()}")
        self._mask[indices] = True
        self._order.extend(int(i) for i in indices)

    def candidates(self, budget: int, subset_factor: int, seed: int, stage: int,
                   fraction: float | None = None) -> np.ndarray:
        """The candidate subset for a stage, drawn without replacement: ``subset_factor * budget`` unlabeled
        samples (TA-VAAL / Learning Loss protocol), or ``round(fraction * unlabeled)`` when ``fraction``
        is given (Godwin et al. 2022, Figure 5: 5%); the whole unlabeled pool when the factor is 0 or the
        pool is smaller. Sorted, so scores line up with dataset order."""
        unlabeled = self.unlabeled
        if fraction is not None:
            wanted = max(budget, int(round(fraction * len(unlabeled))))
        elif subset_factor == 0:
            return unlabeled
        else:
            wanted = subset_factor * budget
        if wanted >= len(unlabeled):
            return unlabeled
        picks = numpy_rng(seed, stage, "candidates").choice(len(unlabeled), size=wanted, replace=False)
        return np.sort(unlabeled[picks])

    def copy(self) -> "Pool":
        other = Pool(self.size)
        other._mask = self._mask.copy()
        other._order = list(self._order)
        return other
