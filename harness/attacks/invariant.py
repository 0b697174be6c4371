"""Per-sample gradients that are bit-identical whatever the batch, and fast.

The attack needs a sample's input gradient to be the same bits in a batch of 1, 7 or 128:
a one-ulp difference changes Bernoulli draws (u < p) and hence the adversarial spikes.
PyTorch's default CPU convolution (oneDNN) picks its blocking, and so its float32 summation
order, by batch size; measured on nmnist-mlp, 2.8 M of 4.4 M gradient elements differed between
batch sizes 1 and 64. Inside :func:`batch_invariant`:

- every dense synapse (SLAYER computes it as a 1x1x1 convolution) runs as
  * forward: one matrix product over the whole batch, or for sparse inputs a sum of the weight
    columns of the active inputs. Its inputs are spikes (0/1) and its weights lie on the 8-bit
    quantization grid, so every partial sum is exact in float32 and the result does not depend
    on the summation order: the output spikes are exactly those of the unchanged model, which
    is why the attack judges success on this same pass;
  * backward (input gradient): one matrix product (N*T x out) @ (out x in) of the whole batch.
    Every output element is one dot product of length ``out``, and single-threaded MKL sums it
    in an order fixed by its blocking along ``out`` whatever the number of rows, so a sample's
    gradient is the same bits as the (T x out) @ (out x in) product of that sample alone, which
    is what this module computed before (one product per sample; the batched product is 1.7x
    faster on nmnist-mlp). ``tests/test_attacks.py`` checks the bits at batch sizes 1, 7 and 70,
    ``tests/test_attack_speed.py`` that the attack's spikes are those recorded before the change.
    (torch.bmm sums in another order; exact float64 sums round differently from float32 ones);
  * the quantized weight is computed once per context, not on every pass;
- convolution layers run PyTorch's own per-sample convolution (oneDNN disabled).
The network is restored on exit, also on error.
"""
from __future__ import annotations

import contextlib
import types
from typing import Iterator

import torch
from torch.nn.utils.weight_norm import WeightNorm

from ..models import SpikingNetwork, import_slayer


#: Input density below which the forward pass sums the weight columns of the active inputs
#: (an embedding bag) instead of multiplying the dense matrix; N-MNIST inputs are about 4% ones.
SPARSE_DENSITY = 0.1


def _synaptic_input(x: torch.Tensor, weight: torch.Tensor, weight_t: torch.Tensor) -> torch.Tensor:
    """W x for x (N, in, T) and weight (out, in) (weight_t: its transpose, contiguous): (N, out, T)."""
    n, c, t = x.shape
    rows = x.transpose(1, 2).reshape(n * t, c)
    if torch.count_nonzero(rows) <= SPARSE_DENSITY * rows.numel():
        active = rows.nonzero()
        counts = torch.bincount(active[:, 0], minlength=n * t)
        out = torch.nn.functional.embedding_bag(active[:, 1], weight_t, torch.cumsum(counts, 0) - counts,
                                                mode="sum", per_sample_weights=rows[active[:, 0], active[:, 1]])
    else:
        out = rows @ weight_t
    return out.reshape(n, t, -1).transpose(1, 2)


class _DenseSynapse(torch.autograd.Function):
    """y (N, out, T) = W x; input gradient per sample (see the module docstring)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: torch.Tensor, weight_t: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(weight)
        return _synaptic_input(x, weight, weight_t)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        (weight,) = ctx.saved_tensors
        n, out, t = grad.shape
        # One (N*T x out) @ (out x in) product: every output row is the same dot products, in
        # the same order, as the (T x out) @ (out x in) product of its sample alone.
        rows = grad.transpose(1, 2).reshape(n * t, out) @ weight
        return rows.reshape(n, t, -1).transpose(1, 2), None, None


def _dense_forward(weight: torch.Tensor, original):
    """A replacement ``forward`` of a dense synapse using the cached 2-D ``weight`` (out, in)."""
    weight_t = weight.t().contiguous()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 3 or self.bias is not None:  # not the (N, C, T) spike case: SLAYER's own path
            return original(x)
        return _DenseSynapse.apply(x, weight, weight_t)

    return forward


def _effective_weight(synapse: torch.nn.Module) -> torch.Tensor:
    """The (out, in) weight a synapse's forward pass uses: weight norm applied (as its forward
    pre-hook would), then the quantization hook."""
    with torch.no_grad():
        weight = synapse.weight
        for hook in synapse._forward_pre_hooks.values():
            if isinstance(hook, WeightNorm):
                weight = hook.compute_weight(synapse)
        if synapse.pre_hook_fx is not None:
            weight = synapse.pre_hook_fx(weight)
    return weight.reshape(len(weight), -1).detach()


@contextlib.contextmanager
def batch_invariant(net: SpikingNetwork) -> Iterator[None]:
    """Within this context ``net`` computes the same outputs, and per-sample input gradients
    that do not depend on the batch (module docstring). Parameter gradients are not supported."""
    dense = import_slayer().synapse.Dense
    synapses = [block.synapse for block in net.spiking_blocks if isinstance(block.synapse, dense)]
    try:
        for synapse in synapses:
            weight = _effective_weight(synapse)
            synapse.forward = types.MethodType(_dense_forward(weight, synapse.forward), synapse)
        with torch.backends.mkldnn.flags(enabled=False):
            yield
    finally:
        for synapse in synapses:
            synapse.__dict__.pop("forward", None)
