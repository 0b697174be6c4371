"""Which (sample, target) rows an attack runs: untargeted, or one of three target modes.

- ``every-other``: every class but the label (the reference code tries all 9 others);
- ``random``: one class other than the label per sample, drawn with a generator seeded from
  (seed, sample index);
- ``least-likely``: the class other than the label with the fewest output spikes on the clean
  input (the lowest class index among equals).
"""
from __future__ import annotations

import numpy as np

from ..errors import ConfigError
from .randomness import row_seed

TARGET_MODES = ("every-other", "random", "least-likely")


def expand_targets(mode: str | None, labels: np.ndarray, n_classes: int, sample_index: np.ndarray,
                   seed: int = 0, clean_counts: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Rows of an attack over samples with ``labels``.

    Args:
        mode: None (untargeted) or one of TARGET_MODES.
        labels: (N,) true classes.
        n_classes: number of output classes K.
        sample_index: (N,) indices in the test split (seed the random mode).
        seed: the attack's seed.
        clean_counts: (N, K) output spike counts on the clean inputs (least-likely mode only).
    Returns:
        (rows, targets): (R,) position of each row's sample in ``labels`` and (R,) its target
        class, -1 for untargeted rows.
    """
    labels = np.asarray(labels, dtype=np.int64)
    n = len(labels)
    if mode is None:
        return np.arange(n), np.full(n, -1, dtype=np.int64)
    if mode == "every-other":
        rows = np.repeat(np.arange(n), n_classes - 1)
        targets = np.array([c for label in labels for c in range(n_classes) if c != label], dtype=np.int64)
        return rows, targets.reshape(-1)
    if mode == "random":
        targets = np.empty(n, dtype=np.int64)
        for i, (label, index) in enumerate(zip(labels, sample_index)):
            others = np.delete(np.arange(n_classes), label)
            targets[i] = others[np.random.default_rng(row_seed(seed, int(index))).integers(len(others))]
        return np.arange(n), targets
    if mode == "least-likely":
        if clean_counts is None:
            raise ValueError("the least-likely target mode needs the clean output counts")
        counts = np.asarray(clean_counts, dtype=np.float64).copy()
        counts[np.arange(n), labels] = np.inf
        return np.arange(n), counts.argmin(axis=1).astype(np.int64)
    raise ConfigError(f"unknown target mode '{mode}'; available: {', '.join(TARGET_MODES)}")
