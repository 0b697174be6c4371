"""Text formatting of numbers shared by the report, the stage summaries and the CLI.

One function per kind of value; each shows an undefined value (None, as JSON null, or NaN)
as "n/a":

- :func:`pct`: a fraction in [0, 1] as a percentage ("12.3%");
- :func:`num`: a count or other number with thousands separators ("1,234");
- :func:`times`: an adversarial / clean ratio ("1.23x").
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
