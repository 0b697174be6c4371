"""The device interface: ``replay(network_file, spikes, profile) -> DeviceOutput``.

A backend executes a netx network on (a simulation of) neuromorphic hardware and reports
what came out and what it cost. ``lava-sim`` (Lava's CPU simulation of Loihi,
:mod:`harness.device.lava_sim`) is the one shipped; another backend (e.g. Loihi 2 hardware
through Intel's lava-loihi) is a function with the same signature registered in
:data:`BACKENDS`, and needs no change anywhere else.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Callable

import numpy as np

from ..data import check_binary
from ..errors import ConfigError, DataError
from .profiles import Profile, load_profile

if TYPE_CHECKING:
    from .mapping import Mapping


@dataclass
class DeviceOutput:
    """What a replay of N samples produced, per sample.

    Attributes:
        rasters: (N, K, T) uint8 output spikes, in SLAYER's channel order and time alignment.
        counts: (N, K) int64 spikes per output neuron over the window.
        predictions: (N,) int64 class with the most spikes, -1 on a tie or silence
            (:func:`harness.metrics.predict`).
        layer_counts: (N, L) int64 spikes emitted by each layer with neurons.
        input_spikes: (N,) int64 spikes of the input stream as replayed (after the profile's
            non-idealities).
        synops: (N,) int64 synaptic operations (spikes x fan-out, input stream included).
        neuron_updates: (N,) int64 neuron updates (T x neurons).
        energy_j: (N,) float64 energy estimate in joules (the profile's per-op figures).
        layer_names: the L layers, e.g. "layer 0 (dense 128)".
        wall_seconds: wall time of the replay (build, compile, run, read-back).
        lanes: samples replayed side by side in one run.
        profile: the hardware profile used.
        neuron_counts: (N, P) int64 spikes of every neuron over the counted steps (those of
            ``layer_counts``): the input stream's channels first, then each layer's neurons,
            each in SLAYER's flat order (split with :func:`harness.device.workload.split_populations`).
        core_spikes: (N, C, T) int64 spikes each core of ``mapping`` emits per step, or None.
        core_synops: (N, C, T) int64 synaptic operations each core performs per step (from
            the spikes sent at that step), or None.
        mapping: the network's neurocore mapping on the profile's chip, or None when the
            profile has no [chip] table or the network does not fit (``mapping_error`` says why).
        mapping_error: why there is no mapping, or None.
    """

    rasters: np.ndarray
    counts: np.ndarray
    predictions: np.ndarray
    layer_counts: np.ndarray
    input_spikes: np.ndarray
    synops: np.ndarray
    neuron_updates: np.ndarray
    energy_j: np.ndarray
    layer_names: list[str]
    wall_seconds: float
    lanes: int
    profile: Profile
    neuron_counts: np.ndarray | None = None
    core_spikes: np.ndarray | None = None
    core_synops: np.ndarray | None = None
    mapping: "Mapping | None" = None
    mapping_error: str | None = None

    def __len__(self) -> int:
        return len(self.predictions)

    def subset(self, index) -> "DeviceOutput":
        """The same output restricted to the samples ``index`` selects (a slice or an index array)."""
        return replace(self, **{name: getattr(self, name)[index] for name in _PER_SAMPLE
                                if getattr(self, name) is not None})

    def arrays(self) -> dict[str, np.ndarray]:
        """The per-sample arrays by name (the datasets of a device artifact)."""
        return {"output_rasters": self.rasters, "output_counts": self.counts, "predictions": self.predictions,
                "layer_counts": self.layer_counts, "input_spikes": self.input_spikes, "synops": self.synops,
                "neuron_updates": self.neuron_updates, "energy_j": self.energy_j,
                **{name: getattr(self, name) for name in _RECORDED if getattr(self, name) is not None}}


_RECORDED = ("neuron_counts", "core_spikes", "core_synops")
_PER_SAMPLE = ("rasters", "counts", "predictions", "layer_counts", "input_spikes", "synops", "neuron_updates",
               "energy_j") + _RECORDED

Backend = Callable[..., DeviceOutput]


def _lava_sim() -> Backend:
    from .lava_sim import replay_lava_sim

    return replay_lava_sim


#: backend kind (a profile's ``[backend] kind``) -> loader of its replay function
BACKENDS: dict[str, Callable[[], Backend]] = {"lava-sim": _lava_sim}


def replay(network_file: str | Path, spikes: np.ndarray, profile: str | Path | Profile, *,
           sample_keys: np.ndarray | None = None, lanes: int | None = None,
           timeout: float | None = None, progress: bool = False) -> DeviceOutput:
    """Replay binary ``spikes`` through the netx network on a hardware profile.

    Args:
        network_file: netx HDF5 network (``model/network.net``, or any lava-dl export).
        spikes: (N, C, T) or (N, C, H, W, T) binary spikes in SLAYER's layout.
        profile: a profile name in hw_profiles/, a path to a profile, or a Profile.
        sample_keys: (N,) ints that select each sample's random noise field (default: the
            row numbers); give a clean sample and its adversarial version the same key.
        lanes: samples side by side in one run (default: from network size and free memory).
        timeout: watchdog timeout in seconds (default: from the amount of work).
        progress: show a progress bar (time steps simulated).
    Raises:
        DataError: spikes not binary or of a shape the network cannot take.
        DeviceError: the network cannot be replayed or the run failed (DeviceTimeout on timeout).
    """
    if not isinstance(profile, Profile):
        profile = load_profile(profile)
    spikes = check_spikes(spikes)
    if sample_keys is not None and np.shape(sample_keys) != (len(spikes),):
        raise DataError(f"sample_keys must be ({len(spikes)},), one per sample, got shape {np.shape(sample_keys)}")
    if profile.backend not in BACKENDS:
        raise ConfigError(f"profile '{profile.name}': backend '{profile.backend}' unknown; "
                          f"available: {', '.join(BACKENDS)}")
    run = BACKENDS[profile.backend]()
    return run(network_file, spikes, profile, sample_keys=sample_keys, lanes=lanes, timeout=timeout, progress=progress)


def check_spikes(spikes) -> np.ndarray:
    """Binary (N, C, T) or (N, C, H, W, T) spikes as uint8; DataError naming the shape otherwise."""
    spikes = np.asarray(spikes)
    if spikes.ndim not in (3, 5):
        raise DataError(f"input spikes must be (N, C, T) or (N, C, H, W, T), got shape {spikes.shape}")
    if spikes.shape[0] == 0 or spikes.shape[-1] == 0:
        raise DataError(f"input spikes of shape {spikes.shape} hold no sample or no time step")
    return check_binary(spikes, f"input spikes {spikes.shape}")
