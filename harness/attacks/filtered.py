"""The offline network behind a profile's event filter, and its BPDA gradient (docs/defences.md).

``with through_filter(net, input_filter): ...`` puts the filter of a profile's
``[input_filter]`` table (:mod:`harness.device.input_filter`) in front of the SLAYER network for
every pass inside the block (attack passes, judging, reduction), so an attack crafted there meets
the network as the device does: the same filter on the same binary input, bit for bit.

The filter is a step function of its input, with no useful gradient. Its backward pass is the
identity (BPDA, Athalye, Carlini & Wagner 2018: "backward pass differentiable approximation";
here the straight-through estimator): the gradient of the loss with respect to the filtered
input is taken as the gradient with respect to the attacker's input. A spike the filter drops
therefore still receives the gradient of the element it would have set, which is how an
adaptive attack learns to place spikes where the filter lets them through (by trying them).
"""
from __future__ import annotations

import contextlib
from typing import Iterator

import numpy as np
import torch

from ..device.input_filter import InputFilter
from ..errors import ConfigError


class _StraightThrough(torch.autograd.Function):
    """Forward: the filter on binary spikes; backward: the identity (BPDA)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, input_filter: InputFilter) -> torch.Tensor:
        kept = input_filter.apply(x.detach().cpu().numpy().astype(np.uint8))
        return torch.as_tensor(kept, dtype=x.dtype).to(x.device)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        return grad, None


def filtered_input(x: torch.Tensor, input_filter: InputFilter) -> torch.Tensor:
    """``x`` (N, *input_shape, T) binary (float) through ``input_filter``, its gradient passed straight through."""
    return _StraightThrough.apply(x, input_filter)


@contextlib.contextmanager
def through_filter(net, input_filter: InputFilter | None) -> Iterator:
    """Within the block, every pass of ``net`` (a :class:`harness.models.SpikingNetwork`) sees its input
    through ``input_filter`` (None: unchanged); the network is restored on exit, also on an error."""
    if input_filter is None:
        yield net
        return
    if not hasattr(type(net), "front"):
        raise ConfigError(f"a profile's [input_filter] can be put in front of a network trained here only, not "
                          f"of {type(net).__name__} (an imported network's twin); attack it with --non-adaptive")
    previous = net.front
    net.front = lambda x: filtered_input(x, input_filter)
    try:
        yield net
    finally:
        net.front = previous
