"""RSF, the restricted spike flipper: a random ternary update where the gradient vanishes.

../shared/notes/attack-spec.md, "RSF": used instead of G2S in an iteration where a sample's
max|g| == 0: m ~ Bernoulli(gamma) element-wise and S' = S XOR m, in ternary form
d = (1 - 2S) * m, so the overflow-aware update S + d flips exactly the drawn elements.
gamma is the turnover rate, the expected fraction of elements flipped (reference 0.05).
The spec's budget-aware variant ("restricts flips so that the total stays under the
perturbation budget") is RSF followed by :func:`harness.attacks.g2s.restrict_to_budget` with
:func:`rsf_priority`: of the drawn new flips, those with the smallest draws are kept, which is
a uniformly random subset from the row's own generator.
"""
from __future__ import annotations

from typing import Sequence

import torch

from .randomness import uniform


def rsf_from_uniform(spikes: torch.Tensor, u: torch.Tensor, gamma: float) -> torch.Tensor:
    """RSF with given uniform draws ``u`` (same shape as ``spikes``): d = (1 - 2S) * (u < gamma)."""
    return (1 - 2 * spikes) * (u < gamma).to(spikes.dtype)


def rsf_priority(u: torch.Tensor) -> torch.Tensor:
    """Keep-first priority of RSF's drawn flips under a budget: -u, a random order from the row's draws."""
    return -u


def rsf(spikes: torch.Tensor, gamma: float, generator: torch.Generator | Sequence[torch.Generator]) -> torch.Tensor:
    """Ternary update d in {-1, 0, +1} (dtype of ``spikes``) that flips about ``gamma`` of the elements.

    Args:
        spikes: (N, ...) binary spikes (float).
        gamma: turnover rate in (0, 1].
        generator: one generator, or one per sample (see :func:`harness.attacks.randomness.uniform`).
    """
    return rsf_from_uniform(spikes, uniform(generator, spikes.shape).to(spikes.dtype), gamma)
