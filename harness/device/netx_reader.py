"""Read a netx HDF5 network (``net.export_hdf5``, lava-dl's exchange format) for replay.

Any CUBA network with ``input``, ``dense``, ``conv`` and ``flatten`` layers is accepted,
made by this project or by anyone with lava-dl, with or without an Input layer, with axonal
delays on dense layers. Everything else gets a :class:`~harness.errors.DeviceError` that
names the layer: pooling, average, concat, transposed convolution, recurrent and complex
dense layers, and non-CUBA neurons (sigma-delta, resonate-and-fire).

Shapes are SLAYER's: (C,) or (C, H, W) per layer. The file is first checked with h5py alone
(:func:`check_network_file`, no Lava import): every dataset a replayable layer needs must be
there with a usable type and shape, else a DeviceError names the file, the layer and the
dataset. It is then read with netx's own :class:`lava.lib.dl.netx.utils.NetDict`, so values
are decoded exactly as netx decodes them.
"""
from __future__ import annotations

from dataclasses import dataclass
import importlib.util
import sys
from pathlib import Path

import h5py
import numpy as np

from ..errors import ConfigError, DeviceError
from ..settings import check_size, max_elements

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
    if "delay" in cfg.keys():  # size and range checked by _check_dense
        delay = np.broadcast_to(np.asarray(cfg["delay"], dtype=np.int64).ravel(), (out,)).copy()
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
        DeviceError: unreadable file, a missing or ill-typed dataset (see
            :func:`check_network_file`), unsupported layer or neuron (the message names the
            layer), or shapes that do not chain.
    """
    path = Path(path)
    if not path.exists():
        raise DeviceError(f"{path}: network file not found")
    try:
        handle = h5py.File(path, "r")
    except OSError as exc:
        raise DeviceError(f"{path}: not a readable netx HDF5 file ({exc})") from None
    with handle:
        check_network_file(handle, path)
        config = _net_dict()(f=handle)["layer"]  # after the check: a broken file needs no Lava import
        return _read_layers(path, config, len(handle["layer"]), input_shape)


def _net_dict() -> type:
    """lava-dl's ``NetDict`` (h5py access with netx's decoding rules), without importing netx.

    ``lava.lib.dl.netx.utils`` itself needs only h5py and numpy, but importing it runs
    ``lava.lib.dl.netx``'s package module, which imports all of SLAYER, torch and torchvision
    (5-17 s). Where netx is already imported its module is used; otherwise the same file is
    loaded alone.
    """
    name = "lava.lib.dl.netx.utils"
    if name not in sys.modules:
        spec = importlib.util.find_spec("lava.lib.dl")
        if spec is None or not spec.submodule_search_locations:
            raise DeviceError("lava-dl is not installed: reading netx files needs it")
        path = Path(spec.submodule_search_locations[0]) / "netx" / "utils.py"
        alone = importlib.util.spec_from_file_location("harness.device._netx_utils", path)
        module = sys.modules.setdefault(alone.name, importlib.util.module_from_spec(alone))
        if not hasattr(module, "NetDict"):
            alone.loader.exec_module(module)
        return module.NetDict
    return sys.modules[name].NetDict


# ------------------------------------------------------------------ checking the file (h5py only)
MAX_DELAY = 62      # Loihi's axonal delay range, in steps
DECAY_UNIT = 4096   # Loihi's decays are fractions of 4096 (4096: full decay)

#: lava-dl's ``Block.export_hdf5`` writes a layer's 'type', then its 'shape'; before the first
#: forward pass SLAYER's neuron shape is still None, h5py cannot store it (TypeError: Object
#: dtype has no native HDF5 equivalent), and the export dies, leaving a file whose last layer
#: holds nothing but its 'type' (checked with lava-dl 0.6.0, dense and conv blocks).
HALF_WRITTEN_HINT = ("; lava-dl leaves such a half-written file when export_hdf5 is called before any "
                     "forward pass (SLAYER sets the neuron shapes on the first one): run the network once, "
                     "then export again")


def check_network_file(handle: h5py.File, path: Path) -> None:
    """Check, with h5py alone, that every layer of an open netx file has what the reader needs.

    Layers of unsupported types and neurons of unsupported kinds are left for the reader to
    refuse by name. A file that passes can be decoded by NetDict and :func:`_read_layers`
    without any error other than a DeviceError.

    Raises:
        DeviceError: naming ``path``, the layer and the missing or ill-typed dataset.
    """
    if "layer" not in handle:
        raise DeviceError(f"{path}: no 'layer' group; not a netx network file")
    layers = handle["layer"]
    if not isinstance(layers, h5py.Group):
        raise DeviceError(f"{path}: 'layer' is a dataset, not the group of layers; not a netx network file")
    names = set(layers)
    expected = {str(i) for i in range(len(names))}
    if names != expected:
        odd = sorted(names - expected, key=lambda n: (len(n), n))
        gaps = sorted(expected - names, key=int)
        raise DeviceError(f"{path}: layers must be numbered 0..{len(names) - 1}"
                          + (f"; missing layer {', '.join(gaps)}" if gaps else "")
                          + (f"; unexpected entries {', '.join(odd)}" if odd else ""))
    for i in range(len(names)):
        group = layers.get(str(i))  # None for a link to nothing
        if not isinstance(group, h5py.Group):
            what = "a dataset" if isinstance(group, h5py.Dataset) else "a link to nothing"
            raise DeviceError(f"{path} layer {i}: 'layer/{i}' is {what}, not a layer group")
        _check_layer(group, f"{path} layer {i}")


def _check_layer(group: h5py.Group, where: str) -> None:
    """Check one layer group (``where``: file and layer number, for messages)."""
    kind = _string(group, "type", where)
    where = f"{where} ('{kind}')"
    if kind not in SUPPORTED_LAYERS or kind == "flatten":
        return  # unsupported types are refused by name in _read_layers; netx ignores a flatten's datasets
    hint = HALF_WRITTEN_HINT if set(group) == {"type"} else ""
    shape = _positive_ints(group, "shape", where, lengths=(3,) if kind == "conv" else (1, 3), hint=hint)
    _within_limit(shape, "the layer's neurons", where)
    if kind == "input":
        if "neuron" in group:
            _check_neuron(group, where)
        return
    if kind == "dense" and isinstance(group.get("weight"), h5py.Group) and "imag" in group["weight"]:
        return  # complex dense: refused by name in _read_dense
    _check_declared_inputs(group, kind, shape, where)
    weight = _numbers(group, "weight", where)
    if kind == "dense":
        _check_dense(group, weight, int(np.prod(shape)), where)
    else:
        _check_conv(group, weight, shape, where)


def _check_declared_inputs(group: h5py.Group, kind: str, shape: tuple[int, ...], where: str) -> None:
    """The weight's declared shape against the layer's (before reading it): a dense weight holds
    neurons x ``inFeatures`` values and a conv kernel has ``inFeatures`` / groups input channels
    where the file states ``inFeatures`` (lava-dl writes it; netx itself goes by the weight)."""
    weight = _dataset(group, "weight", where)
    if "inFeatures" not in group or weight.ndim == 0:
        return
    inputs = int(_ints(group, "inFeatures", where, 1, sizes=(1,)).ravel()[0])
    if kind == "dense" and weight.size != int(np.prod(shape)) * inputs:
        raise DeviceError(f"{where}: 'weight' of shape {weight.shape} does not fit {int(np.prod(shape))} neurons x "
                          f"inFeatures {inputs}")
    if kind == "conv" and (weight.ndim < 2 or weight.shape[1] * _groups(group, where) != inputs):
        raise DeviceError(f"{where}: 'weight' of shape {weight.shape} does not fit inFeatures {inputs} "
                          f"(input channels / groups in its second axis)")


def _groups(group: h5py.Group, where: str) -> int:
    return int(_ints(group, "groups", where, 1, sizes=(1,)).ravel()[0]) if "groups" in group else 1


def _check_dense(group: h5py.Group, weight: np.ndarray, out: int, where: str) -> None:
    if weight.size == 0 or weight.size % out:
        raise DeviceError(f"{where}: 'weight' of shape {weight.shape} does not fit the layer's {out} neurons "
                          f"(expected ({out}, inputs))")
    if "neuron" in group:  # without one netx uses its default neuron (NETX_DEFAULT_NEURON)
        _check_neuron(group, where)
    if "delay" in group:
        delay = _numbers(group, "delay", where)
        if delay.size not in (1, out):
            raise DeviceError(f"{where}: delay of shape {delay.shape} does not match the {out} neurons "
                              f"(only axonal delays, one per neuron, are supported)")
        if (delay != np.round(delay)).any() or delay.min() < 0 or delay.max() > MAX_DELAY:
            raise DeviceError(f"{where}: delays must be whole numbers of steps in 0..{MAX_DELAY} (Loihi), "
                              f"found {delay.min()}..{delay.max()}")
    if "bias" in group:
        _sized(group, "bias", where, (1, out), "1 or one per neuron")


def _check_conv(group: h5py.Group, weight: np.ndarray, shape: tuple[int, ...], where: str) -> None:
    if weight.ndim < 4 or weight.size == 0 or int(np.prod(weight.shape[4:])) != 1:
        raise DeviceError(f"{where}: 'weight' of shape {weight.shape} is not a conv kernel "
                          f"(out channels, in channels / groups, height, width)")
    for name, least in (("stride", 1), ("padding", 0), ("dilation", 1)):
        _ints(group, name, where, least, sizes=(1, 2))
    _ints(group, "groups", where, 1, sizes=(1,))
    padding, dilation = _pair(group["padding"][()]), _pair(group["dilation"][()])
    extent = tuple(d * (k - 1) + 1 for d, k in zip(dilation, weight.shape[2:4]))
    if any(p >= e for p, e in zip(padding, extent)):
        raise DeviceError(f"{where}: 'padding' {list(padding)} must be below the kernel's extent {list(extent)} "
                          f"(more padding only adds outputs that see zeros)")
    _check_neuron(group, where)
    if "bias" in group:
        _sized(group, "bias", where, (1, shape[0], int(np.prod(shape))), "1, one per channel or one per neuron")


def _check_neuron(group: h5py.Group, where: str) -> None:
    """The 'neuron' group: its type, and for a CUBA neuron its integer parameters."""
    neuron = group.get("neuron")
    if not isinstance(neuron, h5py.Group):
        raise DeviceError(f"{where}: " + ("group 'neuron' is missing" if neuron is None
                                          else "'neuron' is a dataset, not a group"))
    kind = _string(neuron, "type", where, prefix="neuron/")
    if kind not in SUPPORTED_NEURONS:
        return  # refused by name in _neuron
    for name, most in (("vThMant", None), ("iDecay", DECAY_UNIT), ("vDecay", DECAY_UNIT)):
        _ints(neuron, name, where, 0, sizes=(1,), most=most, prefix="neuron/")
    for name in ("gradedSpike", "messageBits"):
        if name in neuron:
            _sized(neuron, name, where, (1,), "one number", prefix="neuron/")


def _dataset(group: h5py.Group, name: str, where: str, prefix: str = "", hint: str = "") -> h5py.Dataset:
    """``group[name]``, a dataset; the messages call it ``prefix + name`` (e.g. 'neuron/vDecay')."""
    item = group.get(name)
    if item is None:
        raise DeviceError(f"{where}: dataset '{prefix}{name}' is missing{hint}")
    if not isinstance(item, h5py.Dataset):
        raise DeviceError(f"{where}: '{prefix}{name}' is a group, not a dataset")
    _within_limit(item.shape or (), f"'{prefix}{name}'", where)  # the declared shape, before any read
    return item


def _within_limit(shape: tuple[int, ...], what: str, where: str) -> None:
    """DeviceError unless an array of ``shape`` is within the size limit (harness.settings.check_size)."""
    max_elements()  # a bad HARNESS_MAX_ELEMENTS is the environment's fault, not the file's
    try:
        check_size(shape, what)
    except ConfigError as exc:
        raise DeviceError(f"{where}: {exc}") from None


def _read(dataset: h5py.Dataset, label: str, where: str) -> np.ndarray:
    try:
        return np.asarray(dataset[()])
    except (OSError, ValueError, TypeError) as exc:  # damaged chunks, unknown filters
        raise DeviceError(f"{where}: cannot read '{label}' ({exc})") from None


def _string(group: h5py.Group, name: str, where: str, prefix: str = "") -> str:
    """An ASCII string dataset, scalar or 1-D (netx reads the first element), decoded."""
    dataset = _dataset(group, name, where, prefix)
    value = _read(dataset, prefix + name, where)
    if h5py.check_string_dtype(dataset.dtype) is None or value.ndim > 1 or value.size == 0:
        raise DeviceError(f"{where}: '{prefix}{name}' must be a string, found {dataset.dtype} of shape {dataset.shape}")
    first = value.ravel()[0]
    try:
        return first.decode("ascii") if isinstance(first, bytes) else str(first).encode("ascii").decode()
    except UnicodeError:
        raise DeviceError(f"{where}: '{prefix}{name}' is not an ASCII string") from None


def _numbers(group: h5py.Group, name: str, where: str, prefix: str = "", hint: str = "") -> np.ndarray:
    """A numeric dataset (bool, int or float) with finite values."""
    dataset = _dataset(group, name, where, prefix, hint)
    if dataset.dtype.kind not in "biuf":
        raise DeviceError(f"{where}: '{prefix}{name}' must hold numbers, found {dataset.dtype}")
    value = _read(dataset, prefix + name, where)
    if value.dtype.kind == "f" and not np.isfinite(value).all():
        raise DeviceError(f"{where}: '{prefix}{name}' holds values that are not finite (NaN or inf)")
    return value


def _sized(group, name: str, where: str, sizes: tuple[int, ...], what: str, prefix: str = "") -> np.ndarray:
    value = _numbers(group, name, where, prefix)
    if value.size not in sizes:
        raise DeviceError(f"{where}: '{prefix}{name}' must hold {what}, found shape {value.shape}")
    return value


def _ints(group, name: str, where: str, least: int, sizes: tuple[int, ...], most: int | None = None,
          prefix: str = "") -> np.ndarray:
    """A dataset of ``sizes`` integers in ``least..most`` (floats holding whole numbers pass, as netx casts)."""
    what = "one number" if sizes == (1,) else f"{' or '.join(map(str, sizes))} integers"
    value = _sized(group, name, where, sizes, what, prefix)
    if (value != np.round(value)).any() or (value < least).any() or (most is not None and (value > most).any()):
        span = f">= {least}" if most is None else f"in {least}..{most}"
        raise DeviceError(f"{where}: '{prefix}{name}' must be integers {span}, found {value.ravel().tolist()}")
    return value


def _positive_ints(group, name: str, where: str, lengths: tuple[int, ...], hint: str = "") -> tuple[int, ...]:
    """A 1-D dataset of ``lengths`` positive integers (a layer shape)."""
    value = _numbers(group, name, where, hint=hint)
    if value.ndim != 1 or len(value) not in lengths or (value != np.round(value)).any() or (value < 1).any():
        found = value.tolist() if value.ndim == 1 and len(value) <= 8 else f"shape {value.shape}"
        raise DeviceError(f"{where}: '{name}' must be {' or '.join(map(str, lengths))} positive integers, "
                          f"found {found}")
    return tuple(int(v) for v in value)


# ------------------------------------------------------------------ reading the checked file
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
