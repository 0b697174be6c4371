"""Grids in the experiment file: lists where one value is allowed expand into cells.

- ``seeds = [0, 1, 2]`` (top level, or in a ``[[runs]]`` table) and ``model = [a, b]`` in a
  ``[[runs]]`` table: one run per combination, with the ids ``<id>-<model>-s<seed>`` (the model
  part only when ``model`` is a list, the seed part only when seeds are a list), each an
  ordinary run directory.
- A list for an attack setting of an ``[[attacks]]`` table (``eta = [1.0, 0.05]``,
  ``iterations = [25, 100]``, ``targeted``, ``n``, ...): one table per combination, in the
  order the keys and values are written, labelled ``<label> (eta=0.05, iterations=100)``.

Expansion works on the raw TOML tables, before validation, so every expanded table is checked
by the same code as a hand-written one. Ids and labels depend only on the file's text: the
same file always gives the same cells.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ConfigError

#: Keys of an [[attacks]] table that may hold a list of values (one table per combination).
ATTACK_GRID_KEYS = ("iterations", "gamma", "eta", "reduce", "max_flips", "max_flip_rate", "attack_threshold",
                    "loss", "seed", "threshold_mode", "rsf_trigger_ratio", "budget_mode", "targeted", "n",
                    "threat", "surrogate", "max_passes", "queries", "deepfool_iterations")


@dataclass(frozen=True)
class Cell:
    """One expanded table.

    Attributes:
        raw: the table with every grid key set to one value.
        group: the id (runs) or label (attacks) the file gave, shared by the table's cells.
        suffix: what the cell adds to the group's id or label ("" for a table without lists).
    """

    raw: dict[str, Any]
    group: str
    suffix: str


def _distinct_values(value: Any, key: str, where: str) -> list[Any]:
    """``value`` as a list of grid values; a list must be non-empty and hold no value twice."""
    if not isinstance(value, list):
        return [value]
    if not value:
        raise ConfigError(f"{where}: '{key}' is an empty list; give at least one value")
    if len({repr(v) for v in value}) != len(value):
        raise ConfigError(f"{where}: '{key}' lists a value twice: {value!r}")
    return value


def seed_list(value: Any, where: str, key: str = "seeds") -> list[int]:
    """A ``seeds`` list: distinct integers >= 0."""
    if not isinstance(value, list) or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0
                                              for s in value):
        raise ConfigError(f"{where}: '{key}' must be a list of integers >= 0, got {value!r}")
    return _distinct_values(value, key, where)


def _model_part(model: Any) -> str:
    """The id part of a model: its name, or a spec path's file stem."""
    return Path(model).stem if isinstance(model, str) else repr(model)


def expand_run(raw: dict[str, Any], seeds: list[int] | None, where: str) -> list[Cell]:
    """The runs of one ``[[runs]]`` table.

    Args:
        seeds: the file's top-level ``seeds`` (None: not given); used when the table has
            neither ``seed`` nor ``seeds``.
    """
    if "seed" in raw and "seeds" in raw:
        raise ConfigError(f"{where}: give 'seed' or 'seeds', not both")
    table = {k: v for k, v in raw.items() if k != "seeds"}
    run_seeds = seed_list(raw["seeds"], where) if "seeds" in raw else seeds if "seed" not in raw else None
    models = _distinct_values(raw.get("model"), "model", where)
    cells = []
    for model, seed in itertools.product(models, run_seeds if run_seeds is not None else [None]):
        suffix = (f"-{_model_part(model)}" if isinstance(raw.get("model"), list) else "") + \
                 (f"-s{seed}" if seed is not None else "")
        cell = {**table, "model": model} if "model" in raw else dict(table)
        if seed is not None:
            cell["seed"] = seed
        if "id" in raw and isinstance(raw["id"], str):
            cell["id"] = raw["id"] + suffix
        cells.append(Cell(cell, raw.get("id") if isinstance(raw.get("id"), str) else "", suffix))
    return cells


def _format(value: Any) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def expand_attack(raw: dict[str, Any], label: str, where: str) -> list[Cell]:
    """The tables of one ``[[attacks]]`` table whose default or given label is ``label``."""
    keys = [k for k in raw if k in ATTACK_GRID_KEYS and isinstance(raw[k], list)]
    values = [_distinct_values(raw[k], k, where) for k in keys]
    cells = []
    for combination in itertools.product(*values):
        chosen = dict(zip(keys, combination))
        suffix = f" ({', '.join(f'{k}={_format(v)}' for k, v in chosen.items())})" if keys else ""
        cells.append(Cell({**raw, **chosen, "label": label + suffix}, label, suffix))
    return cells


def resolve_runs(names: list[str], groups: dict[str, list[str]], where: str, key: str) -> list[str]:
    """Run ids for the names of a ``runs`` list: a cell id, or a ``[[runs]]`` id (all its cells)."""
    cells = {cell for members in groups.values() for cell in members}
    out: list[str] = []
    for name in names:
        if name in groups:
            out += [c for c in groups[name] if c not in out]
        elif name in cells:
            out += [] if name in out else [name]
        else:
            known = sorted(set(groups) | cells)
            raise ConfigError(f"{where}: {key} '{name}' is not one of this experiment's runs ({', '.join(known)})")
    return out


def resolve_one_run(name: str, groups: dict[str, list[str]], where: str, key: str) -> str:
    """The one run id ``name`` stands for; a ``[[runs]]`` id that expanded into several cells is an error."""
    cells = resolve_runs([name], groups, where, key)
    if len(cells) != 1:
        raise ConfigError(f"{where}: {key} '{name}' stands for {len(cells)} runs ({', '.join(cells)}); "
                          f"name one of them")
    return cells[0]
