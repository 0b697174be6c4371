"""FGSM (Goodfellow et al., 2015) on the ANN twin: one signed gradient step of size eps."""
from __future__ import annotations

import torch

from .gradient import _ce_step
from .model import RateANN


def fgsm(model: RateANN, x: torch.Tensor, y: torch.Tensor, eps: float) -> torch.Tensor:
    """One step of size eps along the gradient sign, clipped to [0, 1]."""
    return (x + eps * _ce_step(model, x, y)).clamp(0, 1)
