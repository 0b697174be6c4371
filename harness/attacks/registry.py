"""The registry of attacks: name -> :class:`harness.attacks.interface.Attack` (one file each)."""
from __future__ import annotations

from ..errors import ConfigError
from .interface import Attack
from .methods.energy import Energy
from .methods.imported import Imported
from .methods.iterative import G2s, G2sRsf, Rsf
from .methods.pointwise import Pointwise
from .methods.random import RandomFlips
from .methods.retime import Retime
from .methods.sda import Sda
from .methods.sparse_rs import SparseRs
from .methods.spikefool import SpikeFool
from .methods.transfer import Transfer

#: Every registered attack by name, in ``--help`` order.
ATTACKS: dict[str, Attack] = {a.name: a for a in (G2sRsf(), G2s(), Rsf(), Energy(), RandomFlips(), Transfer(),
                                                SparseRs(), Pointwise(), Sda(), Imported(), SpikeFool(), Retime())}


def get(name: str) -> Attack:
    """The attack registered as ``name``; ConfigError listing the registered names otherwise."""
    if name not in ATTACKS:
        raise ConfigError(f"unknown attack method '{name}'; available: {', '.join(ATTACKS)}")
    return ATTACKS[name]


def help_lines() -> str:
    """One line per registered attack: name, what it needs, its summary."""
    return "\n".join(f"  {a.name:<9} [{a.needs}, {a.threat}] {a.summary}" for a in ATTACKS.values())
