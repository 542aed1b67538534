"""Seeded, stratified index sets. The shared archives are sorted by class, so a split by position
would drop whole classes: every draw here is per class."""
from __future__ import annotations

import numpy as np

from nasflow.errors import NasflowError


def _per_class(labels: np.ndarray, seed: int):
    rng = np.random.default_rng(seed)
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        yield rng.permutation(idx)


def stratified_split(labels: np.ndarray, fraction: float = 0.5, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Two disjoint index sets covering `labels`; the first holds `fraction` of every class."""
    if not 0 < fraction < 1:
        raise NasflowError(f"split fraction must be in (0, 1), got {fraction}")
    first, second = [], []
    for idx in _per_class(np.asarray(labels), seed):
        cut = int(round(len(idx) * fraction))
        first.append(idx[:cut])
        second.append(idx[cut:])
    return np.sort(np.concatenate(first)), np.sort(np.concatenate(second))


def stratified_subset(labels: np.ndarray, per_class: int | None = None, fraction: float | None = None,
                      seed: int = 0) -> np.ndarray:
    """A seeded subset with `per_class` images of each class, or `fraction` of each class."""
    if (per_class is None) == (fraction is None):
        raise NasflowError("give exactly one of per_class or fraction for a subset")
    chosen = []
    for idx in _per_class(np.asarray(labels), seed):
        n = per_class if per_class is not None else max(1, int(round(len(idx) * fraction)))
        if n > len(idx):
            raise NasflowError(f"subset asks for {n} images of a class that has {len(idx)}")
        chosen.append(idx[:n])
    return np.sort(np.concatenate(chosen))
