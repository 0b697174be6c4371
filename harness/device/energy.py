"""Activity and energy accounting of a replay (NeuroBench-style workload metrics).

Definitions (per sample, over the sample's T steps, aligned with SLAYER's window):

- synaptic operations: one spike delivered over one synapse. Each population's spikes
  (the input stream included) times the fan-out of the spiking neuron, i.e. the number of
  non-zero synapses leaving it, summed over populations;
- neuron updates: every neuron of every layer is updated once per time step (T x neurons);
- spikes: spikes emitted by the network's neurons (the input stream is not counted);
- energy estimate = synaptic ops x E_synop + neuron updates x E_update + spikes x E_spike,
  with the per-operation figures of the hardware profile.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from ..config import check_unknown, require_keys
from ..errors import ConfigError


@dataclass(frozen=True)
class EnergyModel:
    """Energy per operation in joules, and where the figures come from."""

    synaptic_op_j: float
    neuron_update_j: float
    spike_j: float
    source: str

    def estimate(self, synops: np.ndarray, neuron_updates: np.ndarray, spikes: np.ndarray) -> np.ndarray:
        """(N,) energy in joules from (N,) counts of each operation."""
        return (np.asarray(synops, dtype=np.float64) * self.synaptic_op_j
                + np.asarray(neuron_updates, dtype=np.float64) * self.neuron_update_j
                + np.asarray(spikes, dtype=np.float64) * self.spike_j)

    def to_dict(self) -> dict:
        return asdict(self)


def energy_model_from_table(table: dict, where: str) -> EnergyModel:
    """Validate a profile's ``[energy]`` table (non-negative joules per op, a cited source)."""
    keys = {"synaptic_op_j", "neuron_update_j", "spike_j", "source"}
    check_unknown(table, keys, where)
    require_keys(table, sorted(keys), where)
    values = {}
    for key in ("synaptic_op_j", "neuron_update_j", "spike_j"):
        value = table[key]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
            raise ConfigError(f"{where}: {key} must be a non-negative number of joules, got {value!r}")
        values[key] = float(value)
    if not isinstance(table["source"], str) or not table["source"].strip():
        raise ConfigError(f"{where}: source must cite where the energy figures come from")
    return EnergyModel(source=table["source"].strip(), **values)


@dataclass(frozen=True)
class Activity:
    """Per-sample activity of one replay.

    Attributes:
        input_spikes: (N,) spikes of the input stream.
        layer_spikes: (N, L) spikes emitted by each layer with neurons.
        synops: (N,) synaptic operations.
        neuron_updates: (N,) neuron updates.
    """

    input_spikes: np.ndarray
    layer_spikes: np.ndarray
    synops: np.ndarray
    neuron_updates: np.ndarray

    @property
    def spikes(self) -> np.ndarray:
        """(N,) spikes emitted by the network's neurons."""
        return self.layer_spikes.sum(axis=1)


def activity_from_monitors(monitored: np.ndarray, layer_sizes: list[int], steps: int) -> Activity:
    """Activity from the replay's monitors.

    Args:
        monitored: (N, L + 1, 2) per sample and population (input first, then each layer):
            [..., 0] spikes, [..., 1] spikes weighted by the neurons' fan-out.
        layer_sizes: neurons per layer (L values).
        steps: T, time steps per sample.
    """
    n = len(monitored)
    return Activity(input_spikes=monitored[:, 0, 0].astype(np.int64),
                    layer_spikes=monitored[:, 1:, 0].astype(np.int64),
                    synops=monitored[:, :, 1].sum(axis=1).astype(np.int64),
                    neuron_updates=np.full(n, steps * int(sum(layer_sizes)), dtype=np.int64))
