"""The energy (sponge) attack: G2S+RSF ascent on the network's synaptic operations."""
from __future__ import annotations

from typing import Any

from ...errors import ConfigError
from ...settings import cli_flag
from ..energy import is_energy_loss
from .iterative import Iterative


class Energy(Iterative):
    name, summary = "energy", "sponge attack: raise synaptic operations (--loss energy-stealthy keeps the label)"
    method = "g2s-rsf"  # the crafting loop (and so the attack id) is G2S+RSF's
    settings = frozenset({"iterations", "gamma", "eta", "reduce", "max_flips", "max_flip_rate", "budget_mode",
                          "loss", "energy_target", "energy_objective", "seed", "n"})

    def config(self, values: dict[str, Any], name_of=cli_flag, where: str = ""):
        loss = values.get("loss", "energy")
        if not is_energy_loss(loss):
            raise ConfigError(f"{where + ': ' if where else ''}{name_of('loss')} {loss} is not an energy loss; method 'energy' takes "
                              "energy or energy-stealthy")
        return super().config({**values, "loss": loss}, name_of, where)
