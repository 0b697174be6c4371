"""Threat models of the flip attacks: which flips of a binary input an attack may make.

- ``flips``: any element may flip (0 -> 1 or 1 -> 0), the paper's threat;
- ``add-only``: spikes may be added, never removed: the adversarial input is >= the clean one
  everywhere (an adversary that injects events, e.g. light flashes on a sensor);
- ``delete-only``: spikes may be removed, never added: adversarial <= clean (an adversary that
  drops events, e.g. a lossy link).

Undoing one of the attack's own earlier flips is always allowed (it moves back towards clean).
"""
from __future__ import annotations

import numpy as np
import torch

#: The threats a flip attack takes, the default first.
FLIP_THREATS = ("flips", "add-only", "delete-only")
#: Attack-id tags of the non-default threats (the default adds nothing, so existing ids stay valid).
THREAT_TAGS = {"flips": None, "add-only": "add", "delete-only": "del"}


def allowed_update(clean: torch.Tensor, update: torch.Tensor, threat: str) -> torch.Tensor:
    """``update`` with the flips ``threat`` forbids set to 0 (``update`` itself for "flips").

    Args:
        clean: (N, ...) the clean binary inputs (float, same shape as ``update``).
        update: (N, ...) ternary update d in {-1, 0, +1}, applied as clip(S + d, 0, 1) to an
            input S that already honours the threat.
        threat: one of :data:`FLIP_THREATS`.
    """
    if threat == "add-only":  # a -1 on a clean spike would remove it
        return torch.where((clean > 0) & (update < 0), torch.zeros_like(update), update)
    if threat == "delete-only":  # a +1 on a clean silence would add a spike
        return torch.where((clean == 0) & (update > 0), torch.zeros_like(update), update)
    return update


def allowed_elements(clean: np.ndarray, threat: str) -> np.ndarray:
    """Bool mask (same shape as ``clean``, uint8 binary) of the elements ``threat`` lets flip."""
    if threat == "add-only":
        return clean == 0
    if threat == "delete-only":
        return clean == 1
    return np.ones(clean.shape, dtype=bool)
