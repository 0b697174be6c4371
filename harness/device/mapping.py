"""Map a network onto neurocores: partition every layer into cores, place them on the mesh.

Pure numpy (no Lava): a network read by :func:`harness.device.netx_reader.read_network` and a
profile's :class:`~harness.device.chip.Chip` give a :class:`Mapping`.

Partition. Each layer's neurons, in SLAYER's flat (C, H, W) order, are packed greedily into
consecutive cores; a core takes another unit of neurons while it stays within every limit:

- neurons: at most ``neurons_per_core``;
- synaptic memory: the synapses *into* the core's neurons (a synapse lives in its
  postsynaptic neuron's core), stored in the smaller of two encodings
  (:meth:`Chip.memory_bits`): dense, every connection of the layer's pattern (zero weights
  included) at ``weight_bits``, or sparse, the non-zero synapses at ``weight_bits +
  index_bits``; at most ``synaptic_memory_bits``;
- fan-in: the distinct presynaptic neurons (input axons) the core receives from at most
  ``input_axons_per_core``.

Units are single neurons for dense layers; for conv layers whole output channels when one
channel fits in a core, else rows of a channel (tiles), else single neurons. After placement
every core's fan-out, its (neuron, destination core) routes, must stay within
``output_axons_per_core``: a layer whose core sends on too many routes is partitioned again
with fewer neurons per core (in proportion), until it fits. A network that breaks a limit
even with one neuron per core, or needs more cores than the system has, is refused with a
:class:`~harness.errors.DeviceError` naming the layer and the limit.

Synapses are the non-zero weights: what Lava builds (lowering drops zeros), what the
replay's synaptic operations count, and what a sparse encoding stores; connections are
every (input, neuron) pair of the layer's pattern, zero weights included (a dense encoding
stores them all). Fan-in counts presynaptic neurons with at least one non-zero synapse into
the core. An Input layer (neurons fed directly by the input) has one input axon per neuron and no
synapses. The input stream arrives from off the mesh: it loads the first layer's fan-in but
no mesh link.

Placement. Cores are numbered in layer order and placed row-major on chip 0's mesh, then
chip 1's, and so on (:meth:`Chip.position`); hops between cores are the Manhattan distance on
the system mesh (:meth:`Chip.hops`).
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from ..errors import DeviceError
from .chip import Chip
from .netx_reader import Layer, NetworkDescription


@dataclass(frozen=True)
class Core:
    """One neurocore: a range of one layer's neurons.

    Attributes:
        index: global core number (placement order).
        layer: position of its layer in ``NetworkDescription.layers``.
        start, stop: its neurons, [start, stop) in the layer's SLAYER flat order.
        synapses: non-zero synapses into its neurons.
        connections: connections into its neurons, zero weights included.
        memory_bits: synaptic memory they take in the smaller encoding (:meth:`Chip.memory_bits`).
        fan_in: distinct presynaptic neurons it receives from (input axons).
        fan_out: (neuron, destination core) routes it sends on (output axons).
        position: (chip, row, column) on the system mesh.
    """

    index: int
    layer: int
    start: int
    stop: int
    synapses: int
    connections: int
    memory_bits: int
    fan_in: int
    fan_out: int
    position: tuple[int, int, int]

    @property
    def neurons(self) -> int:
        return self.stop - self.start


@dataclass(frozen=True)
class Link:
    """Spikes travel from core ``source`` to core ``target`` over ``hops`` mesh hops;
    ``routes`` of the source's neurons have synapses in the target."""

    source: int
    target: int
    hops: int
    routes: int


@dataclass(frozen=True)
class LayerMap:
    """One layer's cores and its synapses per core.

    Attributes:
        index: the layer's position in ``NetworkDescription.layers``.
        name: e.g. "layer 0 (dense 128)".
        kind: "input", "dense" or "conv".
        size: neurons.
        cores: its global core numbers (consecutive).
        synapse_in: (n_pre, len(cores)) int64 synapses from each presynaptic neuron (the
            input stream for the first layer, else the layer before, SLAYER order) into each
            of the layer's cores.
    """

    index: int
    name: str
    kind: str
    size: int
    cores: tuple[int, ...]
    synapse_in: np.ndarray


@dataclass(frozen=True)
class Mapping:
    """A network partitioned into cores and placed on a chip's mesh.

    Attributes:
        chip: the chip's limits and mesh.
        network: path of the network file.
        input_size: channels of the input stream.
        layers: one LayerMap per layer with neurons, in order.
        cores: every core, in placement order.
        links: which cores feed which, with hop counts (core to core only).
    """

    chip: Chip
    network: str
    input_size: int
    layers: tuple[LayerMap, ...]
    cores: tuple[Core, ...]
    links: tuple[Link, ...]

    @property
    def n_cores(self) -> int:
        return len(self.cores)

    @property
    def chips_used(self) -> int:
        return self.cores[-1].position[0] + 1

    def core_of_neuron(self, layer: int) -> np.ndarray:
        """(size,) int64 global core of each neuron of layer position ``layer`` (SLAYER order)."""
        out = np.empty(self.layers[layer].size, dtype=np.int64)
        for core in self.layers[layer].cores:
            out[self.cores[core].start:self.cores[core].stop] = core
        return out

    def population_sizes(self) -> list[int]:
        """Neurons of each population: the input stream, then every layer."""
        return [self.input_size] + [layer.size for layer in self.layers]


# ---------------------------------------------------------------- connectivity (SLAYER order)
def _conv_pairs(layer: Layer, in_shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """(post, pre) of every non-zero conv synapse, flat SLAYER indices of output and input."""
    cout, cin_g, kh, kw = layer.weight.shape
    _, h_in, w_in = in_shape
    _, h_out, w_out = layer.shape
    (sy, sx), (py, px), (dy, dx) = layer.conv["stride"], layer.conv["padding"], layer.conv["dilation"]
    cout_g = cout // layer.conv["groups"]
    ys, xs = np.arange(h_out), np.arange(w_out)
    posts, pres = [], []
    for ky in range(kh):
        iy = ys * sy - py + ky * dy
        for kx in range(kw):
            ix = xs * sx - px + kx * dx
            vy, vx = (iy >= 0) & (iy < h_in), (ix >= 0) & (ix < w_in)
            co, j = np.nonzero(layer.weight[:, :, ky, kx])
            if not (co.size and vy.any() and vx.any()):
                continue
            ci = (co // cout_g) * cin_g + j
            y, x = np.nonzero(vy[:, None] & vx[None, :])
            posts.append((co[:, None] * h_out * w_out + (y * w_out + x)[None, :]).ravel())
            pres.append((ci[:, None] * h_in * w_in + (iy[y] * w_in + ix[x])[None, :]).ravel())
    if not posts:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    return np.concatenate(posts).astype(np.int64), np.concatenate(pres).astype(np.int64)


def connectivity(layer: Layer, in_shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """(post, pre) int64 index pairs of the layer's non-zero synapses, sorted by post.

    ``post`` indexes the layer's neurons and ``pre`` the population before it (the input
    stream for the first layer), both in SLAYER's flat order. An Input layer has none.
    """
    if layer.kind == "input":
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    if layer.kind == "conv":
        post, pre = _conv_pairs(layer, in_shape)
    else:
        post, pre = np.nonzero(np.asarray(layer.weight).reshape(layer.size, -1))
    order = np.lexsort((pre, post))
    return post[order].astype(np.int64), pre[order].astype(np.int64)


def connection_counts(layer: Layer, in_shape: tuple[int, ...]) -> np.ndarray:
    """(size,) int64 connections into each neuron, zero weights included (the layer's pattern)."""
    if layer.kind == "input":
        return np.zeros(layer.size, np.int64)
    if layer.kind == "dense":
        return np.full(layer.size, int(np.prod(in_shape)), np.int64)
    post, _ = _conv_pairs(replace(layer, weight=np.ones_like(layer.weight)), in_shape)
    return np.bincount(post, minlength=layer.size).astype(np.int64)


# ---------------------------------------------------------------- partition
class _Packer:
    """Greedy packing of one layer's neurons into cores within the chip's limits."""

    def __init__(self, chip: Chip, layer: Layer, post: np.ndarray, pre: np.ndarray, connections: np.ndarray,
                 n_pre: int, max_neurons: int):
        self.chip, self.layer, self.max_neurons = chip, layer, max_neurons
        self.indptr = np.searchsorted(post, np.arange(layer.size + 1))
        self.connections = np.concatenate([[0], np.cumsum(connections)])
        self.pre = pre
        self.identity = layer.kind == "input"  # one input axon per neuron, no synapses
        self.seen = np.zeros(max(n_pre, layer.size), dtype=bool)
        self.cores: list[tuple[int, int, int, int, int]] = []  # (start, stop, synapses, connections, fan_in)
        self.open(0)

    def open(self, start: int) -> None:
        self.start, self.stop, self.synapses, self.fan_in = start, start, 0, 0
        self.seen[:] = False

    def _inputs(self, a: int, b: int) -> np.ndarray:
        return np.arange(a, b) if self.identity else self.pre[self.indptr[a]:self.indptr[b]]

    def cost(self, a: int, b: int) -> tuple[int, int, int, int]:
        """(neurons, synapses, connections, fan-in) of the open core with neurons [a, b) added."""
        new = np.unique(self._inputs(a, b))
        return (b - self.start, self.synapses + int(self.indptr[b] - self.indptr[a]) * (not self.identity),
                int(self.connections[b] - self.connections[self.start]), self.fan_in + int((~self.seen[new]).sum()))

    def broken(self, neurons: int, synapses: int, connections: int, fan_in: int) -> str | None:
        """The first limit the counts break, as a phrase, or None."""
        chip = self.chip
        if neurons > chip.neurons_per_core:
            return f"{neurons} neurons, a core holds {chip.neurons_per_core} (neurons_per_core)"
        if neurons > self.max_neurons:
            return f"{neurons} neurons, at most {self.max_neurons} per core keep its fan-out within output_axons_per_core"
        if chip.memory_bits(synapses, connections) > chip.synaptic_memory_bits:
            return (f"{int(chip.memory_bits(synapses, connections))} bits of synaptic memory ({synapses} synapses, "
                    f"{connections} connections), a core holds {chip.synaptic_memory_bits} (synaptic_memory_bits)")
        if fan_in > chip.input_axons_per_core:
            return (f"inputs from {fan_in} presynaptic neurons, a core takes {chip.input_axons_per_core} "
                    f"(input_axons_per_core)")
        return None

    def fits_alone(self, a: int, b: int) -> bool:
        self.open(a)
        return self.broken(*self.cost(a, b)) is None

    def add(self, a: int, b: int) -> None:
        """Put neurons [a, b) in the open core, or close it and open a new one for them."""
        counts = self.cost(a, b)
        if self.broken(*counts) is not None and self.stop > self.start:
            self.close()
            self.open(a)
            counts = self.cost(a, b)
        problem = self.broken(*counts)
        if problem is not None:
            raise DeviceError(f"{self.layer.name} does not fit on a core: neurons {a}..{b - 1} need {problem}")
        self.seen[self._inputs(a, b)] = True
        self.stop, self.synapses, self.fan_in = b, counts[1], counts[3]

    def close(self) -> None:
        self.cores.append((self.start, self.stop, self.synapses,
                           int(self.connections[self.stop] - self.connections[self.start]), self.fan_in))


def _units(packer: _Packer, layer: Layer) -> list[tuple[int, int]]:
    """Neuron ranges packed as wholes: channels or rows (tiles) of a conv layer, else neurons."""
    if layer.kind == "conv":
        channels, height, width = layer.shape
        for step in (height * width, width):  # a whole channel, else one row of a channel
            units = [(a, a + step) for a in range(0, layer.size, step)]
            if all(packer.fits_alone(a, b) for a, b in units):
                return units
    return [(a, a + 1) for a in range(layer.size)]


def _partition(chip: Chip, layer: Layer, in_shape: tuple[int, ...], max_neurons: int):
    """The layer's cores as (start, stop, synapses, connections, fan-in) tuples, and its (post, pre)."""
    post, pre = connectivity(layer, in_shape)
    packer = _Packer(chip, layer, post, pre, connection_counts(layer, in_shape), int(np.prod(in_shape)), max_neurons)
    units = _units(packer, layer)
    packer.open(0)
    for a, b in units:
        packer.add(a, b)
    packer.close()
    return packer.cores, post, pre


def _synapse_in(post: np.ndarray, pre: np.ndarray, n_pre: int, ranges: list[tuple], size: int) -> np.ndarray:
    """(n_pre, cores) synapses from each presynaptic neuron into each core of the layer."""
    local = np.empty(size, dtype=np.int64)
    for k, (start, stop, *_) in enumerate(ranges):
        local[start:stop] = k
    out = np.zeros((n_pre, len(ranges)), dtype=np.int64)
    np.add.at(out, (pre, local[post]), 1)
    return out


class _FanOut(Exception):
    """A core of layer ``layer`` with ``neurons`` neurons sends on ``routes`` routes."""

    def __init__(self, layer: int, neurons: int, routes: int, message: str):
        super().__init__(message)
        self.layer, self.neurons, self.routes = layer, neurons, routes


def map_network(network: NetworkDescription, chip: Chip) -> Mapping:
    """Partition and place ``network`` on ``chip`` (see the module docstring).

    Raises:
        DeviceError: a layer or core breaks a limit, or the network needs more cores than
            the system has; the message names the layer and the limit.
    """
    caps = [chip.neurons_per_core] * len(network.layers)
    while True:
        try:
            return _map(network, chip, caps)
        except _FanOut as exc:
            if exc.neurons == 1:
                raise DeviceError(str(exc)) from None
            limit = chip.output_axons_per_core
            caps[exc.layer] = max(1, min(exc.neurons - 1, exc.neurons * limit // exc.routes))


def _map(network: NetworkDescription, chip: Chip, caps: list[int]) -> Mapping:
    """One mapping with at most ``caps[l]`` neurons per core of layer ``l``."""
    in_shape = network.input_shape
    n_pre = int(np.prod(in_shape))
    input_size, layers, cores, first = n_pre, [], [], 0
    for position, layer in enumerate(network.layers):
        ranges, post, pre = _partition(chip, layer, in_shape, caps[position])
        synapse_in = (np.zeros((n_pre, len(ranges)), np.int64) if layer.kind == "input"
                      else _synapse_in(post, pre, n_pre, ranges, layer.size))
        numbers = tuple(range(first, first + len(ranges)))
        if first + len(ranges) > chip.cores:
            raise DeviceError(f"{network.path}: does not fit: {layer.name} brings the network to "
                              f"{first + len(ranges)} cores, the system has {chip.cores} "
                              f"(neurocores_per_chip {chip.neurocores_per_chip} x chips_per_system "
                              f"{chip.chips_per_system})")
        layers.append(LayerMap(position, layer.name, layer.kind, layer.size, numbers, synapse_in))
        cores.extend((position, *r) for r in ranges)
        first += len(ranges)
        in_shape, n_pre = layer.shape, layer.size
    links, fan_out = _links(chip, layers, cores)
    placed = tuple(Core(index=g, layer=pos, start=start, stop=stop, synapses=syn, connections=conn,
                        memory_bits=int(chip.memory_bits(syn, conn)), fan_in=fan_in, fan_out=int(fan_out[g]),
                        position=chip.position(g))
                   for g, (pos, start, stop, syn, conn, fan_in) in enumerate(cores))
    for core in placed:
        if core.fan_out > chip.output_axons_per_core:
            raise _FanOut(core.layer, core.neurons, core.fan_out,
                          f"{network.path}: does not fit: core {core.index} ({layers[core.layer].name}, neurons "
                          f"{core.start}..{core.stop - 1}) sends on {core.fan_out} routes, a core has "
                          f"{chip.output_axons_per_core} (output_axons_per_core)")
    return Mapping(chip=chip, network=str(network.path), input_size=input_size, layers=tuple(layers),
                   cores=placed, links=tuple(links))


def _links(chip: Chip, layers: list[LayerMap], cores: list[tuple]) -> tuple[list[Link], np.ndarray]:
    """Core-to-core links between consecutive layers, and each core's fan-out routes."""
    links, fan_out = [], np.zeros(len(cores), dtype=np.int64)
    for before, after in zip(layers, layers[1:]):
        routed = after.synapse_in > 0  # (n_pre, k_after): which source neurons reach each core
        for g in before.cores:
            _, start, stop, *_ = cores[g]
            routes = routed[start:stop].sum(axis=0)
            fan_out[g] = int(routes.sum())
            links.extend(Link(g, int(t), chip.hops(g, int(t)), int(r))
                         for t, r in zip(after.cores, routes) if r > 0)
    return links, fan_out


# ---------------------------------------------------------------- table
def mapping_summary(mapping: Mapping) -> dict:
    """JSON-friendly summary: cores, chips, utilisation and per-layer figures.

    Utilisation is the mean over used cores of each resource's share of its limit.
    """
    chip = mapping.chip

    def share(cores, attr: str, limit: int) -> float:
        return float(np.mean([getattr(c, attr) / limit for c in cores]))

    layers = []
    for layer in mapping.layers:
        cores = [mapping.cores[g] for g in layer.cores]
        layers.append({"name": layer.name, "cores": len(cores), "neurons": layer.size,
                       "synapses": int(sum(c.synapses for c in cores)),
                       "connections": int(sum(c.connections for c in cores)),
                       "neurons_pct": 100 * share(cores, "neurons", chip.neurons_per_core),
                       "memory_pct": 100 * share(cores, "memory_bits", chip.synaptic_memory_bits),
                       "max_fan_in": int(max(c.fan_in for c in cores)),
                       "fan_in_pct": 100 * share(cores, "fan_in", chip.input_axons_per_core),
                       "max_fan_out": int(max(c.fan_out for c in cores))})
    return {"cores": mapping.n_cores, "chips": mapping.chips_used, "system_cores": chip.cores,
            "mesh_shape": list(chip.mesh_shape),
            "core_utilisation_pct": 100 * mapping.n_cores / chip.cores,
            "links": len(mapping.links),
            "mean_hops": float(np.mean([link.hops for link in mapping.links])) if mapping.links else 0.0,
            "layers": layers}


def format_mapping(mapping: Mapping, profile_name: str) -> str:
    """The mapping as a text table: cores per layer, neurons, synapses, memory use, fan-in."""
    chip, summary = mapping.chip, mapping_summary(mapping)
    lines = [f"{mapping.network} on {profile_name}: {summary['cores']} of {summary['system_cores']} cores "
             f"({summary['core_utilisation_pct']:.1f}%), {summary['chips']} chip(s); limits per core: "
             f"{chip.neurons_per_core} neurons, {chip.synaptic_memory_bits} bits synaptic memory "
             f"(dense {chip.weight_bits} bits/connection or sparse {chip.bits_per_synapse} bits/synapse), "
             f"{chip.input_axons_per_core} fan-in, "
             f"{chip.output_axons_per_core} fan-out",
             f"{'layer':<28}{'cores':>6}{'neurons':>9}{'synapses':>11}{'neur/core':>10}{'memory':>8}"
             f"{'fan-in max':>11}{'fan-in':>8}{'fan-out max':>12}"]
    for row in summary["layers"]:
        lines.append(f"{row['name']:<28}{row['cores']:>6}{row['neurons']:>9}{row['synapses']:>11}"
                     f"{row['neurons_pct']:>9.1f}%{row['memory_pct']:>7.1f}%{row['max_fan_in']:>11}"
                     f"{row['fan_in_pct']:>7.1f}%{row['max_fan_out']:>12}")
    lines.append(f"(synapses: non-zero weights; per-layer % = mean over the layer's cores of use / limit; "
                 f"{summary['links']} core-to-core links, mean {summary['mean_hops']:.1f} hops)")
    return "\n".join(lines)
