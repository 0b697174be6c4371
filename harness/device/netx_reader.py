"""Read a netx HDF5 network (``net.export_hdf5``, lava-dl's exchange format) for replay.

Any CUBA network with ``input``, ``dense``, ``conv`` and ``flatten`` layers is accepted,
made by this project or by anyone with lava-dl, with or without an Input layer, with axonal
delays on dense layers. Everything else gets a :class:`~harness.errors.DeviceError` that
names the layer: pooling, average, concat, transposed convolution, recurrent and complex
dense layers, and non-CUBA neurons (sigma-delta, resonate-and-fire).

Shapes are SLAYER's: (C,) or (C, H, W) per layer. The file is read with netx's own
:class:`lava.lib.dl.netx.utils.NetDict`, so values are decoded exactly as netx decodes them.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

from ..errors import DeviceError

SUPPORTED_LAYERS = ("input", "dense", "conv", "flatten")
SUPPORTED_NEURONS = ("CUBA", "LOIHI")
_HINTS = {"pool": " (netx cannot replay pooling; use a strided convolution instead)",
          "dense_rec": " (recurrent layers are not supported)",
          "average": " (average layers are not supported)"}

#: netx's neuron for a dense layer stored without one: a non-leaky integrator that
#: practically never fires (lava.lib.dl.netx.hdf5.Network.create_dense).
NETX_DEFAULT_NEURON = {"type": "CUBA", "iDecay": 0, "vDecay": 4096, "vThMant": 1 << 17}


@dataclass(frozen=True)
class Layer:
    """One layer with neurons, as netx builds it.

    Attributes:
        index: the layer's number in the file (``layer/<index>``).
        kind: "input" (neurons fed directly by the input, no synapses), "dense" or "conv".
        shape: SLAYER shape of the layer's neurons: (C,) or (C, H, W).
        neuron: vThMant, iDecay, vDecay (integers, Loihi units).
        weight: integer weights as stored: (out, in) for dense, (out, in/groups, kh, kw)
            for conv; None for an input layer.
        bias: per-neuron (dense) or per-channel (conv) bias mantissa, or None.
        delay: per-output-neuron axonal delay in steps (dense only), or None.
        conv: stride, padding, dilation as (y, x) pairs and groups, for conv layers.
        flattened_input: a flatten layer precedes this dense layer.
    """

    index: int
    kind: str
    shape: tuple[int, ...]
    neuron: dict[str, int]
    weight: np.ndarray | None = None
    bias: np.ndarray | None = None
    delay: np.ndarray | None = None
    conv: dict | None = None
    flattened_input: bool = False

    @property
    def size(self) -> int:
        """Number of neurons."""
        return int(np.prod(self.shape))

    @property
    def name(self) -> str:
        return f"layer {self.index} ({self.kind} {'x'.join(map(str, self.shape))})"


@dataclass(frozen=True)
class NetworkDescription:
    """A replayable network: its input shape and its layers with neurons, in order."""

    path: Path
    input_shape: tuple[int, ...]
    layers: tuple[Layer, ...]

    @property
    def output_shape(self) -> tuple[int, ...]:
        return self.layers[-1].shape

    @property
    def n_outputs(self) -> int:
        return self.layers[-1].size

    @property
    def synaptic_depth(self) -> int:
        """Number of synapse layers between the input and the output (one step of delay each)."""
        return sum(layer.kind != "input" for layer in self.layers)


def _neuron(cfg, where: str) -> dict[str, int]:
    kind = cfg["type"]
    if kind not in SUPPORTED_NEURONS:
        raise DeviceError(f"{where}: neuron type '{kind}' cannot be replayed; the lava-sim backend "
                          f"supports CUBA (LOIHI) neurons only")
    graded = "gradedSpike" in cfg.keys() and bool(cfg.f["gradedSpike"][()])
    if graded or ("messageBits" in cfg.keys() and int(cfg.f["messageBits"][()]) > 0):
        raise DeviceError(f"{where}: graded spikes are not supported; only binary CUBA spikes")
    return {"vThMant": int(cfg["vThMant"]), "iDecay": int(cfg["iDecay"]), "vDecay": int(cfg["vDecay"])}


def _pair(value) -> tuple[int, int]:
    value = np.atleast_1d(np.asarray(value)).astype(int)
    return (int(value[0]), int(value[-1]))


def _conv_output(in_shape, weight, conv) -> tuple[int, int, int]:
    (kh, kw), (sy, sx), (py, px), (dy, dx) = weight.shape[2:4], conv["stride"], conv["padding"], conv["dilation"]
    h = (in_shape[1] + 2 * py - dy * (kh - 1) - 1) // sy + 1
    w = (in_shape[2] + 2 * px - dx * (kw - 1) - 1) // sx + 1
    return (weight.shape[0], h, w)


def _read_dense(cfg, index: int, in_shape, after_layer: bool, flattened: bool, where: str) -> Layer:
    if "weight/imag" in cfg.f:
        raise DeviceError(f"{where}: complex dense layers are not supported")
    out = int(np.prod(cfg["shape"]))
    weight = cfg["weight"].reshape(out, -1)
    if in_shape is not None and weight.shape[1] != int(np.prod(in_shape)):
        raise DeviceError(f"{where}: dense weight expects {weight.shape[1]} inputs but the layer before "
                          f"provides {int(np.prod(in_shape))} ({'x'.join(map(str, in_shape))})")
    if after_layer and len(in_shape) == 3 and not flattened:
        raise DeviceError(f"{where}: a dense layer after a {'x'.join(map(str, in_shape))} layer needs a "
                          f"flatten layer between them")
    neuron = _neuron(cfg["neuron"], where) if "neuron" in cfg.keys() else dict(NETX_DEFAULT_NEURON)
    delay = None
    if "delay" in cfg.keys():
        raw = np.asarray(cfg["delay"], dtype=np.int64).ravel()
        if raw.size not in (1, out):
            raise DeviceError(f"{where}: delay of shape {np.shape(cfg['delay'])} does not match the "
                              f"{out} neurons (only axonal delays, one per neuron, are supported)")
        delay = np.broadcast_to(raw, (out,)).copy()
        if delay.min() < 0 or delay.max() > 62:
            raise DeviceError(f"{where}: delays must lie in 0..62 steps (Loihi), found "
                              f"{delay.min()}..{delay.max()}")
    bias = np.asarray(cfg["bias"], dtype=np.int64).ravel() if "bias" in cfg.keys() else None
    return Layer(index, "dense", (out,), neuron, weight=weight, bias=bias, delay=delay,
                 flattened_input=flattened)


def _read_conv(cfg, index: int, in_shape, where: str) -> Layer:
    if in_shape is None:
        raise DeviceError(f"{where}: the network has no Input layer, so the input shape must be "
                          f"given (it comes from the spikes' (C, H, W))")
    if len(in_shape) != 3:
        raise DeviceError(f"{where}: a conv layer needs a (C, H, W) input, got {in_shape}")
    weight = cfg["weight"]
    weight = weight.reshape(weight.shape[:4])
    conv = {"stride": _pair(cfg["stride"]), "padding": _pair(cfg["padding"]),
            "dilation": _pair(cfg["dilation"]), "groups": int(np.asarray(cfg["groups"]).ravel()[0])}
    if weight.shape[1] * conv["groups"] != in_shape[0]:
        raise DeviceError(f"{where}: conv expects {weight.shape[1] * conv['groups']} input channels, "
                          f"the layer before provides {in_shape[0]}")
    shape = tuple(int(s) for s in cfg["shape"])
    expected = _conv_output(in_shape, weight, conv)
    if shape != expected:
        raise DeviceError(f"{where}: stored output shape {shape} does not follow from input {in_shape} "
                          f"(expected {expected})")
    if "delay" in cfg.keys():
        raise DeviceError(f"{where}: axonal delays on conv layers are not supported (netx ignores them)")
    bias = np.asarray(cfg["bias"], dtype=np.int64).ravel() if "bias" in cfg.keys() else None
    return Layer(index, "conv", shape, _neuron(cfg["neuron"], where), weight=weight, bias=bias, conv=conv)


def read_network(path: str | Path, input_shape: tuple[int, ...] | None = None) -> NetworkDescription:
    """Read and validate a netx HDF5 network.

    Args:
        path: the .net file.
        input_shape: SLAYER shape of one input frame, (C,) or (C, H, W); needed when the file
            has no Input layer and starts with a conv layer. When the file has an Input layer
            its shape must agree.
    Raises:
        DeviceError: unreadable file, unsupported layer or neuron (the message names the
            layer), or shapes that do not chain.
    """
    from lava.lib.dl.netx.utils import NetDict

    path = Path(path)
    if not path.exists():
        raise DeviceError(f"{path}: network file not found")
    try:
        handle = h5py.File(path, "r")
    except OSError as exc:
        raise DeviceError(f"{path}: not a readable netx HDF5 file ({exc})") from None
    with handle:
        if "layer" not in handle:
            raise DeviceError(f"{path}: no 'layer' group; not a netx network file")
        config = NetDict(f=handle)["layer"]
        return _read_layers(path, config, len(handle["layer"]), input_shape)


def _read_layers(path: Path, config, n_layers: int, input_shape) -> NetworkDescription:
    """The layers with neurons, in order, each checked against the shape of the layer before.

    The input shape is the Input layer's, else the first dense layer's inputs, else (a conv
    network without an Input layer) ``input_shape``.
    """
    declared, shape, layers, flatten = None, None, [], False
    for i in range(n_layers):
        cfg = config[i]
        kind = cfg["type"]
        where = f"{path} layer {i} ('{kind}')"
        if kind not in SUPPORTED_LAYERS:
            raise DeviceError(f"{where}: layer type '{kind}' cannot be replayed{_HINTS.get(kind, '')}; "
                              f"supported: {', '.join(SUPPORTED_LAYERS)}")
        if kind == "input":
            declared = shape = tuple(int(s) for s in cfg["shape"])
            if "neuron" in cfg.keys():
                layers.append(Layer(i, "input", shape, _neuron(cfg["neuron"], where)))
        elif kind == "flatten":
            flatten = True
        elif kind == "dense":
            after_layer = bool(layers) and layers[-1].kind != "input"
            layers.append(_read_dense(cfg, i, shape, after_layer, flatten, where))
            flatten = False
        else:
            if declared is None and not layers and input_shape is not None:
                declared = shape = tuple(int(s) for s in input_shape)
            layers.append(_read_conv(cfg, i, shape, where))
        if layers:
            shape = layers[-1].shape
    if not layers or layers[-1].kind == "input":
        raise DeviceError(f"{path}: no dense or conv layer to replay")
    if declared is None:
        declared = (int(layers[0].weight.shape[1]),)
    return NetworkDescription(path=path, input_shape=declared, layers=tuple(layers))


def check_input(network: NetworkDescription, spikes_shape: tuple[int, ...]) -> None:
    """DataError naming both shapes when samples of ``spikes_shape`` (N, ..., T) do not fit.

    A network that reads its input flattened (a dense first layer, or a 1-D Input layer)
    takes any frame with the right number of elements; a conv network needs (C, H, W) exactly.
    """
    from ..errors import DataError

    sample, expected = tuple(spikes_shape[1:-1]), tuple(network.input_shape)
    flat = network.layers[0].kind == "dense" or len(expected) == 1
    if sample != expected and not (flat and int(np.prod(sample)) == int(np.prod(expected))):
        raise DataError(f"input spikes of shape {tuple(spikes_shape)} (one sample: {sample} x T) do not match "
                        f"network {network.path}, which takes {expected} per time step")
