"""RSF, the restricted spike flipper: a random ternary update where the gradient vanishes.

../shared/notes/attack-spec.md, "RSF": used instead of G2S in an iteration where a sample's
max|g| == 0: m ~ Bernoulli(gamma) element-wise and S' = S XOR m, in ternary form
d = (1 - 2S) * m, so the overflow-aware update S + d flips exactly the drawn elements.
gamma is the turnover rate, the expected fraction of elements flipped (reference 0.05).
"""
from __future__ import annotations

from typing import Sequence

import torch

from .randomness import uniform


def rsf_from_uniform(spikes: torch.Tensor, u: torch.Tensor, gamma: float) -> torch.Tensor:
    """RSF with given uniform draws ``u`` (same shape as ``spikes``): d = (1 - 2S) * (u < gamma)."""
    return (1 - 2 * spikes) * (u < gamma).to(spikes.dtype)


def rsf(spikes: torch.Tensor, gamma: float, generator: torch.Generator | Sequence[torch.Generator]) -> torch.Tensor:
    """Ternary update d in {-1, 0, +1} (dtype of ``spikes``) that flips about ``gamma`` of the elements.

    Args:
        spikes: (N, ...) binary spikes (float).
        gamma: turnover rate in (0, 1].
        generator: one generator, or one per sample (see :func:`harness.attacks.randomness.uniform`).
    """
    return rsf_from_uniform(spikes, uniform(generator, spikes.shape).to(spikes.dtype), gamma)
