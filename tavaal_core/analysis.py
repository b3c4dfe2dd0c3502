"""Numbers computed from records for the views: class-count entropy (TA-VAAL Fig. 7a)."""
from __future__ import annotations

import numpy as np


def class_count_entropy(counts) -> tuple[float, float]:
    """Entropy of the labeled set's class distribution: (natural-log entropy, entropy / log K).
    1.0 normalised means perfectly balanced; 0 means a single class."""
    counts = np.asarray(counts, dtype=np.float64)
    total = counts.sum()
    if total <= 0 or len(counts) < 2:
        return 0.0, 0.0
    p = counts[counts > 0] / total
    h = float(-(p * np.log(p)).sum())
    return h, h / float(np.log(len(counts)))
