"""Ensembles: which registered attacks an evaluation runs, with which settings, in cascade order.

An ensemble is a TOML file (``experiments/ensembles/<name>.toml`` shipped, or any path)::

    name = "standard"
    description = "..."
    [[attacks]]
    label = "G2S+RSF sparse (reduced)"   # optional, default the method
    method = "g2s-rsf"                   # a name in harness.attacks.registry.ATTACKS
    eta = 0.05                           # the method's settings (TOML keys)
    reduce = true

Each attack's settings are checked by the registry's own :meth:`Attack.check` (and, for the
iterative methods, built into their settings dataclass), so a bad key or value names the file,
the attack and the key. The cascade order is by what an attack needs: gradient attacks first,
then score- and decision-based ones, then random flips; ties keep the file's order.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..attacks import registry
from ..attacks.methods.energy import Energy
from ..attacks.methods.iterative import Iterative
from ..config import check_unknown, load_toml, require_keys, resolve_spec
from ..errors import ConfigError
from ..settings import toml_key

#: Where ``--ensemble NAME`` looks (``PROJECT_ROOT/experiments/ensembles/NAME.toml``).
KIND = "experiments/ensembles"
#: Random flips of exactly b elements per budget b: the ensemble's decision-free baseline.
RANDOM = "random"
#: Cascade stage of each kind of attack: gradients, then scores/labels, then random flips.
STAGE = {"gradients": 0, "scores": 1, "labels": 1, RANDOM: 2}
#: Settings of ``random`` inside an ensemble (``match`` copies another record's L0: not here).
RANDOM_SETTINGS = frozenset({"seed"})


@dataclass(frozen=True)
class Member:
    """One attack of an ensemble.

    Attributes:
        label: its name in tables (unique within the ensemble).
        method: the registry name.
        settings: the method's settings (TOML keys -> values), checked.
        needs: ``gradients``, ``scores``, ``labels`` or ``random`` (the cascade stage's key).
    """

    label: str
    method: str
    settings: dict[str, Any] = field(default_factory=dict)
    needs: str = "gradients"

    @property
    def stage(self) -> int:
        return STAGE[self.needs]

    def to_dict(self) -> dict[str, Any]:
        return {"label": self.label, "method": self.method, "settings": dict(self.settings), "needs": self.needs}


@dataclass(frozen=True)
class Ensemble:
    """A named list of attacks in cascade order."""

    name: str
    description: str
    members: tuple[Member, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "description": self.description, "attacks": [m.to_dict() for m in self.members]}


def load_ensemble(name_or_path: str | Path) -> Ensemble:
    """The ensemble shipped as ``name_or_path`` or in that TOML file (ConfigError naming the problem)."""
    path = resolve_spec(KIND, name_or_path)
    table = load_toml(path)
    check_unknown(table, {"name", "description", "attacks"}, str(path))
    attacks = table.get("attacks")
    if not isinstance(attacks, list) or not attacks or not all(isinstance(a, dict) for a in attacks):
        raise ConfigError(f"{path}: needs at least one [[attacks]] table")
    members = [_member(a, f"{path}: [[attacks]] {i + 1}") for i, a in enumerate(attacks)]
    labels = [m.label for m in members]
    if len(set(labels)) != len(labels):
        raise ConfigError(f"{path}: two attacks share a label ({', '.join(sorted({x for x in labels if labels.count(x) > 1}))})")
    ordered = tuple(sorted(members, key=lambda m: m.stage))  # stable: the file's order within a stage
    return Ensemble(str(table.get("name", path.stem)), str(table.get("description", "")), ordered)


def _member(table: dict[str, Any], where: str) -> Member:
    """One ``[[attacks]]`` table, checked against the registry."""
    require_keys(table, ["method"], where)
    method, label = table["method"], table.get("label", table["method"])
    if not isinstance(label, str) or not label:
        raise ConfigError(f"{where}: 'label' must be a non-empty string")
    settings = {k: v for k, v in table.items() if k not in ("method", "label")}
    try:
        attack = registry.get(method)
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from None
    if method == RANDOM:
        check_unknown(settings, set(RANDOM_SETTINGS), f"{where} (random flips b elements per budget b)")
        seed = settings.get("seed", 0)
        if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
            raise ConfigError(f"{where}: 'seed' must be an integer >= 0, got {seed!r}")
        return Member(label, method, settings, RANDOM)
    if isinstance(attack, Energy) or attack.needs == "record":
        raise ConfigError(f"{where}: method '{method}' cannot join an ensemble (robust accuracy needs attacks that "
                          "change the prediction from the input alone)")
    name_of = lambda key: f"{where}: {toml_key(key)}"  # noqa: E731
    attack.check(settings, name_of)
    if "n" in settings or "targeted" in settings:
        raise ConfigError(f"{where}: 'n' and 'targeted' are set by the evaluation (untargeted, its --n rows)")
    if isinstance(attack, Iterative):
        attack.config(settings, name_of)  # values checked here, before any work
    return Member(label, method, settings, attack.needs)
