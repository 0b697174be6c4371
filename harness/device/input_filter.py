"""Event filters in front of the network: a profile's ``[input_filter]`` table (docs/defences.md).

The filters event-sensor pipelines use, with the semantics of tonic's ``refractory_period`` and
``denoise`` transforms carried over to binned spikes (SLAYER's layout, (N, C, H, W, T) or
(N, C, T); a bin holds at most one spike per element, t counts steps):

- ``refractory`` with window R: the spike at element (c, h, w) and step t is dropped when the
  same element spiked at any step t-R .. t-1. "Spiked" means any input spike, kept or dropped:
  tonic updates its per-pixel timestamp with every event, dropped ones included, so a steady
  stream at one element keeps only its first spike until a silence of R steps. Unlike tonic,
  whose memory is per pixel across polarities, an element here is one polarity channel of a
  pixel (c is part of the element).
- ``denoise`` with window W: the spike at (c, h, w, t) is kept only when one of the 8
  neighbouring pixels (h +- 1, w +- 1, the pixel itself excluded) *of the same channel c*
  spiked at a step t-W .. t (the current step included: two events in one bin are less than a
  bin apart, and tonic counts a neighbour's event of the same timestamp). Again any input spike
  counts as support, kept or not, as in tonic. Tonic differs in two ways: it looks at the 4
  direct neighbours of a pixel across polarities, and its memory starts as if every pixel had
  fired at time 0 (so everything in the first ``filter_time`` passes); here there is no such
  grace window. Inputs without a spatial layout (N, C, T) cannot be denoised.

Both filters are pure functions of the input (no memory of earlier samples), which is what
lets the offline network put the same filter in front of itself bit for bit
(:mod:`harness.attacks.filtered`). Energy: every input event that reaches the filter is
*examined*; ``energy_per_event_j`` x examined events is added to a replay's energy, 0 for a
filter off the chip (in the sensor or its FPGA).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, replace

import numpy as np

from ..config import check_unknown, require_keys
from ..errors import ConfigError, DataError

FILTER_KINDS = ("refractory", "denoise")


@dataclass(frozen=True)
class InputFilter:
    """A validated ``[input_filter]`` table.

    Attributes:
        kind: "refractory" or "denoise" (the module docstring).
        window: R or W in time steps, >= 1.
        energy_per_event_j: joules per input event examined (0 when ``on_chip`` is false).
        on_chip: the filter runs on the chip (its energy counts) or before it.
        source: where the energy figure comes from.
    """

    kind: str
    window: int
    energy_per_event_j: float = 0.0
    on_chip: bool = False
    source: str = ""

    @property
    def tag(self) -> str:
        """Short, filesystem-safe name, e.g. ``refractory3`` (attack ids, verdict names)."""
        return f"{self.kind}{self.window}"

    def to_dict(self) -> dict:
        return asdict(self)

    def apply(self, spikes: np.ndarray) -> np.ndarray:
        """The filtered copy of binary ``spikes`` (N, C, H, W, T) or (N, C, T), same dtype.

        Raises:
            DataError: ``denoise`` of inputs without a spatial layout (N, C, T).
        """
        spikes = np.asarray(spikes)
        if self.kind == "refractory":
            return refractory(spikes, self.window)
        return denoise(spikes, self.window)

    def energy(self, examined: np.ndarray) -> np.ndarray:
        """(N,) joules of examining ``examined`` (N,) input events (0 off the chip)."""
        per_event = self.energy_per_event_j if self.on_chip else 0.0
        return np.asarray(examined, dtype=np.float64) * per_event


def _window_counts(active: np.ndarray, first: int, last: int) -> np.ndarray:
    """``out[..., t] = active[..., t - first : t - last + 1].sum()`` (steps before 0 count nothing):
    how often ``active`` (..., T) fired at the steps t-first .. t-last, for first >= last >= 0."""
    steps = active.shape[-1]
    total = np.concatenate([np.zeros(active.shape[:-1] + (1,), np.int64), np.cumsum(active, -1, dtype=np.int64)], -1)
    t = np.arange(steps)
    return total[..., np.clip(t - last + 1, 0, steps)] - total[..., np.clip(t - first, 0, steps)]


def refractory(spikes: np.ndarray, window: int) -> np.ndarray:
    """Drop a spike when its element spiked (kept or dropped) at one of the ``window`` steps before it.

    Args:
        spikes: (N, ..., T) binary spikes, any layout with time last.
        window: R >= 1 steps.
    """
    recent = _window_counts(spikes, window, 1)
    return (spikes.astype(bool) & (recent == 0)).astype(spikes.dtype)


def denoise(spikes: np.ndarray, window: int) -> np.ndarray:
    """Keep a spike only when an 8-neighbour pixel of its channel spiked at this step or one of the
    ``window`` steps before it.

    Args:
        spikes: (N, C, H, W, T) binary spikes.
        window: W >= 1 steps.
    Raises:
        DataError: spikes of another rank (no pixel neighbourhood).
    """
    if spikes.ndim != 5:
        raise DataError(f"the denoise filter needs spikes with pixels, (N, C, H, W, T); got shape {spikes.shape}")
    height, width = spikes.shape[2:4]
    padded = np.pad(spikes.astype(np.int64), ((0, 0), (0, 0), (1, 1), (1, 1), (0, 0)))
    neighbours = sum(padded[:, :, 1 + dy:1 + dy + height, 1 + dx:1 + dx + width]
                     for dy in (-1, 0, 1) for dx in (-1, 0, 1) if (dy, dx) != (0, 0))
    support = _window_counts(neighbours, window, 0)
    return (spikes.astype(bool) & (support > 0)).astype(spikes.dtype)


def input_filter_from_table(table: dict, where: str) -> InputFilter:
    """Validate a profile's optional ``[input_filter]`` table (numeric ranges: settings.PROFILE_RANGES).

    Keys: ``kind`` (refractory | denoise), ``window`` (steps, integer >= 1), ``on_chip`` (bool),
    ``energy_per_event_j`` (joules >= 0; must be 0 or absent off the chip), ``source`` (required
    when the energy is not 0).
    """
    from ..settings import PROFILE_RANGES, check_numbers

    if not isinstance(table, dict):
        raise ConfigError(f"{where} must be a table")
    check_unknown(table, {"kind", "window", "on_chip", "energy_per_event_j", "source"}, where)
    require_keys(table, ["kind", "window"], where)
    if table["kind"] not in FILTER_KINDS:
        raise ConfigError(f"{where}: kind {table['kind']!r} unknown; available: {', '.join(FILTER_KINDS)}")
    check_numbers(table, PROFILE_RANGES["input_filter"], where)
    on_chip = table.get("on_chip", False)
    if not isinstance(on_chip, bool):
        raise ConfigError(f"{where}: 'on_chip' must be true or false, got {on_chip!r}")
    energy = float(table.get("energy_per_event_j", 0.0))
    if energy and not on_chip:
        raise ConfigError(f"{where}: 'energy_per_event_j' must be 0 for a filter off the chip (on_chip = false), "
                          f"got {energy!r}")
    source = table.get("source", "")
    if not isinstance(source, str) or (energy and not source.strip()):
        raise ConfigError(f"{where}: 'source' must cite where energy_per_event_j comes from")
    return InputFilter(kind=table["kind"], window=table["window"], energy_per_event_j=energy, on_chip=on_chip,
                       source=source.strip())


@dataclass(frozen=True)
class FrontEnd:
    """The input stream as the network receives it: ``spikes`` (N, ..., T) after the profile's
    noise and filter; ``examined`` (N,) int64 events that reached the filter, ``removed`` (N,) int64
    events it dropped (None without a filter)."""

    spikes: np.ndarray
    examined: np.ndarray | None = None
    removed: np.ndarray | None = None


def front_end(profile, spikes: np.ndarray, sample_keys: np.ndarray | None = None) -> FrontEnd:
    """``spikes`` (N, ..., T) through ``profile``'s input noise, then its input filter (if any)."""
    noisy = profile.noise.apply(spikes, sample_keys)
    if profile.input_filter is None:
        return FrontEnd(noisy)
    kept = profile.input_filter.apply(noisy)
    examined = noisy.reshape(len(noisy), -1).sum(1, dtype=np.int64)
    return FrontEnd(kept, examined, examined - kept.reshape(len(kept), -1).sum(1, dtype=np.int64))


def charged(output, front: FrontEnd):
    """``output`` (a DeviceOutput) with the filter's ``input_events_removed`` and its energy added."""
    if front.removed is None:
        return output
    energy = output.energy_j + output.profile.input_filter.energy(front.examined)
    return replace(output, input_events_removed=front.removed, energy_j=energy)
