"""harness.stats against published values and independent computations."""
from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from scipy.stats import binom

from harness.errors import ConfigError
from harness.stats import barnard, bootstrap_median, fisher, mean_interval, wilson


@pytest.mark.parametrize("k, n, low, high", [
    # Newcombe (1998), Statistics in Medicine 17:857, Table I, method 3 (Wilson score)
    (81, 263, 0.2553, 0.3662),
    (15, 148, 0.0624, 0.1605),
    (0, 20, 0.0, 0.1611),
    (1, 29, 0.0061, 0.1718),
])
def test_wilson_matches_newcombe(k, n, low, high):
    lo, hi = wilson(k, n)
    assert lo == pytest.approx(low, abs=5e-5) and hi == pytest.approx(high, abs=5e-5)


def test_wilson_ends_and_symmetry():
    assert wilson(0, 10)[0] == 0.0 and wilson(10, 10)[1] == 1.0
    lo, hi = wilson(3, 10)
    lo2, hi2 = wilson(7, 10)
    assert lo == pytest.approx(1 - hi2) and hi == pytest.approx(1 - lo2)
    assert all(math.isnan(v) for v in wilson(0, 0))
    assert wilson(94, 94)[0] == pytest.approx(0.9607, abs=1e-4)  # 94/94 correct rows: lower bound 96.1%
    assert wilson(30, 60, confidence=0.99)[0] < wilson(30, 60)[0]


@pytest.mark.parametrize("bad", [dict(k=5, n=3), dict(k=-1, n=3), dict(k=1, n=3, confidence=1.5)])
def test_wilson_rejects_bad_counts_in_one_line(bad):
    with pytest.raises(ConfigError, match="k <= n|confidence"):
        wilson(**bad)


def test_fisher_known_values():
    assert fisher(3, 4, 1, 4) == pytest.approx(34 / 70)   # the lady tasting tea, two-sided
    assert fisher(0, 5, 5, 5) == pytest.approx(2 / 252)
    assert fisher(28, 31, 27, 27) == pytest.approx(0.2399, abs=1e-3)  # issue 14: 90.3% vs 100%


def _barnard_brute_force(k1, n1, k2, n2, grid=4001):
    """Barnard's unconditional test, Wald statistic with pooled variance, sup over a fine grid."""
    def wald(a, b):
        p1, p2, p = a / n1, b / n2, (a + b) / (n1 + n2)
        var = p * (1 - p) * (1 / n1 + 1 / n2)
        return 0.0 if var == 0 else (p2 - p1) / math.sqrt(var)
    observed = abs(wald(k1, k2))
    extreme = [(a, b) for a, b in itertools.product(range(n1 + 1), range(n2 + 1))
               if abs(wald(a, b)) >= observed - 1e-12]
    a, b = np.array(extreme).T
    pis = np.linspace(0, 1, grid)
    return float(max((binom.pmf(a, n1, pi) * binom.pmf(b, n2, pi)).sum() for pi in pis))


@pytest.mark.parametrize("table", [(7, 12, 8, 11), (2, 10, 8, 10), (28, 31, 27, 27)])
def test_barnard_matches_brute_force(table):
    assert barnard(*table) == pytest.approx(_barnard_brute_force(*table), rel=2e-3)


def test_barnard_is_at_least_as_powerful_as_fisher_here():
    assert barnard(2, 10, 8, 10) < fisher(2, 10, 8, 10)


def test_rate_tests_reject_empty_groups():
    with pytest.raises(ConfigError, match="n >= 1 in both groups"):
        fisher(0, 0, 1, 3)
    with pytest.raises(ConfigError, match="second rate"):
        barnard(1, 3, 4, 3)


def test_mean_interval_known_t_value():
    mean, lo, hi = mean_interval([1, 2, 3, 4, 5])
    half = 2.776445 * math.sqrt(2.5) / math.sqrt(5)  # t(0.975, 4) * sd / sqrt(n)
    assert mean == 3 and lo == pytest.approx(3 - half, abs=1e-5) and hi == pytest.approx(3 + half, abs=1e-5)
    assert mean_interval([0.9])[0] == 0.9 and math.isnan(mean_interval([0.9])[1])
    with pytest.raises(ConfigError, match="NaN"):
        mean_interval([0.9, float("nan")])


def _exact_bootstrap_quantile(xs: np.ndarray, q: float) -> int:
    """1-based j of the order statistic x_(j) at which the exact bootstrap distribution of the median
    of ``xs`` (odd n) first reaches ``q``: P(median* <= x_(j)) = P(Binomial(n, j/n) >= (n + 1) / 2)."""
    n = len(xs)
    cdf = [binom.sf((n + 1) // 2 - 1, n, j / n) for j in range(1, n + 1)]
    return int(np.searchsorted(cdf, q) + 1)


def test_bootstrap_median_matches_the_exact_bootstrap_distribution():
    xs = np.sort(np.random.default_rng(7).exponential(size=101))
    lo, hi = bootstrap_median(xs, seed=3)
    j_lo, j_hi = _exact_bootstrap_quantile(xs, 0.025), _exact_bootstrap_quantile(xs, 0.975)
    # Monte-Carlo error of 10,000 resamples: within one order statistic of the exact quantile
    assert xs[j_lo - 2] <= lo <= xs[j_lo] and xs[j_hi - 2] <= hi <= xs[j_hi]
    assert lo < np.median(xs) < hi


def test_bootstrap_median_is_seeded():
    x = np.random.default_rng(1).normal(size=60)
    assert bootstrap_median(x, seed=3) == bootstrap_median(x, seed=3) != bootstrap_median(x, seed=4)
    assert bootstrap_median([5, 5, 5]) == (5.0, 5.0)
    assert all(math.isnan(v) for v in bootstrap_median([]))
