"""What the replay's monitors record per neuron and per core, and how it is read back.

The Lava network holds neurons in Lava's order (lowering.lava_order); the mapping
(:mod:`harness.device.mapping`) and every result use SLAYER's flat order. For every
population (the input stream, then each layer) :func:`monitor_options` gives the options of
its :class:`harness.device.lava_procs.io.ActivityMonitor`: per-neuron counts always; with a
mapping also each neuron's core (spikes per core and step) and the synapses from each neuron
into each core of the next layer (synaptic operations per core and step).
:func:`decode` turns the monitors' extra columns into (N, P) per-neuron counts and
(N, C, T) per-core arrays. Pure numpy.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .lowering import input_order, lava_order
from .mapping import Mapping
from .netx_reader import NetworkDescription


def population_orders(network: NetworkDescription) -> list[np.ndarray]:
    """For the input stream and each layer: ``lava_vector = slayer_vector[order]``."""
    return [input_order(network)] + [lava_order(layer.shape) for layer in network.layers]


def monitor_options(network: NetworkDescription, mapping: Mapping | None) -> list[dict]:
    """Extra ActivityMonitor arguments for each population, in Lava order."""
    options = []
    for p, order in enumerate(population_orders(network)):
        option: dict = {"neurons": True}
        if mapping is not None:
            if p > 0:
                option["groups"] = mapping.core_of_neuron(p - 1)[order] - mapping.layers[p - 1].cores[0]
            if p < len(mapping.layers):
                option["targets"] = mapping.layers[p].synapse_in[order]
        options.append(option)
    return options


@dataclass(frozen=True)
class Recorded:
    """Per-neuron and per-core records of N samples (see DeviceOutput)."""

    neuron_counts: np.ndarray
    core_spikes: np.ndarray | None
    core_synops: np.ndarray | None


def decode(network: NetworkDescription, mapping: Mapping | None, extra: list[np.ndarray], steps: int) -> Recorded:
    """Read back the monitors' extra columns.

    Args:
        extra: per population, (N, columns) int64: the monitor's array without its first two
            columns (ActivityMonitor's layout).
        steps: T.
    """
    counts, n = [], len(extra[0])
    cores = mapping.n_cores if mapping is not None else 0
    core_spikes, core_synops = np.zeros((n, cores, steps), np.int64), np.zeros((n, cores, steps), np.int64)
    for p, (order, columns) in enumerate(zip(population_orders(network), extra)):
        size = len(order)
        slayer = np.empty((n, size), dtype=np.int64)
        slayer[:, order] = columns[:, :size]
        counts.append(slayer)
        if mapping is None:
            continue
        offset = size
        if p > 0:
            own = list(mapping.layers[p - 1].cores)
            core_spikes[:, own] = columns[:, offset:offset + len(own) * steps].reshape(n, len(own), steps)
            offset += len(own) * steps
        if p < len(mapping.layers):
            nxt = list(mapping.layers[p].cores)
            core_synops[:, nxt] = columns[:, offset:offset + len(nxt) * steps].reshape(n, len(nxt), steps)
    if mapping is None:
        return Recorded(np.concatenate(counts, axis=1), None, None)
    return Recorded(np.concatenate(counts, axis=1), core_spikes, core_synops)
