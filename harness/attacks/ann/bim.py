"""BIM (Kurakin et al., 2017) on the ANN twin: STEPS signed steps projected on the eps ball."""
from __future__ import annotations

import torch

from .gradient import _ce_step
from .model import RateANN

STEPS = 10            # BIM and PGD iterations
STEP_FACTOR = 2.5     # BIM/PGD step size alpha = STEP_FACTOR * eps / STEPS


def bim(model: RateANN, x: torch.Tensor, y: torch.Tensor, eps: float, start: torch.Tensor | None = None) -> torch.Tensor:
    """STEPS sign steps of alpha = STEP_FACTOR * eps / STEPS, projected on the eps ball and [0, 1]."""
    alpha = STEP_FACTOR * eps / STEPS
    adv = x.clone() if start is None else start
    for _ in range(STEPS):
        adv = adv + alpha * _ce_step(model, adv, y)
        adv = torch.min(torch.max(adv, x - eps), x + eps).clamp(0, 1)
    return adv
