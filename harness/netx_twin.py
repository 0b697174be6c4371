"""A differentiable twin of a netx network, built from the file alone.

The forward pass is the device's integer arithmetic (Lava's bit-accurate ``fixed_pt`` models of
Loihi, as the ``loihi2-fixed`` replay runs them), step by step and layer by layer, each layer
with its own neuron parameters; the backward pass is a surrogate gradient. It is not made of
SLAYER blocks: SLAYER's forward differs from the device wherever bias is involved
(docs/device.md, "Bias").

Per layer (``d`` = its synaptic depth, 0 for a netx Input layer; ``tau`` = 1..T the device step
of a fresh network, whose output at ``tau`` is SLAYER's step ``t = tau - 1``):

- synapse (Lava ``Sparse``/``DelaySparse``): weights as the device holds them (netx's
  ``optimize_weight_bits``, then Lava's ``clip_weights`` and ``truncate_weights``), the integer
  sum of the weights of the spikes received at ``tau`` scaled by ``2**weight_exp`` (an
  arithmetic shift: floor for a negative exponent), delivered at ``tau + 1 + delay`` (axonal
  delay per neuron). A netx Input layer's neurons receive the input spikes themselves, at
  ``tau``;
- neuron (Lava ``LIF``/``LIFReset``, CUBA): with the ``interval`` sample mode, at
  ``tau % T == (d + 1) % T`` u = v = 0 (netx's reset at the step the sample's first input
  arrives); with ``fresh`` (netx's defaults) no reset; then
  ``u = sgn(u) floor(|u| (4096 - iDecay) / 4096) + (a << 6)`` wrapped to 24 bits,
  ``v = sgn(v) floor(|v| (4096 - vDecay) / 4096) + u + (bias << 6)`` clipped to 24 bits,
  spike where ``v > vThMant << 6``, and v = 0 where it spiked. No refractory period: netx's
  ``LIFReset`` has none (the file's ``refDelay`` is ignored on the device too).

Gradient: every integer operation passes the gradient straight through its real-valued
version (decay as multiplication by ``1 - decay/4096``, shifts as scaling, wrap and clip as
identity); the spike's derivative is SLAYER's exponential surrogate
``exp(-|v - theta| / theta) / theta`` (width = the layer's threshold); the reset is not
differentiated. Arithmetic is float64 holding exact integers (|values| < 2**37).

Internally neurons are in Lava's order (:mod:`harness.device.lowering`); inputs and outputs are
in SLAYER's layout, so the twin presents what :class:`harness.models.SpikingNetwork` presents to
the attack loop: ``forward``, ``forward_layers``, ``spec`` (input shape, steps, classes, loss)
and ``spiking_blocks`` (views through which ``attack_threshold`` sets a layer's threshold; no
SLAYER synapses for :func:`harness.attacks.invariant.batch_invariant` to patch: the twin's
sparse products are per sample already).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .device.lava_sim import FRESH, INTERVAL, SAMPLE_MODES
from .errors import ConfigError
from .models import DEFAULT_TRAINING, ModelSpec
from .store import read_torch

STATE_SHIFT = 6          # Loihi left-shifts synaptic input, bias and threshold by 6 bits
DECAY_UNIT = 4096        # decays are 12-bit fractions
STATE_LIMIT = 2 ** 23    # u and v are 24-bit signed
CHECKPOINT_KIND = "netx-twin"
CHECKPOINT_VERSION = 2  # 2: arrays stored as tensors (read with weights_only=True) and the sample mode


@dataclass
class TwinLayer:
    """One layer with neurons, in device units, neurons in Lava's order.

    Attributes:
        name: e.g. "layer 0 (dense 128)".
        kind: "input", "dense" or "conv".
        shape: SLAYER shape of the layer's neurons, (C,) or (C, H, W).
        depth: synapse layers from the input up to and including this one.
        weight_indices, weight_values: the (size, inputs) device weights as sparse COO, Lava
            order: (2, nnz) int64 (row, column) and (nnz,) int64; None for an input layer.
        inputs: neurons of the layer before (0 for an input layer).
        weight_exp: the synapse's weight exponent (sum scaled by 2**weight_exp).
        delay: (size,) int64 axonal delay in steps, or None.
        bias: (size,) int64 bias mantissa (exponent 6), zeros when the file has none.
        threshold, current_decay, voltage_decay: vThMant, iDecay, vDecay (Loihi units).
    """

    name: str
    kind: str
    shape: tuple[int, ...]
    depth: int
    weight_indices: np.ndarray | None
    weight_values: np.ndarray | None
    inputs: int
    weight_exp: int
    delay: np.ndarray | None
    bias: np.ndarray
    threshold: int
    current_decay: int
    voltage_decay: int

    @property
    def size(self) -> int:
        return int(np.prod(self.shape))

    def to_dict(self) -> dict:
        return dict(self.__dict__)


def device_weights(matrix) -> tuple[np.ndarray, np.ndarray, int]:
    """The weights a Lava ``Sparse`` process of the replay holds for one copy of ``matrix``.

    Args:
        matrix: (out, in) int64 CSR matrix as lowered (:func:`harness.device.lowering.lower`).
    Returns:
        indices (2, nnz) int64 (row, column), values (nnz,) int64 after Lava's clipping and
        truncation, and the weight exponent.
    """
    from lava.utils.weightutils import clip_weights, determine_sign_mode, truncate_weights

    from .device.lava_sim import scaled_weights

    scaled, bits, exponent = scaled_weights(matrix)
    sign_mode = determine_sign_mode(scaled)  # as Sparse does when given no sign mode
    held = truncate_weights(clip_weights(scaled, sign_mode, num_bits=8), sign_mode, bits).tocoo()
    return np.stack([held.row, held.col]).astype(np.int64), held.data.astype(np.int64), int(exponent)


def twin_layers(network_file: str | Path, input_shape: tuple[int, ...] | None = None) -> tuple[list[TwinLayer], tuple]:
    """Read ``network_file`` (:func:`harness.device.netx_reader.read_network`, which refuses
    what the device replay cannot run, naming the layer) into twin layers.

    Returns:
        the layers and the network's input shape (SLAYER's).
    """
    from .device.lowering import lower
    from .device.netx_reader import read_network

    network = read_network(network_file, input_shape)
    layers, depth = [], 0
    for lowered in lower(network):
        layer = lowered.layer
        indices = values = None
        exponent, inputs = 0, 0
        if lowered.weight is not None:
            depth += 1
            indices, values, exponent = device_weights(lowered.weight)
            inputs = lowered.weight.shape[1]
        bias = np.zeros(layer.size, dtype=np.int64) if lowered.bias is None else lowered.bias.astype(np.int64)
        delay = None if lowered.delay is None or not lowered.delay.any() else lowered.delay.astype(np.int64)
        layers.append(TwinLayer(name=layer.name, kind=layer.kind, shape=tuple(layer.shape), depth=depth,
                                weight_indices=indices, weight_values=values, inputs=inputs, weight_exp=exponent,
                                delay=delay, bias=bias, threshold=int(layer.neuron["vThMant"]),
                                current_decay=int(layer.neuron["iDecay"]),
                                voltage_decay=int(layer.neuron["vDecay"])))
    return layers, tuple(network.input_shape)


class _Spike(torch.autograd.Function):
    """Forward: v > theta (the device's strict comparison). Backward: exp(-|v - theta|/theta)/theta."""

    @staticmethod
    def forward(ctx, voltage: torch.Tensor, theta: float) -> torch.Tensor:
        ctx.save_for_backward(voltage)
        ctx.theta = theta
        return (voltage > theta).to(voltage.dtype)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        (voltage,) = ctx.saved_tensors
        width = max(ctx.theta, 1.0)
        return grad * torch.exp(-(voltage - ctx.theta).abs() / width) / width, None


def _exact(smooth: torch.Tensor, exact: torch.Tensor) -> torch.Tensor:
    """``exact`` in the forward pass, the gradient of ``smooth`` in the backward pass."""
    return smooth + (exact - smooth).detach()


def _decay(state: torch.Tensor, decay: int) -> torch.Tensor:
    """Lava's fixed-point decay sgn(x) floor(|x| (4096 - decay) / 4096), straight-through."""
    smooth = state * ((DECAY_UNIT - decay) / DECAY_UNIT)
    return _exact(smooth, torch.sign(smooth.detach()) * torch.floor(smooth.detach().abs()))


def _wrap(current: torch.Tensor) -> torch.Tensor:
    """Lava's 24-bit wrap of the current (identity for the gradient)."""
    value = current.detach()
    wrapped = torch.where(value > STATE_LIMIT, value - 2 * STATE_LIMIT, value)
    wrapped = torch.where(wrapped <= -STATE_LIMIT, value + 2 * STATE_LIMIT, wrapped)
    return _exact(current, wrapped)


def _clip(voltage: torch.Tensor) -> torch.Tensor:
    return _exact(voltage, voltage.detach().clamp(-STATE_LIMIT + 1, STATE_LIMIT - 1))


def _shift_time(x: torch.Tensor, steps: int) -> torch.Tensor:
    """(N, n, T) delayed by ``steps`` along time (zeros enter at the start)."""
    if steps == 0:
        return x
    if steps >= x.shape[-1]:
        return torch.zeros_like(x)
    return torch.nn.functional.pad(x[..., :-steps], (steps, 0))


class _NeuronView:
    """A twin layer's threshold as SLAYER's neuron presents it (``_threshold`` in units of
    ``w_scale`` = 64: vThMant / 64), so code written for SLAYER blocks can override it.
    ``tau_rho`` is stored and ignored: the twin's surrogate width follows the threshold."""

    w_scale = 1 << STATE_SHIFT

    def __init__(self, layer: TwinLayer):
        self._layer = layer
        self.tau_rho = 1.0

    @property
    def _threshold(self) -> float:
        return self._layer.threshold / self.w_scale

    @_threshold.setter
    def _threshold(self, value: float) -> None:
        self._layer.threshold = int(round(value * self.w_scale))


class _BlockView:
    def __init__(self, layer: TwinLayer):
        self.neuron, self.synapse = _NeuronView(layer), None


class NetxTwin(torch.nn.Module):
    """The device's arithmetic as a torch module: input (N, *input_shape, T) -> spikes (N, K, T).

    Build it with :func:`twin_from_netx` (from a netx file) or :func:`load_twin` (a checkpoint).
    """

    def __init__(self, layers: list[TwinLayer], input_shape: tuple[int, ...], steps: int, dt_ms: float,
                 name: str, training: dict | None = None, sample_mode: str = "fresh"):
        super().__init__()
        from .device.lowering import lava_order

        if steps < 1:
            raise ConfigError(f"{name}: steps must be >= 1, got {steps}")
        if sample_mode not in SAMPLE_MODES:
            raise ConfigError(f"{name}: sample mode must be one of {', '.join(SAMPLE_MODES)}, got {sample_mode!r}")
        self.sample_mode = sample_mode
        self.layers = layers
        self.input_shape = tuple(input_shape)
        self.steps = int(steps)
        self.dt_ms = float(dt_ms)
        self.spec = ModelSpec(name=name, dataset="imported", steps=self.steps, dt_ms=self.dt_ms,
                              input_shape=self.input_shape, neuron={},
                              layers=[{"type": layer.kind, "out": layer.size} for layer in layers],
                              training=dict(DEFAULT_TRAINING, **(training or {})),
                              description=f"netx twin of {name}")
        first_reads_flat = layers[0].kind == "dense" or len(self.input_shape) != 3
        self._input_order = torch.as_tensor(np.arange(int(np.prod(self.input_shape))) if first_reads_flat
                                            else lava_order(self.input_shape))
        self._slayer_order = [torch.as_tensor(np.argsort(lava_order(layer.shape))) for layer in layers]
        self._weights = [None if layer.weight_values is None else torch.sparse_coo_tensor(
            torch.as_tensor(layer.weight_indices), torch.as_tensor(layer.weight_values, dtype=torch.float64),
            (layer.size, layer.inputs)).coalesce() for layer in layers]

    @property
    def spiking_blocks(self) -> list["_BlockView"]:
        """One view per layer, enough for :func:`harness.models.attack_threshold` (it sets the
        threshold through ``block.neuron``); ``synapse`` is None, so
        :func:`harness.attacks.invariant.batch_invariant` has no SLAYER synapse to patch."""
        return [_BlockView(layer) for layer in self.layers]

    @property
    def n_classes(self) -> int:
        return self.layers[-1].size

    def _synapse(self, index: int, spikes: torch.Tensor) -> torch.Tensor:
        """(N, size, T) input current the layer's neurons receive at each step (see module doc)."""
        layer, weight = self.layers[index], self._weights[index]
        if weight is None:
            return spikes  # an Input layer's neurons receive the input itself, at the same step
        n, inputs, steps = spikes.shape
        summed = torch.sparse.mm(weight, spikes.permute(1, 0, 2).reshape(inputs, n * steps))
        summed = summed.reshape(layer.size, n, steps).permute(1, 0, 2)
        scaled = summed * 2.0 ** layer.weight_exp
        if layer.weight_exp < 0:  # an arithmetic right shift: floor
            scaled = _exact(scaled, torch.floor(scaled.detach()))
        if layer.delay is None:
            return _shift_time(scaled, 1)
        delay = torch.as_tensor(layer.delay)
        out = torch.zeros_like(scaled)
        for value in torch.unique(delay).tolist():
            mask = (delay == value).to(scaled.dtype).view(1, -1, 1)
            out = out + mask * _shift_time(scaled, 1 + int(value))
        return out

    def _neurons(self, index: int, current_in: torch.Tensor) -> torch.Tensor:
        """(N, size, T) spikes of the layer's CUBA neurons driven by ``current_in``."""
        layer = self.layers[index]
        n, size, steps = current_in.shape
        theta = float(layer.threshold << STATE_SHIFT)
        bias = torch.as_tensor(layer.bias, dtype=torch.float64).view(1, -1) * 2 ** STATE_SHIFT
        reset_phase = (layer.depth + 1) % steps
        u = v = current_in.new_zeros((n, size))
        out = []
        for i in range(steps):
            if self.sample_mode == INTERVAL and (i + 1) % steps == reset_phase:
                u = v = current_in.new_zeros((n, size))
            u = _wrap(_decay(u, layer.current_decay) + current_in[..., i] * 2 ** STATE_SHIFT)
            v = _clip(_decay(v, layer.voltage_decay) + u + bias)
            spike = _Spike.apply(v, theta)
            v = v * (1 - spike.detach())
            out.append(spike)
        return torch.stack(out, dim=-1)

    def _run(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Every layer's spikes (N, size, T), float64, Lava order."""
        if tuple(x.shape[1:]) != (*self.input_shape, self.steps) and not (
                x.ndim >= 3 and int(np.prod(x.shape[1:-1])) == int(np.prod(self.input_shape))
                and x.shape[-1] == self.steps):
            raise ConfigError(f"{self.spec.name}: input of shape {tuple(x.shape)} does not fit; the twin takes "
                              f"(N, {', '.join(map(str, self.input_shape))}, {self.steps})")
        spikes = x.to(torch.float64).reshape(len(x), -1, x.shape[-1])[:, self._input_order]
        outs = []
        for index in range(len(self.layers)):
            spikes = self._neurons(index, self._synapse(index, spikes))
            outs.append(spikes)
        return outs

    def _slayer_layout(self, index: int, spikes: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        layer = self.layers[index]
        return spikes[:, self._slayer_order[index]].reshape(len(spikes), *layer.shape, spikes.shape[-1]).to(dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Output spikes (N, K, T), SLAYER's channel order (a 3-D output layer flattened), in the
        dtype of ``x``."""
        return self._run(x)[-1][:, self._slayer_order[-1]].to(x.dtype)

    def forward_layers(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Every layer's spikes, first to last, each (N, *shape, T) in SLAYER's layout; the last,
        the output, as (N, K, T) like :meth:`forward`."""
        outs = self._run(x)
        layers = [self._slayer_layout(i, out, x.dtype) for i, out in enumerate(outs[:-1])]
        return layers + [outs[-1][:, self._slayer_order[-1]].to(x.dtype)]

    def checkpoint(self) -> dict:
        """Everything :func:`load_twin` needs (plain arrays and numbers; no Lava needed to load)."""
        return {"kind": CHECKPOINT_KIND, "version": CHECKPOINT_VERSION, "name": self.spec.name,
                "input_shape": list(self.input_shape), "steps": self.steps, "dt_ms": self.dt_ms,
                "sample_mode": self.sample_mode, "training": dict(self.spec.training),
                "layers": [{key: _loadable(value) for key, value in layer.to_dict().items()} for layer in self.layers]}


def _loadable(value):
    """``value`` as ``torch.load(weights_only=True)`` reads it: numpy arrays as tensors, numpy
    scalars as Python numbers (the checkpoint must hold no pickled objects)."""
    if isinstance(value, np.ndarray):
        return torch.from_numpy(value)
    return value.item() if isinstance(value, np.generic) else value


def _numpy(value):
    """The inverse of :func:`_loadable` for arrays: tensors back to numpy."""
    return value.numpy() if isinstance(value, torch.Tensor) else value


def twin_from_netx(network_file: str | Path, steps: int, dt_ms: float = 1.0, input_shape=None,
                   name: str | None = None, training: dict | None = None, sample_mode: str = FRESH) -> NetxTwin:
    """The twin of a netx file.

    Args:
        network_file: netx HDF5 network.
        steps: T, time steps per sample (the file does not say).
        dt_ms: duration of one step in ms (recorded; the arithmetic does not use it).
        input_shape: SLAYER shape of one input frame when the file cannot tell (a conv network
            without an Input layer).
        name: the model's name (default: the file's stem).
        training: loss settings for attacks (default: harness.models.DEFAULT_TRAINING, i.e.
            spike-rate with true rate 0.2 and false rate 0.03).
        sample_mode: ``"fresh"`` (netx's defaults: no reset) or ``"interval"`` (netx's reset at
            the step a sample reaches each layer), as the replay it stands for.
    Raises:
        DeviceError: a layer or neuron the device replay (hence the twin) does not support.
    """
    layers, shape = twin_layers(network_file, input_shape)
    return NetxTwin(layers, shape, steps, dt_ms, name or Path(network_file).stem, training, sample_mode).eval()


def load_twin(checkpoint_path: str | Path) -> NetxTwin:
    """Rebuild a twin from the checkpoint :func:`harness.interop.netx_import.import_netx` wrote.

    Raises:
        StageMissing: no file; DataError: not a torch file of tensors and plain values (names
            the file); ConfigError: not a twin checkpoint, or another version.
    """
    from .errors import StageMissing

    path = Path(checkpoint_path)
    if not path.exists():
        raise StageMissing(f"{path} does not exist; import the network first (harness.interop.import_netx)")
    state = read_torch(path, "netx twin checkpoint", "re-import the network with: harness import")
    if not isinstance(state, dict) or state.get("kind") != CHECKPOINT_KIND:
        raise ConfigError(f"{path}: not a netx twin checkpoint (kind {state.get('kind') if isinstance(state, dict) else None!r}, "
                          f"expected {CHECKPOINT_KIND!r})")
    if state.get("version") != CHECKPOINT_VERSION:
        raise ConfigError(f"{path}: twin checkpoint version {state.get('version')!r}, this harness reads "
                          f"{CHECKPOINT_VERSION}; import the network again")
    layers = [TwinLayer(**{**{key: _numpy(value) for key, value in layer.items()}, "shape": tuple(layer["shape"])})
              for layer in state["layers"]]
    return NetxTwin(layers, tuple(state["input_shape"]), state["steps"], state["dt_ms"], state["name"],
                    state["training"], state["sample_mode"]).eval()
