"""Text formatting of numbers shared by the report, the stage summaries and the CLI.

One function per kind of value; each shows an undefined value (None, as JSON null, or NaN)
as "n/a":

- :func:`pct`: a fraction in [0, 1] as a percentage ("12.3%");
- :func:`num`: a count or other number with thousands separators ("1,234");
- :func:`times`: an adversarial / clean ratio ("1.23x");
- :func:`rate`: a rate with its 95% interval and counts ("96.8% [92.5, 98.6], 91/94");
- :func:`num_ci`: a number with its interval ("1,649 [1,502, 1,790]").

An interval is given by anything with attributes ``value``, ``low``, ``high`` (and ``k``, ``n``
for a rate), such as :class:`harness.results_model.Rate`.
"""
from __future__ import annotations

NOT_AVAILABLE = "n/a"


def undefined(value: float | None) -> bool:
    """True for None (JSON null) and NaN: an undefined rate, median or ratio."""
    return value is None or value != value


def pct(value: float | None, small: bool = False) -> str:
    """A fraction as a percentage: one decimal ("12.3%"), or with ``small`` three significant digits."""
    if undefined(value):
        return NOT_AVAILABLE
    return f"{100 * value:.3g}%" if small else f"{100 * value:.1f}%"


def num(value: float | None, digits: int = 0) -> str:
    """A number with thousands separators and ``digits`` decimals ("1,234")."""
    return NOT_AVAILABLE if undefined(value) else f"{value:,.{digits}f}"


def times(value: float | None) -> str:
    """An adversarial / clean ratio as "1.23x"."""
    return NOT_AVAILABLE if undefined(value) else f"{value:.2f}x"


def _bounds(low: float | None, high: float | None, scale: float, digits: int) -> str:
    if undefined(low) or undefined(high):
        return ""
    return f" [{scale * low:,.{digits}f}, {scale * high:,.{digits}f}]"


def rate(r, value: float | None = None) -> str:
    """A rate with its interval and counts: "96.8% [92.5, 98.6], 91/94".

    ``r`` has ``value``, ``k``, ``n``, ``low``, ``high`` (a Rate); None (a file without
    intervals) shows ``value`` alone, as :func:`pct`. A rate over no rows is "n/a (0 rows)".
    """
    if r is None:
        return pct(value)
    if not r.n:
        return f"{NOT_AVAILABLE} (0 rows)"
    return f"{pct(r.value)}{_bounds(r.low, r.high, 100, 1)}, {r.k}/{r.n}"


def num_ci(r, value: float | None = None, digits: int = 0) -> str:
    """A number with its interval ("1,649 [1,502, 1,790]"); ``r`` has ``value``, ``low``, ``high``
    (None: ``value`` alone, as :func:`num`)."""
    if r is None or undefined(r.value):
        return num(value if r is None else r.value, digits)
    return f"{num(r.value, digits)}{_bounds(r.low, r.high, 1, digits)}"


def mean_ci_pct(mean: float | None, low: float | None, high: float | None) -> str:
    """A mean of rates over seeds with its t-interval: "95.1% [93.0, 97.2]" (no bounds under 2 seeds)."""
    return pct(mean) + ("" if undefined(mean) else _bounds(low, high, 100, 1))
