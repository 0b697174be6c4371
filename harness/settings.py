"""Settings objects validated once, with errors in the words of where a value came from.

A settings dataclass (e.g. :class:`harness.attacks.loop.AttackConfig`) checks its fields by
name and raises :class:`SettingError` naming the field. Whoever built it from user input
re-words the error for its source: the CLI names the flag (``--max-flips``), an experiment file
names the file, table and key (``exp.toml [[attacks]] #2: 'iterations' ...``).
"""
from __future__ import annotations

import dataclasses
import types
import typing
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
