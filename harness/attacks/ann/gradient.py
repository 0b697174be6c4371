"""The shared step of the L-infinity attacks: the sign of the cross-entropy's input gradient."""
from __future__ import annotations

import torch

from .model import RateANN


def _ce_step(model: RateANN, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Sign of the input gradient of the cross-entropy (the ascent direction)."""
    x = x.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(torch.nn.functional.cross_entropy(model(x), y, reduction="sum"), x)
    return grad.sign()
