"""Hardware profiles: ``hw_profiles/*.toml``, loaded by name or path and validated.

A profile names a backend and its settings, the per-operation energy figures (with their
cited source) and optional input non-idealities::

    name = "loihi2-fixed"
    description = "..."

    [backend]
    kind = "lava-sim"          # Lava's CPU simulation of Loihi
    select_tag = "fixed_pt"    # fixed_pt (bit-exact Loihi arithmetic) or floating_pt

    [energy]                   # joules per operation
    synaptic_op_j = 23.6e-12
    neuron_update_j = 52e-12
    spike_j = 1.7e-12
    source = "..."

    [noise]                    # optional
    drop_probability = 0.05
    jitter_steps = 1
    seed = 0

    [chip]                     # optional: neurocore limits and mesh (harness/device/chip.py)

    [input_filter]             # optional: an event filter before the network (harness/device/input_filter.py)
    kind = "refractory"        # refractory | denoise
    window = 2                 # steps
    on_chip = false            # energy_per_event_j counts on the chip only
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

from ..config import available, check_unknown, load_toml, require_keys, resolve_spec
from ..errors import ConfigError
from ..settings import PROFILE_RANGES, check_numbers, folder_name
from .chip import Chip, chip_from_table
from .energy import EnergyModel, energy_model_from_table
from .input_filter import InputFilter, input_filter_from_table
from .noise import InputNoise, noise_from_table
from .registry import backend_kinds

SELECT_TAGS = ("fixed_pt", "floating_pt")


@dataclass(frozen=True)
class Profile:
    """A validated hardware profile."""

    name: str
    description: str
    backend: str
    select_tag: str
    energy: EnergyModel
    noise: InputNoise = field(default_factory=InputNoise)
    path: Path | None = None
    chip: Chip | None = None
    input_filter: InputFilter | None = None

    def to_dict(self) -> dict:
        """The profile as a JSON-friendly dict (stored with every replay output)."""
        return {"name": self.name, "description": self.description,
                "backend": {"kind": self.backend, "select_tag": self.select_tag},
                "energy": self.energy.to_dict(), "noise": self.noise.to_dict(),
                **({"chip": self.chip.to_dict()} if self.chip else {}),
                **({"input_filter": self.input_filter.to_dict()} if self.input_filter else {})}


def profile_from_dict(raw: dict, where: str) -> Profile:
    """Validate a parsed profile; every error names ``where`` and the offending key."""
    check_unknown(raw, {"name", "description", "backend", "energy", "noise", "chip", "input_filter"}, where)
    require_keys(raw, ["name", "backend", "energy"], where)
    backend = raw["backend"]
    if not isinstance(backend, dict):
        raise ConfigError(f"{where}: [backend] must be a table")
    check_unknown(backend, {"kind", "select_tag"}, f"{where} [backend]")
    require_keys(backend, ["kind", "select_tag"], f"{where} [backend]")
    if backend["kind"] not in backend_kinds():
        raise ConfigError(f"{where} [backend]: kind '{backend['kind']}' unknown; "
                          f"available: {', '.join(backend_kinds())}")
    if backend["select_tag"] not in SELECT_TAGS:
        raise ConfigError(f"{where} [backend]: select_tag '{backend['select_tag']}' unknown; "
                          f"available: {', '.join(SELECT_TAGS)}")
    for table in ("energy", "noise"):
        if not isinstance(raw.get(table, {}), dict):
            raise ConfigError(f"{where}: [{table}] must be a table")
    name = folder_name(raw["name"], f"{where}: 'name'")
    profile = Profile(name=name, description=str(raw.get("description", "")),
                      backend=backend["kind"], select_tag=backend["select_tag"],
                      energy=energy_model_from_table(raw["energy"], f"{where} [energy]"),
                      noise=noise_from_table(raw.get("noise", {}), f"{where} [noise]"),
                      chip=chip_from_table(raw["chip"], f"{where} [chip]") if "chip" in raw else None,
                      input_filter=(input_filter_from_table(raw["input_filter"], f"{where} [input_filter]")
                                    if "input_filter" in raw else None))
    for table, ranges in PROFILE_RANGES.items():  # after the tables' own checks: what they let through (NaN, inf)
        check_numbers(raw.get(table, {}), ranges, f"{where} [{table}]")
    return profile


def load_profile(name_or_path: str | Path) -> Profile:
    """Load ``hw_profiles/<name>.toml`` or a path to a profile file.

    Raises:
        ConfigError: unknown name (the message lists the available profiles) or an invalid file.
    """
    path = resolve_spec("hw_profiles", name_or_path)
    return replace(profile_from_dict(load_toml(path), str(path)), path=path)


def as_profile(profile: "str | Path | Profile") -> Profile:
    """``profile`` itself when it is a Profile, else :func:`load_profile` of the name or path."""
    return profile if isinstance(profile, Profile) else load_profile(profile)


def available_profiles() -> list[str]:
    """Names of the shipped profiles."""
    return available("hw_profiles")
