"""SLAYER networks built from ``models/*.toml`` specs.

A spec names the data (data set, T, dt, input shape), the CUBA neuron parameters, the
surrogate gradient, the layers and the training settings. Layers are lava-dl
``slayer.block.cuba`` blocks: ``dense``, ``conv`` (use ``stride`` instead of pooling: netx
cannot replay pool layers) and ``flatten``. Weights are quantized by the blocks' default
8-bit hook, so the netx export replays bit-exactly on Loihi 2 fixed point.

Surrogate gradients:
- ``slayer``: SLAYER's default (a decaying exponential of |v - theta| with width
  ``tau_grad * threshold``);
- ``rectangular``: 1/width inside |v - theta| < width/2 and exactly 0 outside, the
  reference model of the attack paper (../shared/notes/attack-spec.md, "Reference model");
- ``pdsg``: PDSG (ryime/PDSG-SDA, CVPR 2025), a Gaussian pdf of v - theta with mean 0.5 sigma
  and std sigma, sigma = the std of the layer's membrane potential per row over time and
  neurons (per row and channel for conv): :class:`_PdsgSpike`. Also an attack-time choice
  (:func:`attack_surrogate`) for a network trained with another surrogate.
"""
from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import torch

from .config import check_unknown, load_toml, require_keys, resolve_spec
from .errors import ConfigError
from .settings import COUNT, MODEL_RANGES, check_numbers, check_size
from .store import atomic_h5, read_torch

LAYER_TYPES = ("dense", "conv", "flatten")
LOSSES = ("spike-rate", "cross-entropy")
#: The energy ("sponge") objectives: hidden-layer synaptic operations, alone or with the prediction
#: kept (harness/attacks/energy.py; they need the network, not only its spec).
ENERGY_LOSSES = ("energy", "energy-stealthy")
#: Losses an attack may ascend/descend: the training losses, the C&W-style count margin and the
#: energy objectives.
ATTACK_LOSSES = LOSSES + ("margin",) + ENERGY_LOSSES
#: How the attack-time threshold override treats SLAYER's surrogate width tau_rho.
THRESHOLD_MODES = ("scale-surrogate", "fixed-surrogate")
SURROGATES = ("slayer", "rectangular", "pdsg")
#: Surrogates an attack may put in place of the model's own for its gradient passes.
ATTACK_SURROGATES = ("model", "pdsg")


@dataclass
class ModelSpec:
    """A parsed model spec (see models/*.toml for the documented keys)."""

    name: str
    dataset: str
    steps: int
    dt_ms: float
    input_shape: tuple[int, ...]
    neuron: dict[str, float]
    layers: list[dict[str, Any]]
    surrogate: str = "slayer"
    surrogate_width: float = 1.0
    penultimate_threshold: float | None = None
    holdout: int = 0
    training: dict[str, Any] = field(default_factory=dict)
    description: str = ""

    @property
    def n_classes(self) -> int:
        return int(self.layers[-1]["out"])

    @property
    def input_size(self) -> int:
        """Elements of one sample: prod(input_shape) x steps."""
        return math.prod(self.input_shape) * self.steps

    @property
    def adversarial(self) -> dict[str, Any] | None:
        """The validated ``[training.adversarial]`` settings, None for ordinary training."""
        return self.training.get("adversarial")

    def to_dict(self) -> dict[str, Any]:
        """The spec as a TOML/JSON-friendly dict (round-trips through :func:`spec_from_dict`)."""
        return {"name": self.name, "description": self.description,
                "data": {"dataset": self.dataset, "steps": self.steps, "dt_ms": self.dt_ms,
                         "input_shape": list(self.input_shape), **({"holdout": self.holdout} if self.holdout else {})},
                "neuron": dict(self.neuron, penultimate_threshold=self.penultimate_threshold)
                if self.penultimate_threshold is not None else dict(self.neuron),
                "surrogate": {"kind": self.surrogate, "width": self.surrogate_width},
                "layers": [dict(layer) for layer in self.layers], "training": dict(self.training)}


#: Keys a [[layers]] table may have (docs/models.md).
LAYER_KEYS = {"type", "out", "kernel", "stride", "padding", "weight_norm", "delay", "weight_scale", "neuron"}
#: Neuron parameters a layer may set for itself, over the spec's [neuron] table.
LAYER_NEURON_KEYS = {"threshold", "current_decay", "voltage_decay", "tau_grad", "scale_grad"}

#: Adversarial training's settings (``[training.adversarial]``, harness/adversarial_training.py) and
#: their defaults; ``max_flips`` (the flip budget of each crafted row) has none.
ADVERSARIAL_DEFAULTS = {"share": 0.5, "iterations": 3, "start_epoch": 0}
ADVERSARIAL_KEYS = {"max_flips", *ADVERSARIAL_DEFAULTS}

DEFAULT_TRAINING = {"loss": "spike-rate", "true_rate": 0.2, "false_rate": 0.03, "optimizer": "adam",
                    "lr": 0.001, "epochs": 20, "batch_size": 32}


def spec_from_dict(raw: dict[str, Any], where: str) -> ModelSpec:
    """Validate a raw spec dict (from TOML) into a ModelSpec; errors name ``where``."""
    check_unknown(raw, {"name", "description", "data", "neuron", "surrogate", "layers", "training"}, where)
    require_keys(raw, ["name", "data", "neuron", "layers"], where)
    data = raw["data"]
    require_keys(data, ["dataset", "steps", "input_shape"], f"{where} [data]")
    for table in ("data", "neuron", "surrogate", "training"):
        check_numbers(raw.get(table, {}), MODEL_RANGES[table], f"{where} [{table}]")
    shape = data["input_shape"]
    if not isinstance(shape, list) or len(shape) not in (1, 3) or not all(COUNT.admits(s) for s in shape):
        raise ConfigError(f"{where} [data]: 'input_shape' must be [C, H, W] or [inputs] of integers >= 1, got {shape!r}")
    check_size((*shape, data["steps"]), f"{where} [data]: one sample ('input_shape' x 'steps')")
    holdout = data.get("holdout", 0)
    neuron = dict(raw["neuron"])
    require_keys(neuron, ["threshold", "current_decay", "voltage_decay"], f"{where} [neuron]")
    check_unknown(neuron, {"threshold", "current_decay", "voltage_decay", "tau_grad", "scale_grad",
                           "penultimate_threshold", "dropout"}, f"{where} [neuron]")
    penultimate = neuron.pop("penultimate_threshold", None)
    surrogate = raw.get("surrogate", {})
    kind = surrogate.get("kind", "slayer")
    if kind not in SURROGATES:
        raise ConfigError(f"{where} [surrogate]: kind '{kind}' unknown; available: {', '.join(SURROGATES)}")
    layers = raw["layers"]
    if not layers:
        raise ConfigError(f"{where}: no [[layers]]")
    for i, layer in enumerate(layers):
        if not isinstance(layer, dict):
            raise ConfigError(f"{where} layer {i}: must be a table, got {layer!r}")
        check_unknown(layer, LAYER_KEYS, f"{where} layer {i}")
        if not isinstance(layer.get("neuron", {}), dict):
            raise ConfigError(f"{where} layer {i}: 'neuron' must be a table of neuron parameters")
        check_unknown(layer.get("neuron", {}), LAYER_NEURON_KEYS, f"{where} layer {i} neuron")
        check_numbers(layer, MODEL_RANGES["layers"], f"{where} layer {i}")
        check_numbers(layer.get("neuron", {}), MODEL_RANGES["neuron"], f"{where} layer {i} neuron")
        kind_i = layer.get("type")
        if kind_i not in LAYER_TYPES:
            raise ConfigError(f"{where} layer {i}: type {kind_i!r} unknown; available: {', '.join(LAYER_TYPES)}"
                              + (" (netx cannot replay pooling: use a strided conv)" if kind_i == "pool" else ""))
        if kind_i != "flatten":
            require_keys(layer, ["out"], f"{where} layer {i}")
        if kind_i == "conv":
            require_keys(layer, ["kernel"], f"{where} layer {i}")
            if layer.get("padding", 0) >= layer["kernel"]:
                raise ConfigError(f"{where} layer {i}: 'padding' {layer['padding']} must be below 'kernel' "
                                  f"{layer['kernel']} (more padding only adds outputs that see zeros)")
    if layers[-1]["type"] != "dense":
        raise ConfigError(f"{where}: the last layer must be dense (the class read-out)")
    _check_reachable(int(data["steps"]), sum(layer["type"] != "flatten" for layer in layers), where)
    _check_layer_sizes(list(shape), layers, where)
    training = dict(DEFAULT_TRAINING, **raw.get("training", {}))
    if "adversarial" in training:
        check_numbers(training["adversarial"], {}, f"{where} [training.adversarial]")  # a table
        training["adversarial"] = adversarial_settings(
            training["adversarial"], math.prod(shape) * data["steps"],
            lambda key: f"{where} [training.adversarial]: '{key}'")
    if training.get("lr_schedule", "constant") not in ("constant", "cosine"):
        raise ConfigError(f"{where} [training]: lr_schedule '{training['lr_schedule']}' unknown; available: constant, cosine")
    if training["loss"] not in LOSSES:
        raise ConfigError(f"{where} [training]: loss '{training['loss']}' unknown; available: {', '.join(LOSSES)}")
    return ModelSpec(name=raw["name"], description=raw.get("description", ""), dataset=data["dataset"],
                     steps=int(data["steps"]), dt_ms=float(data.get("dt_ms", 1.0)),
                     input_shape=tuple(int(s) for s in data["input_shape"]), neuron=neuron,
                     layers=[dict(layer) for layer in layers], surrogate=kind,
                     surrogate_width=float(surrogate.get("width", 1.0)),
                     penultimate_threshold=None if penultimate is None else float(penultimate),
                     holdout=holdout, training=training)


def adversarial_settings(table: Any, input_size: int, name_of) -> dict[str, Any]:
    """``[training.adversarial]`` (or the ``harness train --adv-*`` flags) validated, with defaults filled in.

    Args:
        table: the raw settings, a dict (keys :data:`ADVERSARIAL_KEYS`).
        input_size: elements of one sample (inputs x steps), the largest flip budget.
        name_of: a key as the error names it (``"spec.toml [training.adversarial]: 'share'"``, ``"--adv-share"``).
    Raises:
        ConfigError: one line naming the key: an unknown key, a value outside its range
            (:data:`harness.settings.MODEL_RANGES`), no ``max_flips``, or ``max_flips`` above ``input_size``.
    """
    unknown = sorted(set(table) - ADVERSARIAL_KEYS)
    if unknown:
        raise ConfigError(f"{name_of(unknown[0])} is unknown; allowed: {', '.join(sorted(ADVERSARIAL_KEYS))}")
    for key, allowed in MODEL_RANGES["training.adversarial"].items():
        if key in table:
            allowed.check(table[key], name_of(key))
    if "max_flips" not in table:
        raise ConfigError(f"{name_of('max_flips')} is required: the flip budget (L0) of each adversarial row")
    if table["max_flips"] > input_size:
        raise ConfigError(f"{name_of('max_flips')} must be at most the input size ({input_size:,} elements per "
                          f"sample), got {table['max_flips']}")
    return dict(ADVERSARIAL_DEFAULTS, **table)


def _check_layer_sizes(shape: list[int], layers: list[dict[str, Any]], where: str) -> None:
    """Refuse a layer whose weights or neurons exceed the size limit (:func:`harness.settings.check_size`),
    or a conv whose output would be empty, before any network is built.

    Args:
        shape: the input shape (C, H, W) or (inputs,); layers: the validated ``[[layers]]`` tables.
    """
    for i, layer in enumerate(layers):
        if layer["type"] == "flatten":
            shape = [math.prod(shape)]
        elif layer["type"] == "dense":
            check_size((layer["out"], math.prod(shape)), f"{where} layer {i}: the weights")
            shape = [layer["out"]]
        else:
            k, s, p = layer["kernel"], layer.get("stride", 1), layer.get("padding", 0)
            check_size((layer["out"], shape[0], k, k), f"{where} layer {i}: the weights")
            shape = [layer["out"]] + [(d + 2 * p - k) // s + 1 for d in shape[1:]]
            if min(shape) < 1:
                raise ConfigError(f"{where} layer {i}: a {k}x{k} kernel leaves no output of its input (shape {shape})")
        check_size(shape, f"{where} layer {i}: the neurons")


def _check_reachable(steps: int, n_spiking: int, where: str) -> None:
    """Refuse a T too short for the output layer ever to spike.

    Every SLAYER cuba block shifts its output spikes one step later (``delay_shift``), so a spike
    entering at step 0 reaches the output of ``n_spiking`` layers at step ``n_spiking`` at the
    earliest (a learnt axonal delay only adds to that): T must exceed the number of layers.
    """
    if steps <= n_spiking:
        raise ConfigError(f"{where} [data]: 'steps' = {steps} is too short for {n_spiking} spiking layers: each "
                          f"layer delays spikes by one step, so the output could never spike; give steps >= "
                          f"{n_spiking + 1}")


def load_spec(name_or_path: str | Path) -> ModelSpec:
    """Load ``models/<name>.toml`` (or a path to a spec file)."""
    path = resolve_spec("models", name_or_path)
    return spec_from_dict(load_toml(path), str(path))


def import_slayer():
    """``lava.lib.dl.slayer``, imported with its import-time banners silenced.

    lava-dl 0.6.0 prints "WARNING: Prophesee Dataset Toolbox could not be found!" (an unused
    object-detection data set) and torch prints "No CUDA runtime is found" on every import;
    neither concerns a harness run.
    """
    import io
    import sys

    if "lava.lib.dl.slayer" not in sys.modules:
        from .lazy_imports import defer_object_detection

        defer_object_detection()  # its object_detection part (torchvision) loads on first use
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            import lava.lib.dl.slayer  # noqa: F401
    return sys.modules["lava.lib.dl.slayer"]


class _RectangularSpike(torch.autograd.Function):
    """Heaviside forward; backward 1/width inside |v - theta| < width/2, else exactly 0."""

    @staticmethod
    def forward(ctx, voltage, threshold, width):
        ctx.save_for_backward(voltage)
        ctx.threshold, ctx.width = float(threshold), float(width)
        return (voltage >= threshold).to(voltage.dtype)

    @staticmethod
    def backward(ctx, grad):
        (voltage,) = ctx.saved_tensors
        window = (voltage - ctx.threshold).abs() < ctx.width / 2
        return grad * window.to(grad.dtype) / ctx.width, None, None


def _rectangular_spike(self, voltage: torch.Tensor) -> torch.Tensor:
    """Replacement of ``cuba.Neuron.spike`` using the rectangular surrogate (no dropout)."""
    return _RectangularSpike.apply(voltage, self.threshold + self.threshold_eps, self.surrogate_width)


def _use_rectangular_surrogate(block: torch.nn.Module, width: float) -> None:
    import types

    block.neuron.surrogate_width = width
    block.neuron.spike = types.MethodType(_rectangular_spike, block.neuron)


class _PdsgSpike(torch.autograd.Function):
    """Heaviside forward; backward the PDSG Gaussian pdf of u = v - theta, N(u; 0.5 sigma, sigma).

    sigma is the std of the voltage per row (dim 0) over time and neurons, per channel (dim 1)
    too for a conv layer's (N, C, H, W, T) voltage; a zero std counts as 1 (the authors' rule).
    The authors take it over the batch as well; per row, a row's gradient does not depend on the
    other rows of its batch.
    """

    @staticmethod
    def forward(ctx, voltage, threshold):
        ctx.save_for_backward(voltage)
        ctx.threshold = float(threshold)
        return (voltage >= threshold).to(voltage.dtype)

    @staticmethod
    def backward(ctx, grad):
        (voltage,) = ctx.saved_tensors
        dims = tuple(range(2 if voltage.ndim > 3 else 1, voltage.ndim))
        sigma = voltage.std(dim=dims, keepdim=True)
        sigma = torch.where(sigma == 0, torch.ones_like(sigma), sigma)
        u = voltage - ctx.threshold
        pdf = torch.exp(-0.5 * ((u - 0.5 * sigma) / sigma) ** 2) / (math.sqrt(2 * math.pi) * sigma)
        return grad * pdf, None


def _pdsg_spike(self, voltage: torch.Tensor) -> torch.Tensor:
    """Replacement of ``cuba.Neuron.spike`` using the PDSG surrogate (no dropout)."""
    return _PdsgSpike.apply(voltage, self.threshold + self.threshold_eps)


def _use_pdsg_surrogate(block: torch.nn.Module) -> None:
    import types

    block.neuron.spike = types.MethodType(_pdsg_spike, block.neuron)


@contextlib.contextmanager
def attack_surrogate(net: "SpikingNetwork", kind: str) -> Iterator[None]:
    """Temporarily give every spiking layer the surrogate ``kind`` (:data:`ATTACK_SURROGATES`) for
    gradient passes; "model" keeps the model's own. Forward spikes are unchanged (the same
    Heaviside of v >= theta); restored on exit, also on error."""
    if kind == "model":
        yield
        return
    if kind not in ATTACK_SURROGATES:
        raise ConfigError(f"attack surrogate '{kind}' unknown; available: {', '.join(ATTACK_SURROGATES)}")
    neurons = [block.neuron for block in net.spiking_blocks]
    saved = [neuron.__dict__.get("spike") for neuron in neurons]
    try:
        for block in net.spiking_blocks:
            _use_pdsg_surrogate(block)
        yield
    finally:
        for neuron, own in zip(neurons, saved):
            if own is None:
                del neuron.spike
            else:
                neuron.spike = own


class SpikingNetwork(torch.nn.Module):
    """A feed-forward SLAYER network: input (N, *input_shape, T) -> output spikes (N, K, T).

    A dense first layer sees the input flattened in SLAYER's (C, H, W) order.
    """

    def __init__(self, spec: ModelSpec):
        super().__init__()
        slayer = import_slayer()
        self.spec = spec
        base = {"threshold": spec.neuron["threshold"], "current_decay": spec.neuron["current_decay"],
                "voltage_decay": spec.neuron["voltage_decay"], "tau_grad": spec.neuron.get("tau_grad", 1.0),
                "scale_grad": spec.neuron.get("scale_grad", 1.0), "requires_grad": False}
        blocks, shape = [], list(spec.input_shape)
        n_spiking = sum(layer["type"] != "flatten" for layer in spec.layers)
        spiking_index = 0
        for layer in spec.layers:
            if layer["type"] == "flatten":
                blocks.append(slayer.block.cuba.Flatten())
                shape = [int(torch.tensor(shape).prod())]
                continue
            params = dict(base, **layer.get("neuron", {}))  # per-layer neuron parameters override the spec's
            spiking_index += 1
            if spec.neuron.get("dropout") and spiking_index < n_spiking:
                params["dropout"] = slayer.neuron.Dropout(p=float(spec.neuron["dropout"]))
            if spiking_index == n_spiking - 1 and spec.penultimate_threshold is not None:
                params["threshold"] = spec.penultimate_threshold
            common = {"weight_norm": bool(layer.get("weight_norm", True)), "delay": bool(layer.get("delay", False)),
                      "weight_scale": float(layer.get("weight_scale", 1.0))}
            if layer["type"] == "dense":
                n_in = int(torch.tensor(shape).prod())
                block = slayer.block.cuba.Dense(params, n_in, int(layer["out"]), **common)
                shape = [int(layer["out"])]
            else:
                k, s, p = int(layer["kernel"]), int(layer.get("stride", 1)), int(layer.get("padding", 0))
                block = slayer.block.cuba.Conv(params, shape[0], int(layer["out"]), k, stride=s, padding=p, **common)
                shape = [int(layer["out"])] + [(d + 2 * p - k) // s + 1 for d in shape[1:]]
            if spec.surrogate == "rectangular":
                _use_rectangular_surrogate(block, spec.surrogate_width)
            elif spec.surrogate == "pdsg":
                _use_pdsg_surrogate(block)
            blocks.append(block)
        self.blocks = torch.nn.ModuleList(blocks)

    @property
    def spiking_blocks(self) -> list[torch.nn.Module]:
        """The blocks with neurons (dense and conv), in order."""
        return [b for b in self.blocks if hasattr(b, "neuron")]

    #: A function applied to every input before the first layer (None: none); set only by
    #: :func:`harness.attacks.filtered.through_filter`, which puts a profile's event filter there.
    front = None

    def _prepare(self, x: torch.Tensor) -> torch.Tensor:
        if self.front is not None:
            x = self.front(x)
        if x.ndim > 3 and self.spec.layers[0]["type"] == "dense":
            x = x.reshape(x.shape[0], -1, x.shape[-1])
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Output spikes (N, K, T) for input spikes (N, *input_shape, T) (float)."""
        x = self._prepare(x)
        for block in self.blocks:
            x = block(x)
        return x

    def forward_layers(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Every spiking block's output spikes, first to last (the last is the output)."""
        x, outs = self._prepare(x), []
        for block in self.blocks:
            x = block(x)
            if hasattr(block, "neuron"):
                outs.append(x)
        return outs

    def export_hdf5(self, path: str | Path) -> None:
        """Write the netx HDF5 description atomically (removes weight_norm in place: checkpoint first)."""
        with atomic_h5(path) as f:
            group = f.create_group("layer")
            for i, block in enumerate(self.blocks):
                block.export_hdf5(group.create_group(f"{i}"))


TORCH_DEVICES = ("cpu", "cuda")


def torch_device(name: str) -> torch.device:
    """The torch device ``name`` ("cpu" or "cuda") for training and attacks.

    Raises:
        ConfigError: an unknown name, or "cuda" where torch finds no CUDA device.
    """
    if name not in TORCH_DEVICES:
        raise ConfigError(f"torch device '{name}' unknown; available: {', '.join(TORCH_DEVICES)}")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("torch device 'cuda': no CUDA device available to torch on this machine; use 'cpu'")
    return torch.device(name)


def net_device(net: torch.nn.Module) -> torch.device:
    """The device ``net``'s parameters are on (CPU for a network without parameters)."""
    return next(net.parameters(), torch.empty(0)).device


def build_network(spec: ModelSpec, seed: int | None = None) -> SpikingNetwork:
    """A freshly initialised network; ``seed`` fixes the weight initialisation."""
    if seed is not None:
        torch.manual_seed(seed)
    return SpikingNetwork(spec)


def count_margin(counts: torch.Tensor, cls: torch.Tensor) -> torch.Tensor:
    """Per row, the best count among the classes other than ``cls`` minus the count of ``cls``.

    Args:
        counts: (N, K) output spike counts (spikes per class over the sample window).
        cls: (N,) class per row (int64).
    Returns:
        (N,) margins in spikes: > 0 when some other class has more spikes than ``cls``.
    """
    own = counts.gather(1, cls.view(-1, 1)).squeeze(1)
    others = counts.masked_fill(torch.nn.functional.one_hot(cls, counts.shape[1]).bool(), float("-inf"))
    return others.amax(1) - own


class CountMargin(torch.nn.Module):
    """C&W-style margin on output spike counts, summed over the batch (an attack loss).

    For output spikes ``out`` (N, K, T) and classes ``cls`` (N,): counts c = out.sum(-1) (spikes
    per class over the window) and loss = sum_n (max_{j != cls_n} c_nj - c_n,cls_n), in spikes.
    The gradient reaches the input through the spike function's surrogate. Ascending it with
    cls = the label is the untargeted attack (best other class minus true class); descending it
    with cls = the target is the targeted one (best non-target minus target), the same signs
    the loop uses for the paper's losses (../shared/notes/attack-spec.md, "G2S"). Unlike the
    spike-rate loss it has no target rate to saturate at: it rewards only the gap that decides
    the prediction. Ties for the best other class share its gradient equally (``amax``).
    """

    def forward(self, out: torch.Tensor, cls: torch.Tensor) -> torch.Tensor:
        """Summed margin (scalar, spikes) of output spikes ``out`` (N, K, T) for classes ``cls`` (N,)."""
        return count_margin(out.sum(-1), cls).sum()


class ScaledSpikeMax(torch.nn.Module):
    """Cross-entropy on output spike rates scaled to logits, summed over the batch.

    For output spikes ``out`` (N, K, T) and labels (N,): rate r = out.mean(-1) in [0, 1]
    (spikes per step), logits z = ``scale`` x r, loss = sum_n -log softmax(z_n)[label_n] (nats).
    ``scale`` = 1 is SLAYER's ``SpikeMax(mode="logsoftmax")`` exactly: its logits span only
    [0, 1], so even a perfect raster (true class firing every step, the others silent) keeps a
    loss of log(1 + 9/e) = 1.2 nats and the gradient never stops pushing every rate to its bound.
    ``scale`` = T makes the logits the spike counts. (docs/models.md, ``logit_scale``.)
    """

    def __init__(self, scale: float = 1.0):
        super().__init__()
        self.scale = float(scale)

    def forward(self, out: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
        """Summed cross-entropy (scalar, nats) of output spikes ``out`` (N, K, T) for ``label`` (N,)."""
        logits = self.scale * out.reshape(out.shape[0], -1, out.shape[-1]).mean(-1)
        return torch.nn.functional.cross_entropy(logits, label, reduction="sum")


def make_loss(spec: ModelSpec, name: str | None = None) -> torch.nn.Module:
    """The loss ``name`` (default: the spec's training loss), summed over the batch.

    ``spike-rate``: SLAYER's SpikeRate (true/false target rates); ``cross-entropy``:
    :class:`ScaledSpikeMax` with the spec's ``[training] logit_scale`` (default 1: SLAYER's
    SpikeMax in logsoftmax mode, cross-entropy on the output spike rate; its 'probability'
    mode gives NaN input gradients, ../shared/notes/lava-replay.md); ``margin``: the count
    margin :class:`CountMargin` (attacks only: it is not a training loss).
    """
    slayer = import_slayer()
    name = name or spec.training["loss"]
    if name == "spike-rate":
        return slayer.loss.SpikeRate(true_rate=spec.training["true_rate"],
                                     false_rate=spec.training["false_rate"], reduction="sum")
    if name == "cross-entropy":
        return ScaledSpikeMax(spec.training.get("logit_scale", 1.0))
    if name == "margin":
        return CountMargin()
    if name in ENERGY_LOSSES:
        raise ConfigError(f"loss '{name}' is an energy objective of the network's hidden layers: "
                          "build it with harness.attacks.energy.SynapticOps(net)")
    raise ConfigError(f"unknown loss '{name}'; available: {', '.join(ATTACK_LOSSES)}")


def load_checkpoint(path: str | Path) -> SpikingNetwork:
    """Rebuild a trained network from ``checkpoint.pt`` (spec + state dict), in eval mode.

    Raises:
        StageMissing: no checkpoint (the message names the command that makes one).
        DataError: the file is not a torch checkpoint (corrupt, truncated, another format),
            lacks its ``spec`` or ``state_dict``, or holds weights that do not fit its spec;
            ConfigError: its spec is invalid. Each message names the file.
    """
    from .errors import DataError, StageMissing

    path = Path(path)
    if not path.exists():
        raise StageMissing(f"{path} does not exist; train first with: harness train --run {path.parent.parent}")
    redo = f"retrain with: harness train --run {path.parent.parent} --model MODEL"
    state = read_torch(path, "harness checkpoint", redo)  # tensors and plain values only: a run directory cannot run code
    if not isinstance(state, dict):
        raise DataError(f"{path}: not a harness checkpoint (holds a {type(state).__name__}, not a dict); {redo}")
    missing = [key for key in ("spec", "state_dict") if key not in state]
    if missing:
        raise DataError(f"{path}: checkpoint lacks {', '.join(repr(k) for k in missing)}; {redo}")
    if not isinstance(state["spec"], dict):
        raise DataError(f"{path}: checkpoint 'spec' is a {type(state['spec']).__name__}, not a table; {redo}")
    spec = spec_from_dict(state["spec"], str(path))
    net = SpikingNetwork(spec)
    with torch.no_grad():  # SLAYER sizes axonal-delay parameters on the first forward pass
        net(torch.zeros((1, *spec.input_shape, spec.steps)))
    try:
        net.load_state_dict(state["state_dict"])
    except (RuntimeError, TypeError, AttributeError) as exc:  # missing/unexpected keys, wrong shapes, not a mapping
        first = str(exc).strip().splitlines()
        raise DataError(f"{path}: weights do not fit the checkpoint's own spec "
                        f"({' '.join(line.strip() for line in first[:2])[:300]}); {redo}") from None
    return net.eval()


@contextlib.contextmanager
def attack_threshold(net: SpikingNetwork, threshold: float | None,
                     mode: str = "scale-surrogate") -> Iterator[None]:
    """Temporarily set the penultimate spiking layer's threshold (the attack paper's "trap"
    escape; ../shared/notes/attack-spec.md, "Influence factors").

    Sets what SLAYER's forward and backward passes read: ``neuron._threshold`` (on the
    fixed-point grid) and, in ``mode`` "scale-surrogate", the surrogate width ``tau_rho`` (kept
    at tau_grad x threshold, as SLAYER sets it at construction: lava-dl neuron/base.py). Mode
    "fixed-surrogate" keeps tau_rho as trained: the threshold alone changes, the paper's
    intervention. (The rectangular surrogate's width never scales with the threshold, so there
    the two modes agree.) Restored on exit, also on error. ``None`` leaves the network unchanged.
    """
    if mode not in THRESHOLD_MODES:
        raise ConfigError(f"threshold_mode '{mode}' unknown; available: {', '.join(THRESHOLD_MODES)}")
    if threshold is None:
        yield
        return
    blocks = net.spiking_blocks
    if len(blocks) < 2:
        raise ConfigError("an attack threshold needs a network with at least two spiking layers")
    neuron = blocks[-2].neuron
    saved = (neuron._threshold, neuron.tau_rho)
    new = int(threshold * neuron.w_scale) / neuron.w_scale
    try:
        neuron._threshold = new
        if mode == "scale-surrogate":
            neuron.tau_rho = saved[1] * new / saved[0]
        yield
    finally:
        neuron._threshold, neuron.tau_rho = saved
