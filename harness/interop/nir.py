"""NIR graphs (the Neuromorphic Intermediate Representation, ``nir`` on PyPI) in and out.

- :func:`import_nir`: a NIR graph -> a SLAYER twin (``harness.models.SpikingNetwork``) plus
  its quantized netx HDF5 export for the device.
- :func:`export_nir`: a harness-trained network -> a NIR graph; export -> import gives back
  the same integer weights and neuron parameters.
- :func:`reference_forward`: the graph in float64 with the source framework's reset, and
  :func:`measure_agreement`: how far Loihi's reset and quantization move its predictions.

Supported graphs are chains ``Input -> [Flatten] -> synapse -> neuron -> ... -> Output``:
a synapse is ``Linear``, ``Affine`` (zero bias) or ``Conv2d``, each followed by a neuron
node ``CubaLIF``, ``LIF`` or ``IF``. Mapping rules (those of NIR's own lava-dl bridge,
``neuromorphs/NIR`` ``paper/02_cnn/_lava_nir.py``, generalised to the input gains):

- current decay = dt / tau_syn (1 for LIF and IF: no synaptic current), voltage decay =
  dt / tau_mem (0 for IF); one value per layer, quantized to 12 bits by the device;
- ``v_leak`` and ``v_reset`` 0 (Loihi's CUBA neuron has neither);
- ``dt`` is not in a NIR file: pass it, or it is taken from ``r = tau_mem / dt`` (the
  convention of snnTorch's exporter and of :func:`export_nir`);
- input gains: Euler steps of NIR's equations give ``v[t] = (1 - dv) v[t-1] + g I[t]`` with
  ``g = (dt/tau_syn) w_in (dt/tau_mem) r`` (CubaLIF), ``(dt/tau) r`` (LIF), ``r`` (IF, read
  as ``v += r x``, as Sinabs exports it); ``g`` is folded into the threshold
  (``threshold / g``; 1 for snnTorch exports);
- a layer's weights and threshold are multiplied by one power of two (exact in floating
  point, spikes unchanged) so that its weights use the 8-bit range of the device
  (step 2/64, at most 254/64); weights already on that grid are kept as they are.

Everything else is refused with a :class:`NirGraphError` naming the node: other node types
(pooling, delays, recurrent subgraphs, ...), per-neuron parameters that differ within a
layer, nonzero bias (the device replay is exact only without bias), branches.

Source frameworks (:data:`SOURCES`): NIR defines the equations, but exporters differ in what
they mean by them. The source (``source=``, or :func:`detect_source` from the graph's metadata
where an exporter records it) selects two conventions:

- the CubaLIF input gain: NIR's definition scales the input into the current by dt/tau_syn
  (snnTorch, Sinabs and Rockpool choose ``w_in`` and ``r`` for it); Norse adds the input to the
  current as is, so its gain has no dt/tau_syn (importing a Norse graph with NIR's gain
  under-drives it by tau_syn/dt);
- the reset the source framework applies after a spike, against which :func:`measure_agreement`
  measures the device: NIR's own (to ``v_reset``, "zero"), snnTorch's, Sinabs' and Rockpool's
  default (subtract the threshold), Norse's (to ``v_reset``, "zero").

The device (Loihi's CUBA neuron, and the SLAYER twin) resets the voltage to 0 after a spike
(:data:`DEVICE_RESET`) whatever the source; :func:`measure_agreement` reports how far the
source's reset, and the quantization, move predictions.
"""
from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import ConfigError, DataError
from ..models import SpikingNetwork, spec_from_dict
from ..runs import open_run
from ..store import atomic_path

SUPPORTED_NODES = ("Input", "Linear", "Affine", "Conv2d", "Flatten", "CubaLIF", "LIF", "IF", "Output")
SYNAPSES = ("Linear", "Affine", "Conv2d")
NEURONS = ("CubaLIF", "LIF", "IF")
RESETS = ("zero", "subtract", "snntorch-zero")
#: what the device and the SLAYER twin do after a spike: the voltage is set to 0
DEVICE_RESET = "zero"
#: what snnTorch (Leaky, Synaptic; reset_mechanism="subtract", its default) does; its
#: reset_mechanism="zero" is "snntorch-zero": the voltage of the step after a spike is 0,
#: that step's input lost (Loihi instead integrates it into the zeroed voltage)
SOURCE_RESET = "subtract"


@dataclass(frozen=True)
class SourceConvention:
    """How a framework's NIR export is meant (see the module docstring).

    Attributes:
        name: the framework, as ``--source`` takes it.
        current_gain: whether a CubaLIF's input enters its current scaled by dt/tau_syn (NIR's
            definition) or as is (Norse).
        reset: the framework's reset after a spike (one of :data:`RESETS`).
        basis: where the convention comes from.
    """

    name: str
    current_gain: bool
    reset: str
    basis: str


#: the source frameworks the import knows, by name
SOURCES = {convention.name: convention for convention in (
    SourceConvention("nir", True, "zero", "NIR's equations: tau_syn dI/dt = -I + w_in x, reset to v_reset"),
    SourceConvention("snntorch", True, SOURCE_RESET, "snnTorch 1.0's exporter (w_in = tau_syn/dt, r = tau_mem/dt); "
                     "Leaky/Synaptic reset by subtraction by default (tested here)"),
    SourceConvention("norse", False, "zero", "Norse 1.1's LIF: i += x, v += dt/tau_mem (v_leak - v + i), "
                     "v = v_reset after a spike; its exporter writes r = w_in = 1 (tested here)"),
    SourceConvention("sinabs", True, SOURCE_RESET, "Sinabs' exporter (IF: v += r x); MembraneSubtract by default"),
    SourceConvention("rockpool", True, SOURCE_RESET, "Rockpool's exporter (r and w_in chosen for NIR's equations); "
                     "LIFTorch subtracts the threshold by default"),
)}
#: the source assumed when neither ``source=`` nor the graph's metadata names one
DEFAULT_SOURCE = "nir"
#: graph metadata keys an exporter may name its framework under
SOURCE_METADATA_KEYS = ("source", "framework", "exporter", "library")

W_SCALE = 64  # SLAYER's CUBA neuron scale (1 << 6): device integers = float values x 64
W_STEP = 2 / W_SCALE  # 8-bit weight grid of lava-dl's quantize_8bit
W_MAX = 254 / W_SCALE
TH_MAX = ((1 << 17) - 1) / W_SCALE  # vThMant is a 17-bit mantissa
P_SCALE = 4096  # 12-bit decays


class NirGraphError(DataError):
    """A NIR file that cannot be read, or a graph the harness cannot map to the device."""


@dataclass(frozen=True)
class NirFlatten:
    """A Flatten node: (C, H, W) -> (C*H*W,) in C-major order (SLAYER's and torch's)."""

    node: str
    in_shape: tuple[int, ...]


@dataclass(frozen=True)
class NirLayer:
    """A synapse node and the neuron node after it: one layer with neurons.

    Attributes:
        synapse, neuron: the node keys; neuron_type: "CubaLIF", "LIF" or "IF".
        kind: "dense" or "conv"; in_shape, out_shape: (C,) or (C, H, W).
        weight: float64 weights in the graph's units: (out, in) or (out, in, k, k).
        stride, padding: of a conv layer (one value for both axes).
        current_decay, voltage_decay: per step, as fractions (dt / tau).
        threshold: the voltage threshold for a unit input gain (``v_threshold / g``).
        scale: the power of two applied to weight and threshold for the device.
    """

    synapse: str
    neuron: str
    neuron_type: str
    kind: str
    in_shape: tuple[int, ...]
    out_shape: tuple[int, ...]
    weight: np.ndarray
    current_decay: float
    voltage_decay: float
    threshold: float
    scale: float
    stride: int = 1
    padding: int = 0

    @property
    def device_threshold(self) -> float:
        """The twin's threshold: ``threshold x scale`` on SLAYER's 1/64 grid."""
        return round(self.threshold * self.scale * W_SCALE) / W_SCALE


@dataclass
class NirImport:
    """An imported graph: the SLAYER twin, its netx file and what the import assumed.

    Attributes:
        graph_path: the NIR file read; netx_path: the netx HDF5 file written for the device.
        network: the SLAYER twin, input (N, *input_shape, T) -> output spikes (N, K, T); its
            arithmetic is the device's (8-bit weights, 12-bit decays, hard reset).
        layers: the chain, first to last (NirFlatten and NirLayer items).
        input_shape: (C,) or (C, H, W); dt_s: the time step in seconds.
        source: the source framework's conventions the import used (:data:`SOURCES`).
        source_detected: whether the graph's metadata named the source (else it was given,
            or :data:`DEFAULT_SOURCE` assumed).
        reset: the reset the twin and the device apply (always :data:`DEVICE_RESET`).
    """

    graph_path: Path
    netx_path: Path
    network: SpikingNetwork
    layers: tuple[NirFlatten | NirLayer, ...]
    input_shape: tuple[int, ...]
    dt_s: float
    source: SourceConvention = SOURCES[DEFAULT_SOURCE]
    source_detected: bool = False
    reset: str = DEVICE_RESET

    @property
    def spiking_layers(self) -> list[NirLayer]:
        return [layer for layer in self.layers if isinstance(layer, NirLayer)]


# ---------------------------------------------------------------- reading a graph


def read_graph(path: str | Path):
    """``nir.read(path)``; a NirGraphError naming the file if it is missing or not a NIR graph."""
    import nir

    path = Path(path)
    if not path.is_file():
        raise NirGraphError(f"{path}: no such NIR file")
    try:
        return nir.read(path)
    except Exception as exc:  # h5py / nir raise OSError, KeyError, ValueError, TypeError, ...
        raise NirGraphError(f"{path}: not a readable NIR graph ({type(exc).__name__}: {exc})") from None


def _chain(graph, where: str) -> list[tuple[str, Any]]:
    """The graph's nodes in order from its one Input to its one Output (a chain, no branch)."""
    kinds = {key: type(node).__name__ for key, node in graph.nodes.items()}
    for key, kind in kinds.items():
        if kind == "NIRGraph":
            raise NirGraphError(f"{where}: node '{key}' is a nested graph (e.g. a recurrent layer); "
                                f"only feed-forward chains of {', '.join(SUPPORTED_NODES)} are supported")
        if kind not in SUPPORTED_NODES:
            raise NirGraphError(f"{where}: node '{key}' is {kind}, not supported; supported nodes: "
                                f"{', '.join(SUPPORTED_NODES)}")
    inputs = [key for key, kind in kinds.items() if kind == "Input"]
    outputs = [key for key, kind in kinds.items() if kind == "Output"]
    if len(inputs) != 1 or len(outputs) != 1:
        raise NirGraphError(f"{where}: needs exactly one Input and one Output node, has {len(inputs)} and {len(outputs)}")
    after: dict[str, list[str]] = {}
    for src, dst in graph.edges:
        after.setdefault(src, []).append(dst)
    order, key = [inputs[0]], inputs[0]
    while key != outputs[0]:
        nxt = after.get(key, [])
        if len(nxt) != 1:
            raise NirGraphError(f"{where}: node '{key}' has {len(nxt)} successors; only chains "
                                f"(one successor per node, Input to Output) are supported")
        key = nxt[0]
        if key in order:
            raise NirGraphError(f"{where}: the edges loop back to node '{key}'; recurrence is not supported")
        order.append(key)
    missing = sorted(set(kinds) - set(order))
    if missing:
        raise NirGraphError(f"{where}: nodes {', '.join(missing)} are not on the Input -> Output chain")
    return [(key, graph.nodes[key]) for key in order]


def _one_value(node, key: str, name: str, shape: tuple[int, ...], where: str) -> float:
    """The single value of a per-neuron parameter; NirGraphError if its neurons differ."""
    values = np.asarray(getattr(node, name), dtype=np.float64)
    try:
        values = np.broadcast_to(values, shape)
    except ValueError:
        raise NirGraphError(f"{where}: node '{key}' {name} has shape {values.shape}, "
                            f"the layer has {shape}") from None
    unique = np.unique(values)
    if len(unique) != 1:
        raise NirGraphError(f"{where}: node '{key}' {name} takes {len(unique)} different values across its "
                            f"neurons; the harness needs one value per layer")
    return float(unique[0])


def _neuron_constants(node, key: str, shape: tuple[int, ...], where: str) -> dict[str, float]:
    """tau_syn, tau_mem (seconds, inf where absent), r, w_in, v_threshold of a neuron node,
    after checking v_leak and v_reset are 0 and every value is one per layer."""
    kind = type(node).__name__
    value = {name: _one_value(node, key, name, shape, where)
             for name in ("r", "v_threshold", "v_reset") + {"CubaLIF": ("tau_syn", "tau_mem", "v_leak", "w_in"),
                                                          "LIF": ("tau", "v_leak"), "IF": ()}[kind]}
    for name in ("v_leak", "v_reset"):
        if value.get(name, 0.0) != 0.0:
            raise NirGraphError(f"{where}: node '{key}' has {name} = {value[name]}; Loihi's CUBA neuron "
                                f"needs {name} = 0")
    if kind == "LIF":
        value["tau_mem"] = value.pop("tau")
    value.setdefault("w_in", 1.0)
    for name in ("tau_syn", "tau_mem"):
        if name in value and not (math.isfinite(value[name]) and value[name] > 0):
            raise NirGraphError(f"{where}: node '{key}' {name} = {value[name]}; it must be finite and > 0")
    if value["v_threshold"] <= 0 or not math.isfinite(value["v_threshold"]):
        raise NirGraphError(f"{where}: node '{key}' v_threshold = {value['v_threshold']}; it must be > 0")
    return value


def _infer_dt(chain, where: str) -> float:
    """dt from ``r = tau_mem / dt`` of the leaky neuron nodes (all must agree); 1 without any."""
    dts = {}
    for key, node in chain:
        kind = type(node).__name__
        if kind in ("CubaLIF", "LIF"):
            tau = np.asarray(node.tau_mem if kind == "CubaLIF" else node.tau, dtype=np.float64)
            r = np.asarray(node.r, dtype=np.float64)
            with np.errstate(divide="ignore", invalid="ignore"):
                dts[key] = np.unique(np.broadcast_to(tau / r, np.broadcast_shapes(tau.shape, r.shape)))
    if not dts:
        return 1.0
    values = np.concatenate(list(dts.values()))
    if not np.all(np.isfinite(values) & (values > 0)) or not np.allclose(values, values[0], rtol=1e-6, atol=0):
        found = ", ".join(f"'{k}': {', '.join(f'{v:g}' for v in vs[:3])}" for k, vs in dts.items())
        raise NirGraphError(f"{where}: cannot infer dt from r = tau_mem / dt (tau_mem / r gives {found}); "
                            f"give the time step (harness import --dt-ms)")
    return float(values[0])


def _decays_and_gain(kind: str, value: dict[str, float], dt: float, key: str, where: str,
                     source: SourceConvention, dt_inferred: bool) -> tuple[float, float, float]:
    """(current decay, voltage decay, input gain g) of one neuron node at time step dt, with
    ``source``'s CubaLIF input convention."""
    if kind == "IF":
        current, voltage, gain = 1.0, 0.0, value["r"]
    elif kind == "LIF":
        current, voltage = 1.0, dt / value["tau_mem"]
        gain = voltage * value["r"]
    else:
        current, voltage = dt / value["tau_syn"], dt / value["tau_mem"]
        gain = (current if source.current_gain else 1.0) * value["w_in"] * voltage * value["r"]
    for name, decay in (("current decay dt/tau_syn", current), ("voltage decay dt/tau_mem", voltage)):
        if not 0.0 <= decay <= 1.0:
            how = "inferred from r = tau_mem / dt" if dt_inferred else "given"
            raise NirGraphError(f"{where}: node '{key}' {name} = {decay:g} at dt = {dt:g} s ({how}); it must lie in "
                                f"[0, 1] (tau >= dt): give the time step the graph was made for "
                                f"(harness import --dt-ms)")
    if not (math.isfinite(gain) and gain > 0):
        raise NirGraphError(f"{where}: node '{key}' has input gain {gain:g} (from r, w_in, tau); it must be > 0")
    return current, voltage, gain


def _pair_value(value, name: str, key: str, where: str, default: int) -> int:
    """A conv stride/padding/dilation given as int or (y, x) pair, equal on both axes."""
    if isinstance(value, str):
        if value == "valid":
            return 0
        raise NirGraphError(f"{where}: node '{key}' padding '{value}' is not supported; give it as numbers")
    values = np.atleast_1d(np.asarray(default if value is None else value)).astype(int)
    if len(set(values.tolist())) != 1:
        raise NirGraphError(f"{where}: node '{key}' {name} {tuple(values.tolist())} differs between axes; "
                            f"the harness's conv layers need one value for both")
    return int(values[0])


def _synapse(key: str, node, shape: tuple[int, ...], where: str) -> dict[str, Any]:
    """kind, weight, out_shape (and stride, padding) of a Linear / Affine / Conv2d node on input ``shape``."""
    kind = type(node).__name__
    weight = np.asarray(node.weight, dtype=np.float64)
    bias = getattr(node, "bias", None)
    if bias is not None and np.any(np.asarray(bias) != 0):
        raise NirGraphError(f"{where}: node '{key}' ({kind}) has a nonzero bias; the device replay is exact "
                            f"only without bias: export the layer without bias (bias=False)")
    if kind in ("Linear", "Affine"):
        if len(shape) != 1:
            raise NirGraphError(f"{where}: node '{key}' ({kind}) gets a {shape} input; add a Flatten node before it")
        if weight.ndim != 2 or weight.shape[1] != shape[0]:
            raise NirGraphError(f"{where}: node '{key}' weight {weight.shape} does not take {shape[0]} inputs")
        return {"kind": "dense", "weight": weight, "out_shape": (weight.shape[0],)}
    if len(shape) != 3 or weight.ndim != 4 or weight.shape[1] != shape[0]:
        raise NirGraphError(f"{where}: node '{key}' Conv2d weight {weight.shape} does not fit a {shape} input")
    if int(node.groups) != 1 or _pair_value(node.dilation, "dilation", key, where, 1) != 1:
        raise NirGraphError(f"{where}: node '{key}' Conv2d has groups = {node.groups}, dilation = {node.dilation}; "
                            f"the harness's conv layers support groups 1 and dilation 1")
    if weight.shape[2] != weight.shape[3]:
        raise NirGraphError(f"{where}: node '{key}' Conv2d kernel {weight.shape[2:]} is not square")
    k = weight.shape[2]
    stride = _pair_value(node.stride, "stride", key, where, 1)
    padding = _pair_value(node.padding, "padding", key, where, 0)
    out = tuple((d + 2 * padding - k) // stride + 1 for d in shape[1:])
    if min(out) < 1:
        raise NirGraphError(f"{where}: node '{key}' Conv2d leaves no output on a {shape} input")
    return {"kind": "conv", "weight": weight, "out_shape": (weight.shape[0], *out), "stride": stride,
            "padding": padding}


def _device_scale(weight: np.ndarray, threshold: float, key: str, where: str) -> float:
    """The power of two that puts a layer's weights on the device's 8-bit range (1 if they
    already lie on its grid); NirGraphError if the threshold cannot follow."""
    # the threshold is v_threshold / gain, and the gain of an exported graph is 1 only up to
    # rounding of dt / tau x tau / dt: allow that much off the grid
    on_grid = (np.all(np.abs(weight) <= W_MAX) and np.array_equal(weight / W_STEP, np.round(weight / W_STEP))
               and math.isclose(threshold * W_SCALE, round(threshold * W_SCALE), rel_tol=1e-9)
               and threshold <= TH_MAX)
    if on_grid:
        return 1.0
    peak = float(np.abs(weight).max())
    if peak == 0:
        raise NirGraphError(f"{where}: node '{key}' has only zero weights")
    scale = 2.0 ** math.floor(math.log2(W_MAX / peak))
    while threshold * scale > TH_MAX:
        scale /= 2
    if round(threshold * scale * W_SCALE) < 1:
        raise NirGraphError(f"{where}: node '{key}': threshold {threshold:g} is below the weight resolution "
                            f"({peak / 127:g}) and cannot be quantized")
    return scale


def detect_source(graph) -> str | None:
    """The source framework the graph's metadata names (a key of :data:`SOURCE_METADATA_KEYS`
    holding one of :data:`SOURCES`' names, in any case), or None. NIR 1.0 has the field;
    the exporters of snnTorch 1.0, Norse 1.1 and nirtorch 2.6 leave it empty."""
    metadata = getattr(graph, "metadata", None) or {}
    for key in SOURCE_METADATA_KEYS:
        value = metadata.get(key)
        if isinstance(value, bytes):
            value = value.decode(errors="replace")
        if isinstance(value, str) and value.strip().lower() in SOURCES:
            return value.strip().lower()
    return None


def source_convention(name: str, where: str) -> SourceConvention:
    """The :data:`SOURCES` entry ``name``; ConfigError naming the choices otherwise."""
    if name not in SOURCES:
        raise ConfigError(f"{where}: source framework must be one of {', '.join(SOURCES)}, got {name!r}")
    return SOURCES[name]


def parse_graph(graph, where: str, dt: float | None = None, source: SourceConvention = SOURCES[DEFAULT_SOURCE]
                ) -> tuple[tuple[int, ...], float, list]:
    """Check a NIR graph and map it with ``source``'s conventions: (input shape, dt in
    seconds, [NirFlatten | NirLayer, ...])."""
    chain = _chain(graph, where)
    shape = tuple(int(s) for s in np.atleast_1d(chain[0][1].input_type["input"]))
    input_shape, dt_inferred = shape, dt is None
    dt = _infer_dt(chain, where) if dt is None else float(dt)
    items: list[NirFlatten | NirLayer] = []
    pending: tuple[str, dict] | None = None
    for key, node in chain[1:-1]:
        kind = type(node).__name__
        if pending is not None and kind not in NEURONS:
            raise NirGraphError(f"{where}: node '{pending[0]}' is followed by {kind} '{key}'; every synapse "
                                f"must be followed by a neuron node ({', '.join(NEURONS)})")
        if kind == "Flatten":
            if len(shape) > 1 and (node.start_dim not in (0, -len(shape)) or node.end_dim not in (-1, len(shape) - 1)):
                raise NirGraphError(f"{where}: node '{key}' flattens dims {node.start_dim}..{node.end_dim} of "
                                    f"{shape}; only a flatten of all dims is supported")
            items.append(NirFlatten(key, shape))
            shape = (int(np.prod(shape)),)
        elif kind in SYNAPSES:
            pending = (key, _synapse(key, node, shape, where))
        else:
            if pending is None:
                raise NirGraphError(f"{where}: neuron node '{key}' ({kind}) has no Linear, Affine or Conv2d "
                                    f"before it; the harness needs a synapse before each neuron layer")
            syn_key, syn = pending
            value = _neuron_constants(node, key, syn["out_shape"], where)
            current, voltage, gain = _decays_and_gain(kind, value, dt, key, where, source, dt_inferred)
            threshold = value["v_threshold"] / gain
            items.append(NirLayer(synapse=syn_key, neuron=key, neuron_type=kind, kind=syn["kind"], in_shape=shape,
                                  out_shape=syn["out_shape"], weight=syn["weight"], current_decay=current,
                                  voltage_decay=voltage, threshold=threshold,
                                  scale=_device_scale(syn["weight"], threshold, syn_key, where),
                                  stride=syn.get("stride", 1), padding=syn.get("padding", 0)))
            shape, pending = syn["out_shape"], None
    if pending is not None:
        raise NirGraphError(f"{where}: node '{pending[0]}' is not followed by a neuron node ({', '.join(NEURONS)})")
    if not items or not isinstance(items[-1], NirLayer) or items[-1].kind != "dense":
        raise NirGraphError(f"{where}: the last layer before Output must be Linear/Affine + neuron (the class read-out)")
    return input_shape, dt, items


# ---------------------------------------------------------------- the SLAYER twin


def _spec(items: list, input_shape: tuple[int, ...], steps: int, dt: float, name: str):
    """The harness ModelSpec of the chain (first layer's neuron as the spec's; each block is
    then given its own by :func:`_set_neuron`)."""
    layers = []
    for item in items:
        if isinstance(item, NirFlatten):
            layers.append({"type": "flatten"})
        elif item.kind == "dense":
            layers.append({"type": "dense", "out": item.out_shape[0], "weight_norm": False})
        else:
            layers.append({"type": "conv", "out": item.out_shape[0], "kernel": int(item.weight.shape[2]),
                           "stride": item.stride, "padding": item.padding, "weight_norm": False})
    first = next(item for item in items if isinstance(item, NirLayer))
    raw = {"name": name, "description": f"imported from NIR graph {name}",
           "data": {"dataset": "nir", "steps": int(steps), "dt_ms": dt * 1e3, "input_shape": list(input_shape)},
           "neuron": {"threshold": first.device_threshold, "current_decay": first.current_decay,
                      "voltage_decay": first.voltage_decay}, "layers": layers}
    return spec_from_dict(raw, f"NIR graph {name}")


def _set_neuron(neuron, threshold: float, current_decay: float, voltage_decay: float) -> None:
    """Give a SLAYER CUBA neuron its layer's parameters: the threshold on the 1/64 grid (the
    surrogate width keeps its ratio to it, as ``harness.models.attack_threshold`` does) and
    the decays on the 12-bit grid the device uses."""
    neuron.tau_rho = neuron.tau_rho * threshold / neuron._threshold
    neuron._threshold = threshold
    neuron.current_decay.data.fill_(round(current_decay * P_SCALE))
    neuron.voltage_decay.data.fill_(round(voltage_decay * P_SCALE))


def build_twin(items: list, input_shape: tuple[int, ...], steps: int, dt: float, name: str) -> SpikingNetwork:
    """The SLAYER network of a parsed chain, in eval mode: weights x scale, quantized by the
    blocks' 8-bit hook in the forward pass; neurons sized by a first pass."""
    net = SpikingNetwork(_spec(items, input_shape, steps, dt, name))
    layers = [item for item in items if isinstance(item, NirLayer)]
    with torch.no_grad():
        for layer, block in zip(layers, net.spiking_blocks):
            weight = torch.as_tensor(layer.weight * layer.scale, dtype=torch.float32)
            block.synapse.weight.data.copy_(weight.reshape(block.synapse.weight.shape))
            _set_neuron(block.neuron, layer.device_threshold, layer.current_decay, layer.voltage_decay)
        net(torch.zeros((1, *input_shape, steps)))
    return net.eval()


def import_nir(graph_path: str | Path, netx_path: str | Path, *, steps: int, dt: float | None = None,
               source: str | None = None) -> NirImport:
    """Import a NIR graph: the SLAYER twin and its netx export (written atomically to ``netx_path``).

    Args:
        graph_path: a ``.nir`` file (``nir.write``).
        netx_path: where the netx HDF5 network for the device goes.
        steps: time steps T of the data (the graph does not record it; only the spec keeps it).
        dt: time step in seconds; default: from ``r = tau_mem / dt`` of the graph.
        source: the framework that exported the graph (a key of :data:`SOURCES`); default:
            the one its metadata names (:func:`detect_source`), else :data:`DEFAULT_SOURCE`.
    Raises:
        NirGraphError: unreadable file, or a node / parameter the device cannot take (named).
        ConfigError: steps < 1, dt <= 0 or an unknown source.
    """
    graph_path = Path(graph_path)
    where = str(graph_path)
    if int(steps) < 1 or (dt is not None and not (math.isfinite(dt) and dt > 0)):
        raise ConfigError(f"importing {where}: steps must be >= 1 and dt > 0 seconds, got steps={steps}, dt={dt}")
    graph = read_graph(graph_path)
    detected = detect_source(graph)
    convention = source_convention(source or detected or DEFAULT_SOURCE, f"importing {where}")
    input_shape, dt, items = parse_graph(graph, where, dt, convention)
    net = build_twin(items, input_shape, steps, dt, graph_path.stem)
    with atomic_path(netx_path) as tmp:
        net.export_hdf5(tmp)
    return NirImport(graph_path=graph_path, netx_path=Path(netx_path), network=net, layers=tuple(items),
                     input_shape=input_shape, dt_s=dt, source=convention,
                     source_detected=source is None and detected is not None)


# ---------------------------------------------------------------- float reference


def _synaptic_input(layer: NirLayer, x: torch.Tensor) -> torch.Tensor:
    """The layer's synaptic input (N, *out_shape, T) for spikes x (N, *in_shape, T), float64."""
    weight = torch.as_tensor(layer.weight, dtype=torch.float64)
    if layer.kind == "dense":
        return torch.einsum("oi,nit->not", weight, x)
    n, t = x.shape[0], x.shape[-1]
    frames = x.permute(0, 4, 1, 2, 3).reshape(n * t, *x.shape[1:4])
    out = torch.nn.functional.conv2d(frames, weight, stride=layer.stride, padding=layer.padding)
    return out.reshape(n, t, *out.shape[1:]).permute(0, 2, 3, 4, 1)


def _neuron_steps(layer: NirLayer, drive: torch.Tensor, reset: str) -> torch.Tensor:
    """Spikes (N, *shape, T) of CUBA neurons driven by ``drive``: I = (1-di) I + x;
    v = (1-dv) v + I, spike if v > threshold; after a spike ``reset`` (:data:`RESETS`)
    subtracts the threshold, zeroes v ("zero", Loihi) or zeroes the next step's v
    ("snntorch-zero")."""
    current = torch.zeros_like(drive[..., 0])
    voltage, spiked = torch.zeros_like(current), torch.zeros_like(current)
    out = torch.zeros_like(drive)
    for t in range(drive.shape[-1]):
        current = (1 - layer.current_decay) * current + drive[..., t]
        if reset == "subtract":  # snnTorch: mem = beta * mem + syn - reset * threshold
            voltage = (1 - layer.voltage_decay) * voltage + current - spiked * layer.threshold
        elif reset == "zero":  # Loihi: v = 0 after a spike, then it decays and integrates as usual
            voltage = (1 - layer.voltage_decay) * voltage * (1 - spiked) + current
        else:  # snnTorch reset_mechanism="zero": mem = (beta * mem + syn) - reset * (beta * mem + syn)
            voltage = ((1 - layer.voltage_decay) * voltage + current) * (1 - spiked)
        spiked = (voltage > layer.threshold).to(drive.dtype)
        out[..., t] = spiked
    return out


def _delayed(x: torch.Tensor) -> torch.Tensor:
    """x (N, ..., T) one step later: step 0 silent, the last step dropped."""
    return torch.cat([torch.zeros_like(x[..., :1]), x[..., :-1]], dim=-1)


def reference_forward(layers, spikes: np.ndarray, reset: str = SOURCE_RESET, layer_delay: bool = False) -> np.ndarray:
    """Output spikes (N, K, T) uint8 of the graph in float64, unquantized, for binary spikes
    (N, *input_shape, T), with ``reset`` one of :data:`RESETS`.

    ``layer_delay``: each layer's spikes arrive one step later, as on Loihi (and in SLAYER,
    whose blocks shift by one step to match it): an output spike caused by the input at
    step t then appears at t + (number of layers), and the window's last steps are cut.
    Without it (the source frameworks' semantics) spikes pass through all layers in one step.
    """
    if reset not in RESETS:
        raise ValueError(f"reset must be one of {RESETS}, got {reset!r}")
    x = torch.as_tensor(np.asarray(spikes), dtype=torch.float64)
    with torch.no_grad():
        for item in layers:
            if isinstance(item, NirFlatten):
                x = x.reshape(x.shape[0], -1, x.shape[-1])
            else:
                x = _neuron_steps(item, _synaptic_input(item, x), reset)
                x = _delayed(x) if layer_delay else x
    return x.numpy().astype(np.uint8)


def pad_for_delays(spikes: np.ndarray, n_layers: int) -> np.ndarray:
    """spikes (N, ..., T) with ``n_layers`` silent steps appended: (N, ..., T + n_layers).

    On Loihi each layer adds one step of delay, so the response to the last input steps of a
    T-step window leaves the network only after it; the extra steps let the device (and the
    twin) deliver the response to every input step.
    """
    spikes = np.asarray(spikes)
    return np.concatenate([spikes, np.zeros((*spikes.shape[:-1], n_layers), dtype=spikes.dtype)], axis=-1)


def measure_agreement(imported: NirImport, spikes: np.ndarray, profile: str = "loihi2-fixed",
                      source_reset: str | None = None, labels: np.ndarray | None = None,
                      reference_predictions: np.ndarray | None = None) -> dict[str, Any]:
    """How far the device's reset and quantization move the graph's predictions on ``spikes``.

    The source's prediction is the float graph (:func:`reference_forward`, ``source_reset``,
    default the source framework's, ``imported.source.reset``; no layer delay) on the T-step
    ``spikes``; the device's is the netx export replayed on ``profile``
    (:func:`harness.device.backend.replay`, under its watchdog) on the spikes padded by one
    silent step per layer (:func:`pad_for_delays`), so that the device's per-layer delays cut
    off no response. A prediction is the output neuron with the most spikes, -1 on a tie or
    silence (counted like any class). Fractions of samples:

    - ``prediction_agreement``: source vs device (reset and quantization together);
    - ``reset_agreement``: the float graph with ``source_reset`` vs with the device's reset;
    - ``quantization_agreement``: the float graph with the device's reset and delays vs the
      device (8-bit weights, 12-bit decays, fixed-point state);
    - ``twin_prediction_agreement``, ``twin_raster_exact``: the SLAYER twin vs the device;
    - ``device_silent_or_tied``: the device gives no prediction.

    Also: ``n``, the profile, the source framework and the resets compared, accuracies of
    source and device if ``labels`` are given, and with ``reference_predictions`` ((N,) ints:
    the source framework's own predictions, -1 for a tie or silence) ``reference_agreement``:
    {k, n, rate, ci95} of the device agreeing with them.
    """
    from ..device.backend import replay
    from ..stages.measure import offline_outputs, raster_exact
    from ..metrics import accuracy, predict
    from ..stats import wilson

    source_reset = source_reset or imported.source.reset
    padded = pad_for_delays(spikes, len(imported.spiking_layers))
    device = replay(imported.netx_path, padded, profile)
    twin = offline_outputs(imported.network, padded)
    source = predict(reference_forward(imported.layers, spikes, source_reset).sum(-1))
    hard = predict(reference_forward(imported.layers, spikes, DEVICE_RESET).sum(-1))
    hard_delayed = predict(reference_forward(imported.layers, padded, DEVICE_RESET, layer_delay=True).sum(-1))
    result = {"n": int(len(spikes)), "profile": device.profile.name, "source": imported.source.name,
              "source_reset": source_reset, "device_reset": DEVICE_RESET,
              "prediction_agreement": float(np.mean(source == device.predictions)),
              "reset_agreement": float(np.mean(source == hard)),
              "quantization_agreement": float(np.mean(hard_delayed == device.predictions)),
              "twin_prediction_agreement": float(np.mean(twin.predictions == device.predictions)),
              "twin_raster_exact": float(np.mean(raster_exact(device.rasters, twin.rasters))),
              "device_silent_or_tied": float(np.mean(device.predictions < 0))}
    if labels is not None:
        result.update(source_accuracy=accuracy(source, labels), device_accuracy=accuracy(device.predictions, labels))
    if reference_predictions is not None:
        k, n = int(np.sum(np.asarray(reference_predictions) == device.predictions)), int(len(spikes))
        result["reference_agreement"] = {"k": k, "n": n, "rate": k / n, "ci95": list(wilson(k, n))}
    return result


# ---------------------------------------------------------------- export


def _export_nodes(net: SpikingNetwork) -> tuple[dict, list[str]]:
    """NIR nodes of a harness network (a deep copy is run once to size it and to apply
    weight normalisation) and their order."""
    import nir

    spec = net.spec
    dt = spec.dt_ms * 1e-3
    net = copy.deepcopy(net).eval()
    x = torch.zeros((1, *spec.input_shape, spec.steps))
    shape = tuple(spec.input_shape)
    nodes: dict[str, Any] = {"input": nir.Input(input_type={"input": np.array(shape)})}
    order = ["input"]
    if spec.layers[0]["type"] == "dense" and len(shape) > 1:
        nodes["flatten_in"] = nir.Flatten(input_type={"input": np.array(shape)}, start_dim=0, end_dim=-1)
        order.append("flatten_in")
        x = x.reshape(1, -1, spec.steps)
    with torch.no_grad():
        for i, block in enumerate(net.blocks):
            in_shape, x = tuple(x.shape[1:-1]), block(x)
            out_shape = tuple(x.shape[1:-1])
            if not hasattr(block, "neuron"):
                nodes[f"{i}"] = nir.Flatten(input_type={"input": np.array(in_shape)}, start_dim=0, end_dim=-1)
                order.append(f"{i}")
                continue
            if getattr(block, "delay", None) is not None:
                raise NirGraphError(f"layer {i} has axonal delays, which NIR export does not support")
            nodes[f"{i}.synapse"] = _synapse_node(block, in_shape)
            nodes[f"{i}.neuron"] = _neuron_node(block.neuron, out_shape, dt, f"layer {i}")
            order += [f"{i}.synapse", f"{i}.neuron"]
    nodes["output"] = nir.Output(output_type={"output": np.array(out_shape)})
    return nodes, order + ["output"]


def _synapse_node(block, in_shape: tuple[int, ...]):
    """nir.Linear / nir.Conv2d with the block's weights as the device uses them (8-bit grid)."""
    import nir

    synapse = block.synapse
    weight = synapse.pre_hook_fx(synapse.weight).detach().double().numpy()
    if weight.ndim == 5 and weight.shape[2:] == (1, 1, 1):  # Dense: (out, in, 1, 1, 1)
        return nir.Linear(weight=weight.reshape(weight.shape[:2]))
    return nir.Conv2d(input_shape=in_shape[1:], weight=weight[..., 0], stride=tuple(synapse.stride[:2]),
                      padding=tuple(synapse.padding[:2]), dilation=tuple(synapse.dilation[:2]),
                      groups=int(synapse.groups), bias=np.zeros(weight.shape[0]))


def _neuron_node(neuron, shape: tuple[int, ...], dt: float, where: str):
    """nir.CubaLIF of a SLAYER CUBA neuron at step dt: tau = dt / decay (12-bit decays),
    r = tau_mem / dt and w_in = tau_syn / dt (unit input gains, snnTorch's convention)."""
    import nir

    current = float(torch.round(neuron.current_decay).item()) / P_SCALE
    voltage = float(torch.round(neuron.voltage_decay).item()) / P_SCALE
    if current == 0 or voltage == 0:
        raise NirGraphError(f"{where}: a decay of 0 (current {current}, voltage {voltage}) has no finite "
                            f"NIR time constant; NIR export needs decays > 0")
    full = lambda value: np.full(shape, value, dtype=np.float64)  # noqa: E731
    tau_syn, tau_mem = dt / current, dt / voltage
    return nir.CubaLIF(tau_syn=full(tau_syn), tau_mem=full(tau_mem), r=full(tau_mem / dt), v_leak=full(0.0),
                       v_threshold=full(float(neuron.threshold)), v_reset=full(0.0), w_in=full(tau_syn / dt))


def export_nir(run_dir_or_network: str | Path | SpikingNetwork, out_path: str | Path) -> Path:
    """Write a harness network as a NIR graph (atomically) and return ``out_path``.

    ``run_dir_or_network``: a run directory (its ``model/checkpoint.pt``) or a
    :class:`~harness.models.SpikingNetwork`. Weights are written as the device uses them
    (lava-dl's 8-bit grid, float), neurons as CubaLIF with dt = the spec's ``dt_ms``.
    Raises NirGraphError for axonal delays or zero decays (not expressible in NIR).
    """
    import nir

    net = run_dir_or_network
    if not isinstance(net, SpikingNetwork):
        net = open_run(run_dir_or_network).net
    nodes, order = _export_nodes(net)
    graph = nir.NIRGraph(nodes=nodes, edges=list(zip(order[:-1], order[1:])))
    with atomic_path(out_path) as tmp:
        nir.write(tmp, graph)
    return Path(out_path)
