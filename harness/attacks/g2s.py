"""G2S, the gradient-to-spike converter, and the overflow-aware update.

../shared/notes/attack-spec.md, "G2S": per sample and iteration,
1. p = |g| / max|g| (times the step scale eta in sparse mode, a harness addition),
2. m ~ Bernoulli(p), a fresh draw every iteration,
3. d = sign(g) * m, a ternary tensor,
4. S' = clip(S + d, 0, 1): flips that would leave {0, 1} are dropped (overflow-aware).
With a budget enforced inside the update (:func:`restrict_to_budget`, the spec's
"budget-aware" variant, "RSF"), new flips beyond the L0 budget are dropped as well.
Tensors are batched: dimension 0 is the sample; the maximum is taken per sample.
"""
from __future__ import annotations

from typing import Sequence

import torch

from .randomness import uniform


def per_sample_peak(magnitude: torch.Tensor) -> torch.Tensor:
    """max over every dimension but the first of a non-negative (N, ...) tensor, (N, 1, ..., 1)."""
    return magnitude.amax(dim=tuple(range(1, magnitude.ndim)), keepdim=True)


def g2s_probability(grad: torch.Tensor, eta: float = 1.0, magnitude: torch.Tensor | None = None) -> torch.Tensor:
    """Sampling probabilities eta * |g| / max|g| per sample (0 where a sample's gradient is all zero).

    Args:
        grad: (N, ...) input gradient, already signed in the attack's direction.
        eta: step scale in (0, 1]; 1 is the paper's G2S.
        magnitude: |grad|, where the caller has it already (saves a pass over the gradient).
    """
    magnitude = grad.abs() if magnitude is None else magnitude
    peak = per_sample_peak(magnitude)
    return magnitude / torch.where(peak > 0, peak, torch.ones_like(peak)) * eta


def g2s_from_uniform(grad: torch.Tensor, u: torch.Tensor, eta: float = 1.0,
                     magnitude: torch.Tensor | None = None) -> torch.Tensor:
    """G2S with given uniform draws ``u`` (same shape as ``grad``): d = sign(g) * (u < p)
    (``magnitude``: |grad| if the caller has it, see :func:`g2s_probability`)."""
    return torch.sign(grad) * (u < g2s_probability(grad, eta, magnitude)).to(grad.dtype)


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


def restrict_to_budget(spikes: torch.Tensor, clean: torch.Tensor, update: torch.Tensor, budget: int,
                       priority: torch.Tensor) -> torch.Tensor:
    """``update`` with the new flips that would take a row's L0 past ``budget`` removed.

    An element's flip is *new* when it moves ``spikes`` away from ``clean`` (L0 + 1) and a
    *revert* when it moves it back (L0 - 1); flips the overflow-aware update drops anyway are
    neither. Per row, every revert is kept and at most budget - L0 + reverts new flips, those
    with the highest ``priority`` (ties: lower flat index first), so L0 after
    :func:`apply_update` is min(L0 of the full update, budget) when the row starts within budget.

    Args:
        spikes: (N, ...) current binary examples (float); clean: (N, ...) the clean inputs.
        update: (N, ...) ternary update d in {-1, 0, +1}.
        budget: L0 budget in flips.
        priority: (N, ...) float, larger = kept first (G2S: |g|; RSF: :func:`rsf_priority`).
    """
    n = len(spikes)
    moved = (apply_update(spikes.clone(), update) != spikes).reshape(n, -1)
    away = moved & (spikes == clean).reshape(n, -1)
    l0 = (spikes != clean).reshape(n, -1).sum(1)
    room = (budget - l0 + (moved & ~away).sum(1)).clamp_(min=0)
    over = torch.nonzero(away.sum(1) > room).view(-1)
    if not len(over):
        return update
    score = torch.where(away[over], priority.reshape(n, -1)[over], torch.tensor(float("-inf"), dtype=priority.dtype))
    order = torch.sort(score, dim=1, descending=True, stable=True).indices
    rank = torch.empty_like(order).scatter_(1, order, torch.arange(order.shape[1]).expand_as(order))
    drop = away[over] & (rank >= room[over].view(-1, 1))
    out = update.clone().reshape(n, -1)
    out[over] = out[over].masked_fill(drop, 0)
    return out.reshape(update.shape)
