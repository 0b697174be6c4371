"""G2S, the gradient-to-spike converter, and the overflow-aware update.

../shared/notes/attack-spec.md, "G2S": per sample and iteration,
1. p = |g| / max|g| (times the step scale eta in sparse mode, a harness addition),
2. m ~ Bernoulli(p), a fresh draw every iteration,
3. d = sign(g) * m, a ternary tensor,
4. S' = clip(S + d, 0, 1): flips that would leave {0, 1} are dropped (overflow-aware).
Tensors are batched: dimension 0 is the sample; the maximum is taken per sample.
"""
from __future__ import annotations

from typing import Sequence

import torch

from .randomness import uniform


def per_sample_max(x: torch.Tensor) -> torch.Tensor:
    """max |x| over every dimension but the first, shaped (N, 1, ..., 1) for broadcasting."""
    return x.abs().amax(dim=tuple(range(1, x.ndim)), keepdim=True)


def g2s_probability(grad: torch.Tensor, eta: float = 1.0) -> torch.Tensor:
    """Sampling probabilities eta * |g| / max|g| per sample (0 where a sample's gradient is all zero).

    Args:
        grad: (N, ...) input gradient, already signed in the attack's direction.
        eta: step scale in (0, 1]; 1 is the paper's G2S.
    """
    peak = per_sample_max(grad)
    return grad.abs() / torch.where(peak > 0, peak, torch.ones_like(peak)) * eta


def g2s_from_uniform(grad: torch.Tensor, u: torch.Tensor, eta: float = 1.0) -> torch.Tensor:
    """G2S with given uniform draws ``u`` (same shape as ``grad``): d = sign(g) * (u < p)."""
    return torch.sign(grad) * (u < g2s_probability(grad, eta)).to(grad.dtype)


def g2s(grad: torch.Tensor, generator: torch.Generator | Sequence[torch.Generator], eta: float = 1.0) -> torch.Tensor:
    """Ternary update d in {-1, 0, +1} (dtype of ``grad``) from a continuous gradient.

    Args:
        grad: (N, ...) gradient in the direction that helps the attack.
        generator: one generator, or one per sample (see :func:`harness.attacks.randomness.uniform`).
        eta: step scale (sparse mode); 1 is the paper's G2S.
    """
    return g2s_from_uniform(grad, uniform(generator, grad.shape).to(grad.dtype), eta)


def apply_update(spikes: torch.Tensor, update: torch.Tensor) -> torch.Tensor:
    """Overflow-aware update S' = clip(S + d, 0, 1): always binary when ``spikes`` is binary."""
    return (spikes + update).clamp_(0, 1)
