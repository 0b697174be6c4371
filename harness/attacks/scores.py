"""Continuous class scores of a spiking network for the attacks that need a C&W margin (SDA, SpikeFool).

The authors' networks of SDA (ryime/PDSG-SDA) and SpikeFool (jubueche/SPAA) end in a read-out
whose output varies continuously with the input: PDSG-SDA's last ``Linear`` layer has no neuron,
its logits are that layer's output averaged over time. Ours ends in spiking neurons and predicts
by output spike COUNT, an integer: most single flips change a count margin by exactly 0, so a
finite difference on it cannot rank them (the first SDA pilot stalled on 8 of 10 rows).

:func:`class_scores` keeps the count and breaks its ties with the authors' logits: per class k,

    s_k = c_k + 0.25 * tanh(z_k / theta),

c_k the output spike count, z_k the output layer's synaptic input (its ``synapse`` output, the
authors' logit) averaged over time steps, theta the output neuron's threshold. The tanh term
lies in (-0.25, 0.25), so the margin M = max_{j != c} s_j - s_c lies within 0.5 of the count
margin: any change of the count margin moves M the same way, and a change of the logits alone
moves it by less than one spike. The prediction stays the count's with the tie rule
(:func:`harness.metrics.predict`); the scores only guide the search.
"""
from __future__ import annotations

import torch

from ..models import SpikingNetwork

#: Weight of the logit tie-breaker: per class in (-TIE_WEIGHT, TIE_WEIGHT), below half a spike.
TIE_WEIGHT = 0.25


def class_scores(net: SpikingNetwork, x: torch.Tensor) -> torch.Tensor:
    """Scores s (N, K) of inputs ``x`` (N, *input_shape, T) float: counts plus the logit tie-breaker.

    Differentiable in ``x`` through the network's surrogate gradient (the count) and through the
    hidden layers' surrogate (the logit).
    """
    readout = net.blocks[-1]
    drive = []
    handle = readout.synapse.register_forward_hook(lambda _module, _inputs, output: drive.append(output))
    try:
        out = net(x)
    finally:
        handle.remove()
    theta = float(readout.neuron.threshold)
    return out.sum(-1) + TIE_WEIGHT * torch.tanh(drive[0].mean(-1) / theta)


def margin(scores: torch.Tensor, cls: int, targeted: bool) -> torch.Tensor:
    """Per row of ``scores`` (N, K), the C&W margin the attack lowers (N,).

    Untargeted (``cls`` the label): s_label - max_{j != label} s_j (below 0 once another class
    leads). Targeted (``cls`` the target): max_{j != target} s_j - s_target.
    """
    others = scores.clone()
    others[:, cls] = float("-inf")
    gap = scores[:, cls] - others.amax(1)
    return -gap if targeted else gap
