"""The twin oracle's forward pass of a dense CUBA SLAYER network: SLAYER's output spikes, bit
for bit, in a fraction of SLAYER's time.

What SLAYER computes for one ``slayer.block.cuba.Dense`` block (lava-dl 0.6: ``synapse/layer.py``,
``neuron/cuba.py``, ``neuron/dynamics/leaky_integrator.py``, ``spike/spike.py``,
``block/base.py``), per sample, neuron and step t, with s = the neuron's ``s_scale`` (4096), the
decays dI, dV rounded to integers (``quantize``) and rstz(y) = y >> 12 rounded towards zero:

    z_t  = W x_t                    float32; W on the 8-bit weight grid (the quantize hook)
    I_t  = int64(s z_t)             truncated
    u_t  = rstz(u_{t-1} (4096 - dI)) + I_t                        int64; the current never resets
    c_t  = float32(u_t)             the current reaches the voltage as float32 u_t / s
    v'_t = rstz(v_{t-1} (4096 - dV)) + c_t
    v_t  = 0 where v'_t >= s (theta + eps), else v'_t             (the reset; eps = 0.01 / s)
    spike_t where float32(v'_t) / s >= theta + eps                 (``Spike``, float32)
    out_t = spike_{t-1}, out_0 = 0  (the block's one-step delay)

:class:`DenseCubaForward` computes the same integers, held exactly in floating point
(rstz(y k) for a 12-bit k is trunc(y k / 4096), exact in float64 for |y| < 2**40):

- all T steps' synaptic input of a layer comes from one product: the weight rows of the spiking
  inputs summed (``embedding_bag``), or a dense product for dense inputs. Every partial sum is
  a multiple of the weight grid no larger than max_o sum_i |W_oi|, so it is exact in float32
  (float16 where that bound allows: half the memory traffic) whatever the summation order;
- a step is six in-place numpy operations on the (N, C) states; no autograd, no int64 shifts
  with their sign juggling;
- both threshold tests become ``v' >= k`` for one integer k: each is monotone in the integer v'
  (float32 rounding is monotone), and k is found by running SLAYER's own two comparisons on the
  integers around the threshold;
- the network is only run where its weights bound |u_t| < 2**24 for every binary input
  (|u_t| <= T s max_o sum_i |W_oi|), so c_t = u_t and |v'_t| < T 2**24.

What it does not compute (conv or pooling layers, bias, axonal delays, per-neuron decays,
persistent state, graded spikes, a norm, an event filter in front, training mode; non-binary
inputs, or weights that could push |u_t| to 2**24): :func:`plan` or
:meth:`DenseCubaForward.layers` says so by returning None, and the caller runs SLAYER's own
forward. ``tests/test_twin_forward.py`` compares every layer's rasters with SLAYER's.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from ..models import import_slayer
from .invariant import SPARSE_DENSITY, _effective_weight

FLOAT32_EXACT = 2 ** 24   # integers below this are exact in float32
FLOAT16_EXACT = 2 ** 11   # and in float16
DECAY_BITS = 12           # leaky_integrator: decay_int = (1 << 12) - decay, product >> 12
MAX_GRID_BITS = 24        # weight grids finer than 2**-24 are not planned


@dataclass
class _Layer:
    """One dense CUBA block: ``table`` (in, out) its weights (transposed; float16 where every
    partial sum of a product is exact in float16, else float32) on a grid of ``2**-grid_bits``,
    ``abs_row_sum`` = max_o sum_i |W_oi|, the state scale ``s``, the kept fractions
    (4096 - d) / 4096 of current and voltage per step, the integer threshold ``k``."""

    table: torch.Tensor
    grid_bits: int
    abs_row_sum: float
    s: float
    keep_current: float
    keep_voltage: float
    k: float

    def fits(self, steps: int) -> bool:
        """Whether |u_t| < 2**24 for any ``steps`` steps of binary input (|u_t| <= steps s
        abs_row_sum): then float32(u_t) = u_t and |v'_t| < steps 2**24, exact in float64."""
        return steps * self.s * self.abs_row_sum < FLOAT32_EXACT


class DenseCubaForward:
    """SLAYER's no-grad forward of a network of dense CUBA blocks (module docstring); build it
    with :func:`plan`. ``input_size``: input elements per step (C x H x W flattened)."""

    def __init__(self, layers: list[_Layer], input_size: int) -> None:
        self._layers, self.input_size = layers, input_size

    def layers(self, spikes: np.ndarray) -> list[np.ndarray] | None:
        """Every block's output spikes, each (T, N, C) bool in step-major order (entry t: the
        block's output at step t, ``out_t`` above). None when ``spikes`` (N, *input_shape, T)
        are empty, of another size or not binary, or the weights could push |u_t| to 2**24:
        SLAYER's forward must answer."""
        x = np.asarray(spikes)
        if x.ndim < 3 or not x.size or int(np.prod(x.shape[1:-1])) != self.input_size or not _binary(x):
            return None
        n, steps = len(x), x.shape[-1]
        if not all(layer.fits(steps) for layer in self._layers):
            return None
        x = x.view(np.bool_) if x.dtype.itemsize == 1 else x.astype(np.bool_)  # 0/1 bytes are booleans
        rows = np.ascontiguousarray(x.reshape(n, self.input_size, steps).transpose(2, 0, 1))
        outs = []
        with torch.inference_mode():
            for layer in self._layers:
                current = _product(rows.reshape(steps * n, -1), layer.table).to(torch.float32).numpy()
                current *= layer.s  # exact: a power of two
                if layer.grid_bits > math.log2(layer.s):
                    np.trunc(current, out=current)
                rows = _dynamics(current.reshape(steps, n, -1), layer)
                outs.append(rows)
        return outs

    def counts(self, spikes: np.ndarray) -> np.ndarray | None:
        """(N, K) int64 output spike counts of binary ``spikes`` (N, *input_shape, T), or None
        (see :meth:`layers`)."""
        outs = self.layers(spikes)
        return None if outs is None else outs[-1].sum(0, dtype=np.int64)


def rasters(outs: list[np.ndarray]) -> list[torch.Tensor]:
    """:meth:`DenseCubaForward.layers`' outputs as SLAYER presents them: (N, C, T) float32."""
    return [torch.from_numpy(np.ascontiguousarray(out.transpose(1, 2, 0))).to(torch.float32) for out in outs]


def _binary(x: np.ndarray) -> bool:
    """Whether every element of ``x`` is 0 or 1."""
    if x.dtype == np.bool_:
        return True
    if x.dtype.kind in "ui":
        return bool(x.max() <= 1 and (x.dtype.kind == "u" or x.min() >= 0))
    return bool(np.isin(x, (0, 1)).all())


def _product(rows: np.ndarray, table: torch.Tensor) -> torch.Tensor:
    """(R, out) = rows (R, in) bool @ table (in, out), exact (module docstring): the rows of the
    table at the spiking inputs summed (``embedding_bag``), or one dense product for dense rows."""
    if np.count_nonzero(rows) > SPARSE_DENSITY * rows.size:
        return torch.from_numpy(rows).to(torch.float32) @ table.to(torch.float32)
    flat = np.flatnonzero(rows)
    width = rows.shape[1]
    starts = np.searchsorted(flat, np.arange(len(rows)) * width)
    return torch.nn.functional.embedding_bag(torch.from_numpy(flat % width), table, torch.from_numpy(starts),
                                             mode="sum")


def _dynamics(current: np.ndarray, layer: _Layer) -> np.ndarray:
    """(T, N, C) bool output spikes (entry t: ``out_t``, the spikes of step t - 1 after the
    one-step delay) of CUBA neurons receiving the integer input ``current`` (T, N, C) float32
    (I_t, module docstring); the last step's spikes, which the delay drops, are not computed.
    numpy, not torch: a step is six operations on a small array, where numpy's call overhead
    (1-3 us) is a third of torch's; current and voltage decay in one operation."""
    steps, n, size = current.shape
    out = np.zeros((steps, n, size), dtype=np.bool_)
    state = np.zeros((2, n, size))
    u, v = state
    keep = np.array([layer.keep_current, layer.keep_voltage]).reshape(2, 1, 1)
    for t in range(steps - 1):
        state *= keep
        np.trunc(state, out=state)
        u += current[t]
        v += u
        np.greater_equal(v, layer.k, out=out[t + 1])
        np.copyto(v, 0.0, where=out[t + 1])
    return out


def plan(net) -> tuple[DenseCubaForward | None, str]:
    """(the fast forward of ``net``, "") where every block is supported, else (None, why not)."""
    slayer = import_slayer()
    blocks = list(getattr(net, "blocks", []))
    if not blocks:
        return None, f"{type(net).__name__} is not a SLAYER network"
    if getattr(net, "front", None) is not None:
        return None, "an event filter runs in front of the network"
    layers = []
    for index, block in enumerate(blocks):
        why = _unsupported(block, slayer)
        if why:
            return None, f"block {index}: {why}"
        layer = _layer(block)
        if isinstance(layer, str):
            return None, f"block {index}: {layer}"
        layers.append(layer)
    sizes = [layer.table.shape for layer in layers]
    if any(a[1] != b[0] for a, b in zip(sizes, sizes[1:])):
        return None, "layer sizes do not chain"
    return DenseCubaForward(layers, int(sizes[0][0])), ""


def _unsupported(block, slayer) -> str:
    """Why SLAYER's forward of ``block`` is not the one the module docstring states ("" if it is)."""
    neuron, synapse = getattr(block, "neuron", None), getattr(block, "synapse", None)
    if not isinstance(block, slayer.block.cuba.Dense) or not isinstance(synapse, slayer.synapse.Dense):
        return f"{type(block).__name__} is not a dense CUBA block"
    checks = {"in training mode": block.training, "has a bias": synapse.bias is not None,
              "has a weight mask": block.mask is not None, "has axonal delays": block.delay is not None,
              "has no one-step delay": not block.delay_shift, "logs counts": block.count_log,
              "has per-neuron decays": not neuron.shared_param, "keeps its state": neuron.persistent_state,
              "normalises its current": neuron.norm is not None, "sends graded spikes": neuron.graded_spike,
              "has a complex synapse": getattr(synapse, "complex", False)}
    return next((f"it {what}" for what, bad in checks.items() if bad), "")


def _layer(block) -> _Layer | str:
    """The block as a :class:`_Layer`, or why its numbers leave the exact ranges."""
    from lava.lib.dl.slayer.utils import quantize

    neuron = block.neuron
    weight = _effective_weight(block.synapse).to(torch.float32)
    grid_bits = next((b for b in range(MAX_GRID_BITS + 1)
                      if torch.equal(weight * 2 ** b, torch.round(weight * 2 ** b))), None)
    if grid_bits is None:
        return f"weights finer than 2**-{MAX_GRID_BITS}"
    with torch.no_grad():
        decays = [float(quantize(d).item()) for d in (neuron.current_decay, neuron.voltage_decay)]
    if not all(0 <= d <= 1 << DECAY_BITS and d == int(d) for d in decays):
        return f"decays {decays} outside 0..{1 << DECAY_BITS}"
    k = _integer_threshold(neuron)
    if k is None:
        return "its reset and spike tests do not agree on one integer threshold"
    if not math.log2(neuron.s_scale).is_integer():
        return f"state scale {neuron.s_scale} is not a power of two"
    keep = [((1 << DECAY_BITS) - d) / (1 << DECAY_BITS) for d in decays]
    bound = float(weight.abs().sum(1).max())
    if bound * 2 ** grid_bits >= FLOAT32_EXACT:
        return "sums of its weights that float32 does not hold exactly"
    dtype = torch.float16 if bound * 2 ** grid_bits < FLOAT16_EXACT else torch.float32
    return _Layer(weight.t().contiguous().to(dtype), grid_bits, bound, float(neuron.s_scale), keep[0], keep[1],
                  float(k))


def _integer_threshold(neuron) -> int | None:
    """The integer k where SLAYER's reset test (int64 v' >= s (theta + eps), leaky_integrator)
    and spike test (``neuron.spike`` of float32 v' / s) both switch on, asked of those tests at
    the integers around the threshold; None if they switch elsewhere."""
    theta = neuron.threshold + neuron.threshold_eps
    scaled = theta * neuron.s_scale  # leaky_integrator: threshold *= w_scale
    if not abs(scaled) < FLOAT32_EXACT / 4:
        return None
    probe = torch.arange(math.floor(scaled) - 2, math.floor(scaled) + 4, dtype=torch.int64)
    with torch.no_grad():
        reset = (probe >= scaled).tolist()
        spike = (neuron.spike((probe / neuron.s_scale).view(1, 1, -1)).view(-1) > 0).tolist()
    if reset != spike or reset != sorted(reset) or all(reset) or not any(reset):
        return None
    return int(probe[reset.index(True)])
