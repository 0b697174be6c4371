"""PGD (Madry et al., 2018) on the ANN twin: BIM from a seeded uniform start in the eps ball."""
from __future__ import annotations

import torch

from .bim import bim
from .model import RateANN


def pgd(model: RateANN, x: torch.Tensor, y: torch.Tensor, eps: float, generator: torch.Generator) -> torch.Tensor:
    """BIM from a uniform random start in the eps ball (seeded by ``generator``)."""
    start = (x + (torch.rand(x.shape, generator=generator) * 2 - 1) * eps).clamp(0, 1)
    return bim(model, x, y, eps, start)
