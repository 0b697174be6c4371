"""``DeviceOutput``: what a replay of N samples produced and cost, per sample.

Its own module so that the backends (:mod:`.lava_sim`) and the dispatcher (:mod:`.backend`)
both import it without importing each other.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # type-only: profiles -> registry -> backends -> output must not loop back
    from .mapping import Mapping
    from .profiles import Profile


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
        sample_mode: how samples met the network: "fresh" (each as on a freshly loaded network,
            netx's defaults) or "interval" (streamed with netx's reset_interval = T).
        neuron_counts: (N, P) int64 spikes of every neuron over the counted steps (those of
            ``layer_counts``): the input stream's channels first, then each layer's neurons,
            each in SLAYER's flat order (split with :func:`harness.device.workload.split_populations`).
        core_spikes: (N, C, T) int64 spikes each core of ``mapping`` emits per step, or None.
        core_synops: (N, C, T) int64 synaptic operations each core performs per step (from
            the spikes sent at that step), or None.
        mapping: the network's neurocore mapping on the profile's chip, or None when the
            profile has no [chip] table or the network does not fit (``mapping_error`` says why).
        mapping_error: why there is no mapping, or None.
        input_events_removed: (N,) int64 input events the profile's ``[input_filter]`` dropped
            before the network (``input_spikes`` counts what it let through), or None without a
            filter; its energy is in ``energy_j`` (harness/device/input_filter.py).
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
    profile: "Profile"
    sample_mode: str
    neuron_counts: np.ndarray | None = None
    core_spikes: np.ndarray | None = None
    core_synops: np.ndarray | None = None
    mapping: "Mapping | None" = None
    mapping_error: str | None = None
    input_events_removed: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.predictions)

    @property
    def output_counts(self) -> np.ndarray:
        """``counts`` under its HDF5 name (a device artifact's ``output_counts``)."""
        return self.counts

    @property
    def output_rasters(self) -> np.ndarray:
        """``rasters`` under its HDF5 name (a device artifact's ``output_rasters``)."""
        return self.rasters

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


_RECORDED = ("neuron_counts", "core_spikes", "core_synops", "input_events_removed")
_PER_SAMPLE = ("rasters", "counts", "predictions", "layer_counts", "input_spikes", "synops", "neuron_updates",
               "energy_j") + _RECORDED
