"""Confidence intervals and tests for the studies' figures (pure numpy/scipy).

Issue 14/15: every rate a study reports carries a Wilson interval, every median L0 a bootstrap
interval, every figure averaged over seeds a t-interval, and two rates are compared with an
exact test (Fisher, or Barnard's, which is unconditional and more powerful for small n).

Conventions: ``confidence`` is the two-sided coverage (default 0.95); intervals are returned as
``(low, high)`` floats in the units of the estimate (rates in [0, 1], L0 in flips); an empty
sample gives ``(nan, nan)``, never an exception deep inside scipy.
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np
from scipy import stats as _st

from .errors import ConfigError

#: Resamples of :func:`bootstrap_median` (percentile bootstrap): 10,000 keeps the Monte-Carlo
#: error of a 95% bound well below one flip for the studies' sample sizes (tens to hundreds).
BOOTSTRAP_RESAMPLES = 10_000


def _check_confidence(confidence: float) -> float:
    if not 0 < confidence < 1:
        raise ConfigError(f"confidence must be in (0, 1), got {confidence}")
    return float(confidence)


def _check_count(k: int, n: int, what: str = "rate") -> tuple[int, int]:
    k, n = int(k), int(n)
    if n < 0 or not 0 <= k <= max(n, 0):
        raise ConfigError(f"{what}: need 0 <= k <= n, got k={k}, n={n}")
    return k, n


def wilson(k: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of the rate k/n (e.g. successes over correctly classified rows).

    Good at small n and at rates near 0 or 1 (where the normal interval fails). n = 0 gives
    (nan, nan).
    """
    k, n = _check_count(k, n)
    z = _st.norm.ppf(0.5 + _check_confidence(confidence) / 2)
    if n == 0:
        return float("nan"), float("nan")
    p = k / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z / denom * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    # clip the rounding of the exact ends (k = 0 gives centre == half analytically)
    return max(0.0, centre - half) if k else 0.0, min(1.0, centre + half) if k < n else 1.0


def bootstrap_median(values: Sequence[float], seed: int = 0, confidence: float = 0.95,
                     resamples: int = BOOTSTRAP_RESAMPLES) -> tuple[float, float]:
    """Percentile-bootstrap interval of the median of ``values`` (e.g. L0 of successful rows, flips).

    ``resamples`` draws with replacement from a generator seeded by ``seed``: the same values and
    seed give the same interval. Fewer than 1 value gives (nan, nan).
    """
    x = np.asarray(values, dtype=np.float64).ravel()
    confidence = _check_confidence(confidence)
    if resamples < 1:
        raise ConfigError(f"resamples must be >= 1, got {resamples}")
    if not len(x):
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    medians = np.empty(resamples)
    chunk = max(1, 2_000_000 // len(x))  # bound the memory of one block of resamples
    for start in range(0, resamples, chunk):
        stop = min(resamples, start + chunk)
        medians[start:stop] = np.median(x[rng.integers(0, len(x), size=(stop - start, len(x)))], axis=1)
    alpha = 1 - confidence
    low, high = np.quantile(medians, [alpha / 2, 1 - alpha / 2])
    return float(low), float(high)


def mean_interval(values: Sequence[float], confidence: float = 0.95) -> tuple[float, float, float]:
    """Mean and Student-t interval across seeds: ``(mean, low, high)``.

    One value gives (mean, nan, nan) (no spread to estimate); none gives three nans. NaN entries
    (a seed where the figure is undefined) are an error: drop them first and say so.
    """
    x = np.asarray(values, dtype=np.float64).ravel()
    confidence = _check_confidence(confidence)
    if np.isnan(x).any():
        raise ConfigError(f"mean_interval: {int(np.isnan(x).sum())} of {len(x)} values are NaN")
    if not len(x):
        return float("nan"), float("nan"), float("nan")
    mean = float(x.mean())
    if len(x) < 2:
        return mean, float("nan"), float("nan")
    half = _st.t.ppf(0.5 + confidence / 2, len(x) - 1) * x.std(ddof=1) / math.sqrt(len(x))
    return mean, float(mean - half), float(mean + half)


def _table(k1: int, n1: int, k2: int, n2: int) -> np.ndarray:
    """The 2x2 table [[k1, n1 - k1], [k2, n2 - k2]]: one row per group (successes, failures)."""
    k1, n1 = _check_count(k1, n1, "first rate")
    k2, n2 = _check_count(k2, n2, "second rate")
    if not n1 or not n2:
        raise ConfigError(f"comparing rates needs n >= 1 in both groups, got n1={n1}, n2={n2}")
    return np.array([[k1, n1 - k1], [k2, n2 - k2]])


def fisher(k1: int, n1: int, k2: int, n2: int) -> float:
    """Two-sided Fisher exact test p-value for the rates k1/n1 and k2/n2 (conditional on the margins)."""
    return float(_st.fisher_exact(_table(k1, n1, k2, n2), alternative="two-sided").pvalue)


def barnard(k1: int, n1: int, k2: int, n2: int) -> float:
    """Two-sided Barnard exact test p-value for the rates k1/n1 and k2/n2 (unconditional, Wald statistic
    with pooled variance, scipy's default grid of 32 nuisance values)."""
    # scipy's barnard_exact takes the two samples as the table's columns (its n1, n2 are column
    # sums); the Fisher test is the same either way, Barnard's is not.
    return float(_st.barnard_exact(_table(k1, n1, k2, n2).T, alternative="two-sided").pvalue)
