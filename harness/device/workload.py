"""Per-core activity of a replay on a :class:`~harness.device.mapping.Mapping`, and
NeuroBench-style workload metrics. Pure numpy.

Inputs are what the replay records (:class:`harness.device.output.DeviceOutput`):

- ``neuron_counts`` (N, P) spikes of every neuron per sample over its counted steps, the
  populations side by side: the input stream's channels first, then each layer's neurons,
  each in SLAYER's flat order (:meth:`Mapping.population_sizes` gives the P split);
- ``core_synops`` (N, C, T) synaptic operations each core performs per time step, and
  ``core_spikes`` (N, C, T) spikes each core's neurons emit per time step.

Definitions (per sample):

- spikes out of a core: spikes its neurons emit;
- spikes into a core: one per presynaptic spike and destination core that holds at least one
  of its synapses (a spike message arriving on one input axon), the input stream included;
- synaptic operations of a core: presynaptic spikes x the synapses they reach in the core;
  summed over cores they equal the replay's ``synops`` (spikes x fan-out);
- mesh traffic: spikes x hops, summed over core-to-core links (the input stream arrives from
  off the mesh and is not counted);
- busiest core per step: the core with the most synaptic operations in that step. Loihi
  advances all cores in lock-step, so the busiest core sets the step's duration; the latency
  proxy is the sum over steps of the busiest core's synaptic operations;
- energy: per core, synaptic ops x E_synop + neuron updates (T x neurons) x E_update + spikes
  out x E_spike (the profile's figures), plus each link's spikes x its route's energy (column
  hops x the east-west hop energy + row hops x the north-south one) when the profile has them.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import DataError
from .energy import EnergyModel
from .mapping import Mapping, connection_counts, connectivity
from .netx_reader import NetworkDescription


@dataclass(frozen=True)
class CoreActivity:
    """Per-sample activity of every core (N samples, C cores, E links of the mapping).

    Attributes:
        spikes_out: (N, C) int64 spikes the core's neurons emit.
        spikes_in: (N, C) int64 spike messages arriving at the core.
        synops: (N, C) int64 synaptic operations in the core.
        neuron_updates: (C,) int64 neuron updates per sample (T x the core's neurons).
        link_spikes: (N, E) int64 spikes sent over each of ``mapping.links``.
        traffic: (N,) int64 mesh traffic in spike-hops.
        hop_j: (N,) joules of that traffic (0 without the chip's hop energies).
    """

    spikes_out: np.ndarray
    spikes_in: np.ndarray
    synops: np.ndarray
    neuron_updates: np.ndarray
    link_spikes: np.ndarray
    traffic: np.ndarray
    hop_j: np.ndarray


def split_populations(mapping: Mapping, neuron_counts: np.ndarray) -> list[np.ndarray]:
    """``neuron_counts`` (N, P) cut into the input's (N, n_in) and each layer's (N, n_l) counts.

    Raises:
        DataError: P does not match the mapping's populations.
    """
    sizes = mapping.population_sizes()
    neuron_counts = np.asarray(neuron_counts)
    if neuron_counts.ndim != 2 or neuron_counts.shape[1] != sum(sizes):
        raise DataError(f"per-neuron counts of shape {neuron_counts.shape} do not match the mapping of "
                        f"{mapping.network}: expected (N, {sum(sizes)}) for populations {sizes}")
    return np.split(neuron_counts.astype(np.int64), np.cumsum(sizes)[:-1], axis=1)


def core_activity(mapping: Mapping, neuron_counts: np.ndarray, steps: int) -> CoreActivity:
    """Per-core spikes in and out, synaptic operations and mesh traffic (module docstring).

    Args:
        mapping: the network's mapping.
        neuron_counts: (N, P) per-neuron spike counts, input stream first (SLAYER order).
        steps: T, time steps per sample.
    """
    populations = split_populations(mapping, neuron_counts)
    n = len(neuron_counts)
    spikes_out, spikes_in, synops = (np.zeros((n, mapping.n_cores), np.int64) for _ in range(3))
    for layer, pre, own in zip(mapping.layers, populations, populations[1:]):
        cores = list(layer.cores)
        synops[:, cores] = pre @ layer.synapse_in
        spikes_in[:, cores] = pre @ (layer.synapse_in > 0)
        for g in cores:
            core = mapping.cores[g]
            spikes_out[:, g] = own[:, core.start:core.stop].sum(axis=1)
            if layer.kind == "input":  # neurons fed directly by the input: one axon per neuron
                spikes_in[:, g] = pre[:, core.start:core.stop].sum(axis=1)
    link_spikes = np.zeros((n, len(mapping.links)), np.int64)
    for e, link in enumerate(mapping.links):
        source, target = mapping.cores[link.source], mapping.cores[link.target]
        after = mapping.layers[target.layer]
        reaches = after.synapse_in[source.start:source.stop, after.cores.index(link.target)] > 0
        link_spikes[:, e] = populations[source.layer + 1][:, source.start:source.stop] @ reaches
    hops = np.array([link.hops for link in mapping.links], dtype=np.int64)
    route_j = np.array([mapping.chip.route_energy(link.source, link.target) for link in mapping.links])
    updates = np.array([steps * core.neurons for core in mapping.cores], dtype=np.int64)
    return CoreActivity(spikes_out=spikes_out, spikes_in=spikes_in, synops=synops, neuron_updates=updates,
                        link_spikes=link_spikes, traffic=link_spikes @ hops, hop_j=link_spikes @ route_j)


def busiest_core(core_load: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The busiest core of every step: (index (N, T) int64, load (N, T)) from ``core_load``
    (N, C, T), e.g. synaptic operations per core and step (ties: the lowest core number)."""
    core_load = np.asarray(core_load)
    return core_load.argmax(axis=1), core_load.max(axis=1)


def latency_proxy(core_load: np.ndarray) -> np.ndarray:
    """(N,) sum over steps of the busiest core's load: lock-step cores wait for the slowest."""
    return np.asarray(core_load).max(axis=1).sum(axis=-1)


def core_energy(activity: CoreActivity, energy: EnergyModel) -> np.ndarray:
    """(N, C) joules per core and sample, without mesh hops."""
    return (activity.synops * energy.synaptic_op_j + activity.neuron_updates[None, :] * energy.neuron_update_j
            + activity.spikes_out * energy.spike_j)


def total_energy(activity: CoreActivity, energy: EnergyModel) -> np.ndarray:
    """(N,) joules per sample: every core's energy plus the energy of the mesh traffic."""
    return core_energy(activity, energy).sum(axis=1) + activity.hop_j


def inference_figures(mapping: Mapping, neuron_counts: np.ndarray, core_synops: np.ndarray, energy: EnergyModel,
                      steps: int) -> dict:
    """Absolute per-inference figures of a replay, means over its N samples (for results.json).

    Args:
        mapping, neuron_counts, core_synops: the replay's (DeviceOutput.mapping, .neuron_counts,
            .core_synops (N, C, T)).
        energy: the profile's per-operation energies (the hop energy comes from the mapping's chip).
        steps: T.
    Returns:
        spikes_per_layer (mean spikes of each layer), synops, energy_j (per-core energy plus
        hops, joules), hop_energy_j, traffic_spike_hops, busiest_core_load (the largest
        synaptic operations one core performs in one step), latency_proxy (sum over steps of
        the busiest core's synaptic operations), and per_core (mean synops, spikes out and in
        per core).
    """
    activity = core_activity(mapping, neuron_counts, steps)
    populations = split_populations(mapping, neuron_counts)
    return {"spikes_per_layer": [float(p.sum(axis=1).mean()) for p in populations[1:]],
            "synops": float(activity.synops.sum(axis=1).mean()),
            "energy_j": float(total_energy(activity, energy).mean()),
            "hop_energy_j": float(activity.hop_j.mean()),
            "traffic_spike_hops": float(activity.traffic.mean()),
            "busiest_core_load": float(busiest_core(core_synops)[1].max(axis=1).mean()),
            "latency_proxy": float(latency_proxy(core_synops).mean()),
            "per_core": {"synops": activity.synops.mean(axis=0).tolist(),
                         "spikes_out": activity.spikes_out.mean(axis=0).tolist(),
                         "spikes_in": activity.spikes_in.mean(axis=0).tolist()}}


# ---------------------------------------------------------------- NeuroBench-style metrics
def neurobench_metrics(network: NetworkDescription, neuron_counts: np.ndarray, steps: int,
                       bytes_per_parameter: int = 4) -> dict:
    """NeuroBench's workload and static metrics for a replay. Three are NeuroBench's own (checked
    against the ``neurobench`` 2.3.0 package's classes on a harness network with the weights the
    device holds, tests/test_neurobench.py); two are the harness's, named apart because
    NeuroBench defines them otherwise:

    - synaptic_operations: per sample (mean), ``effective_acs`` = spikes x fan-out over the
      non-zero synapses (NeuroBench's Effective_ACs: binary activations, non-zero weights; the
      input stream's spikes into the first layer included) and ``dense`` = every connection
      of every layer once per step, zero weights and silent neurons included (NeuroBench's
      Dense);
    - connection_sparsity: zero weights / all weights over the dense and conv weight tensors
      (NeuroBench's ConnectionSparsity on the device's quantized weights);
    - device_activation_sparsity: 1 - (spikes of all layers' neurons on the device, over the
      sample's window) / (neurons x T), over all samples; the input is not a layer.
      NeuroBench's ActivationSparsity counts every neuron output of the offline model over its
      T steps, before SLAYER's one-step delay per layer: the spikes each layer emits at its last
      step, which the delay pushes out of the window, count there and not here;
    - weight_bias_bytes: weights and biases x ``bytes_per_parameter`` (4: float32, as the
      SLAYER model and the netx file hold them). NeuroBench's Footprint counts every parameter
      and buffer of the torch module: the neurons' decays and state buffers too.

    Args:
        network: the replayed network.
        neuron_counts: (N, P) per-neuron counts, input first (DeviceOutput.neuron_counts).
        steps: T.
        bytes_per_parameter: storage of one weight or bias.
    """
    sizes = [int(np.prod(network.input_shape))] + [layer.size for layer in network.layers]
    if np.shape(neuron_counts)[1:] != (sum(sizes),):
        raise DataError(f"per-neuron counts of shape {np.shape(neuron_counts)} do not match {network.path}: "
                        f"expected (N, {sum(sizes)})")
    populations = np.split(np.asarray(neuron_counts, dtype=np.int64), np.cumsum(sizes)[:-1], axis=1)
    effective, dense, footprint, zeros, weights = np.zeros(len(neuron_counts)), 0, 0, 0, 0
    in_shape = network.input_shape
    for layer, pre in zip(network.layers, populations):
        if layer.weight is not None:
            _, sources = connectivity(layer, in_shape)
            effective = effective + pre @ np.bincount(sources, minlength=pre.shape[1])
            dense += int(connection_counts(layer, in_shape).sum())
            footprint += layer.weight.size * bytes_per_parameter
            zeros += int(np.count_nonzero(layer.weight == 0))
            weights += layer.weight.size
        if layer.bias is not None:
            footprint += layer.bias.size * bytes_per_parameter
        in_shape = layer.shape
    neurons = sum(sizes[1:])
    spikes = sum(int(p.sum()) for p in populations[1:])
    return {"device_activation_sparsity": 1.0 - spikes / (len(neuron_counts) * steps * neurons),
            "synaptic_operations": {"effective_acs": float(effective.mean()), "dense": float(dense * steps)},
            "weight_bias_bytes": int(footprint),
            "connection_sparsity": zeros / weights if weights else 0.0}
