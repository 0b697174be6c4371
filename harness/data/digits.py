"""The embedded default data set: scikit-learn's handwritten digits, rate coded.

1,797 real 8x8 images with intensities 0..16 ship inside scikit-learn (no download). Each
pixel's intensity / 16 is a firing probability; every time step draws Bernoulli spikes from
it with a seeded generator. The train/test split is fixed: 20% stratified with seed 0
(360 test samples).
"""
from __future__ import annotations

import numpy as np

from .spikeset import SpikeSet

SENSOR_SIZE = (8, 8, 1)  # (W, H, P)
SPLIT_SEED = 0
TEST_FRACTION = 0.2


def digit_rates(split: str) -> tuple[np.ndarray, np.ndarray]:
    """Firing probabilities (N, 1, 8, 8) in [0, 1] and labels (N,) of a split."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    data = load_digits()
    rates = (data.images / 16.0).astype(np.float32)[:, None]
    idx_train, idx_test = train_test_split(np.arange(len(rates)), test_size=TEST_FRACTION,
                                           stratify=data.target, random_state=SPLIT_SEED)
    idx = {"train": idx_train, "test": idx_test}[split]
    return rates[idx], data.target[idx].astype(np.int64)


def rate_code(rates: np.ndarray, steps: int, seed: int) -> np.ndarray:
    """Bernoulli spikes (N, ..., steps) uint8 with P(spike) = rate, from one seeded generator."""
    rng = np.random.default_rng(seed)
    return (rng.random(rates.shape + (steps,)) < rates[..., None]).astype(np.uint8)


def load_digits_spikes(split: str, steps: int = 16, seed: int = 0) -> SpikeSet:
    """A split of the digits as a SpikeSet of shape (N, 1, 8, 8, steps).

    The coding seed is derived from ``seed`` and the split, so train and test draws differ.
    """
    rates, labels = digit_rates(split)
    code_seed = seed * 2 + (split == "test")
    return SpikeSet(spikes=rate_code(rates, steps, code_seed), labels=labels, dataset="digits",
                    encoding="bernoulli-rate", dt_ms=1.0, sensor_size=SENSOR_SIZE, seed=code_seed,
                    sample_ids=np.arange(len(labels)), rates=rates)
