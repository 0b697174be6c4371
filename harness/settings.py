"""Settings objects validated once, with errors in the words of where a value came from.

A settings dataclass (e.g. :class:`harness.attacks.loop.AttackConfig`) checks its fields by
name and raises :class:`SettingError` naming the field. Whoever built it from user input
re-words the error for its source: the CLI names the flag (``--max-flips``), an experiment file
names the file, table and key (``exp.toml [[attacks]] #2: 'iterations' ...``).
"""
from __future__ import annotations

import dataclasses
import math
import types
import typing
from dataclasses import dataclass
from typing import Any, Callable, TypeVar

from .errors import ConfigError

T = TypeVar("T")


class SettingError(ConfigError):
    """A setting has a wrong type or value.

    ``key`` is the field name; ``problem`` the message, which starts with the field's name
    unless it places it itself as ``{key}``; each ``{}`` stands for one of the ``others`` field
    names (so that they are re-worded too).
    """

    def __init__(self, key: str, problem: str, *others: str):
        self.key, self.others = key, others
        self.problem = problem if "{key}" in problem else "{key} " + problem
        super().__init__(self.worded(cli_flag))  # a Python caller reads the flag's name, as the CLI user

    def worded(self, name_of: Callable[[str], str]) -> str:
        """The message with every field named by ``name_of``."""
        return self.problem.replace("{key}", name_of(self.key)).format(*map(name_of, self.others))


def _allowed(annotation: Any) -> tuple[type, ...]:
    """The runtime types an annotation such as ``int | None`` or ``float`` admits."""
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        return tuple(t for arg in typing.get_args(annotation) for t in _allowed(arg))
    if annotation is float:
        return (int, float)
    if annotation is type(None):
        return (type(None),)
    return (annotation,)


def _type_name(annotation: Any) -> str:
    names = {int: "an integer", float: "a number", bool: "true or false", str: "a string", type(None): "none"}
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        return " or ".join(_type_name(arg) for arg in typing.get_args(annotation))
    return names.get(annotation, getattr(annotation, "__name__", str(annotation)))


def check_types(obj: Any) -> None:
    """Check every field of dataclass ``obj`` against its annotation; integers become floats
    where a float is expected (so 1 and 1.0 are one setting).

    Raises:
        SettingError: the first field whose value has a wrong type. bool is not accepted where
            a number is expected (TOML's ``true`` is no iteration count).
    """
    hints = typing.get_type_hints(type(obj))
    for f in dataclasses.fields(obj):
        value, allowed = getattr(obj, f.name), _allowed(hints[f.name])
        if (isinstance(value, bool) and bool not in allowed) or not isinstance(value, allowed):
            raise SettingError(f.name, f"must be {_type_name(hints[f.name])}, got {value!r}")
        if isinstance(value, int) and not isinstance(value, bool) and int not in _allowed_exact(hints[f.name]):
            object.__setattr__(obj, f.name, float(value))


def _allowed_exact(annotation: Any) -> tuple[type, ...]:
    """The types an annotation names, without the int-for-float allowance of :func:`_allowed`."""
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        return tuple(t for arg in typing.get_args(annotation) for t in _allowed_exact(arg))
    return (annotation,)


def build(cls: Callable[..., T], values: dict[str, Any], name_of: Callable[[str], str], where: str = "") -> T:
    """``cls(**values)``, a SettingError re-raised as ConfigError with ``name_of(field)`` for the field.

    Example: ``build(AttackConfig, {"iterations": "many"}, cli_flag)`` raises
    ``ConfigError("--iterations must be an integer, got 'many'")``; with ``toml_key`` and
    ``where="exp.toml [[attacks]] #1"``: ``"exp.toml [[attacks]] #1: 'iterations' must be ..."``.
    """
    try:
        return cls(**values)
    except SettingError as exc:
        raise ConfigError(f"{where}: {exc.worded(name_of)}" if where else exc.worded(name_of)) from None


def cli_flag(key: str) -> str:
    """The command-line flag of a settings field: ``max_flips`` -> ``--max-flips``."""
    return "--" + key.replace("_", "-")


def toml_key(key: str) -> str:
    """A settings field as a TOML key in a message: ``max_flips`` -> ``'max_flips'``."""
    return f"'{key}'"


# ------------------------------------------------------------------ names that become paths
def folder_name(value: Any, what: str) -> str:
    """``value`` when it is a plain folder name, the one check of every name that becomes a path.

    An experiment's ``name`` (runs/<name>/), a ``[[runs]] id`` (<run dir>/<id>/) and a profile's
    ``name`` (device/<name>/) are joined onto a folder the user chose; a plain name keeps
    everything written inside it: not empty, no path separator or NUL, not starting with "."
    (so neither "." nor ".."), at most 255 bytes.

    Raises:
        ConfigError: ``{what} must be a plain folder name ..., got VALUE`` (``what`` names the file and key).
    """
    if (not isinstance(value, str) or not value or value.startswith(".") or len(value.encode()) > 255
            or any(c in value for c in "/\\\0") or value != value.strip()):
        raise ConfigError(f"{what} must be a plain folder name (no '/', '\\', NUL or surrounding spaces, "
                          f"not starting with '.'), got {value!r}")
    return value


# ------------------------------------------------------------------ numeric ranges
@dataclass(frozen=True)
class Range:
    """The values a numeric key admits: finite, an integer or any number, within bounds.

    ``low``/``high`` are the bounds (None: unbounded on that side); ``open_low``/``open_high``
    exclude the bound itself. NaN and infinities are never admitted.
    """

    low: float | None = None
    high: float | None = None
    open_low: bool = False
    open_high: bool = False
    integer: bool = False

    def admits(self, value: Any) -> bool:
        if isinstance(value, bool) or not isinstance(value, int if self.integer else (int, float)):
            return False
        if isinstance(value, float) and not math.isfinite(value):
            return False
        if self.low is not None and (value <= self.low if self.open_low else value < self.low):
            return False
        return not (self.high is not None and (value >= self.high if self.open_high else value > self.high))

    def __str__(self) -> str:
        kind = "an integer" if self.integer else "a finite number"
        if self.low is not None and self.high is not None:
            return f"{kind} in {'(' if self.open_low else '['}{self.low:g}, {self.high:g}{')' if self.open_high else ']'}"
        if self.low is not None:
            return f"{kind} {'>' if self.open_low else '>='} {self.low:g}"
        if self.high is not None:
            return f"{kind} {'<' if self.open_high else '<='} {self.high:g}"
        return kind

    def check(self, value: Any, name: str) -> None:
        """Raises ConfigError ``{name} must be {self}, got {value!r}`` unless admitted."""
        if not self.admits(value):
            raise ConfigError(f"{name} must be {self}, got {value!r}")


POSITIVE = Range(0, open_low=True)
NON_NEGATIVE = Range(0)
FRACTION = Range(0, 1)
COUNT = Range(1, integer=True)
NON_NEGATIVE_INT = Range(0, integer=True)

#: Every numeric key of a model spec (models/*.toml, docs/models.md), by table. Layer keys apply to
#: each [[layers]] table; neuron keys also to a layer's own ``neuron`` table.
MODEL_RANGES: dict[str, dict[str, Range]] = {
    "data": {"steps": COUNT, "dt_ms": POSITIVE, "holdout": NON_NEGATIVE_INT},
    "neuron": {"threshold": POSITIVE, "current_decay": FRACTION, "voltage_decay": FRACTION, "tau_grad": POSITIVE,
               "scale_grad": POSITIVE, "penultimate_threshold": POSITIVE, "dropout": Range(0, 1, open_high=True)},
    "surrogate": {"width": POSITIVE},
    "layers": {"out": COUNT, "kernel": COUNT, "stride": COUNT, "padding": NON_NEGATIVE_INT, "weight_scale": POSITIVE},
    "training": {"lr": POSITIVE, "epochs": COUNT, "batch_size": COUNT, "true_rate": FRACTION, "false_rate": FRACTION,
                 "logit_scale": POSITIVE, "augment_shift": NON_NEGATIVE_INT, "momentum": Range(0, 1, open_high=True)},
    # adversarial training (harness/adversarial_training.py); 'max_flips' is also checked against the
    # input size (elements per sample) by harness.models.adversarial_settings
    "training.adversarial": {"share": Range(0, 1, open_low=True), "max_flips": COUNT, "iterations": COUNT,
                             "start_epoch": NON_NEGATIVE_INT},
}

#: Every numeric key of a hardware profile (hw_profiles/*.toml, docs/device.md), by table.
PROFILE_RANGES: dict[str, dict[str, Range]] = {
    "energy": {"synaptic_op_j": NON_NEGATIVE, "neuron_update_j": NON_NEGATIVE, "spike_j": NON_NEGATIVE},
    "noise": {"drop_probability": Range(0, 1, open_high=True), "jitter_steps": NON_NEGATIVE_INT,
              "seed": NON_NEGATIVE_INT},
    "chip": {"hop_energy_j": NON_NEGATIVE},
    "input_filter": {"window": COUNT, "energy_per_event_j": NON_NEGATIVE},
}


def check_numbers(table: Any, ranges: dict[str, Range], where: str) -> None:
    """Check every key of ``table`` that ``ranges`` names (other keys are someone else's to check).

    Raises:
        ConfigError: ``{where}: 'key' must be ..., got ...`` for the first value out of its range.
    """
    if not isinstance(table, dict):
        raise ConfigError(f"{where} must be a table, got {table!r}")
    for key, allowed in ranges.items():
        if key in table:
            allowed.check(table[key], f"{where}: '{key}'")


# ------------------------------------------------------------------ sizes declared by files and flags
#: The most elements one array a file or flag declares may hold before harness reads or allocates
#: it (a netx layer's weights, a layer's neurons, binned spikes N x C x H x W x T): 2**28, i.e.
#: 2 GiB of int64. The environment variable ``HARNESS_MAX_ELEMENTS`` sets another limit.
DEFAULT_MAX_ELEMENTS = 2 ** 28
MAX_ELEMENTS_VARIABLE = "HARNESS_MAX_ELEMENTS"


def max_elements() -> int:
    """The size limit in elements (``HARNESS_MAX_ELEMENTS`` or :data:`DEFAULT_MAX_ELEMENTS`).

    Raises:
        ConfigError: the variable is set to something other than an integer >= 1.
    """
    import os

    raw = os.environ.get(MAX_ELEMENTS_VARIABLE)
    if raw is None:
        return DEFAULT_MAX_ELEMENTS
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value < 1:
        raise ConfigError(f"{MAX_ELEMENTS_VARIABLE} must be an integer >= 1, got {raw!r}")
    return value


def check_size(shape: tuple[int, ...], what: str) -> None:
    """Refuse an array of ``shape`` larger than :func:`max_elements`, before anything allocates it.

    Raises:
        ConfigError: ``{what} of shape ... holds N elements, above the limit of M (HARNESS_MAX_ELEMENTS)``.
    """
    size = math.prod(int(s) for s in shape)
    if size > max_elements():
        raise ConfigError(f"{what} of shape {tuple(int(s) for s in shape)} holds {size:,} elements, above the "
                          f"limit of {max_elements():,} ({MAX_ELEMENTS_VARIABLE} sets another)")
