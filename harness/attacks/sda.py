"""SDA, the sparse gradient attack with single-flip tests, for binary spike inputs.

After the PDSG-SDA attack of ryime/PDSG-SDA ``utils/attack.py`` class ``SDA`` (see
../shared/notes/attack-zoo.md, section 3). Per row, with the C&W margin L of
:func:`harness.attacks.scores.margin` on the class scores of :mod:`harness.attacks.scores`
(untargeted: the label's; targeted: the target's):

1. g = dL/dS through the attack's surrogate (PDSG by default; one backward pass);
2. realisable entries: g > 0 where S = 1 (removing the spike lowers L), g < 0 where S = 0
   (adding one does) -- the authors' 0 <= S - sign(g) <= 1 --, allowed by the threat
   (:mod:`harness.attacks.threats`) and not already flipped (the authors exclude chosen pixels);
3. the top k = (n + 1) * K_INIT of them by |g| at iteration n = 0, 1, ... (ties by element index);
4. each of the k single flips gets its own forward pass (batched): FD_i = L(S ^ e_i) - L(S);
5. every flip with FD_i < 0 is applied at once;
6. stop at success (untargeted: another class wins alone; targeted: the target does), after
   ``iterations`` iterations or when the row has used ``max_passes`` forward passes;
7. reduction: the applied flips sorted by |FD| (smallest first); a binary search finds how many
   of the first ones can be undone with the row still a success.

Ours differs from the authors' code: class scores = output counts with the logits as a
tie-breaker (the authors' networks output logits; ours predict by spike count, docs/attacks.md);
FD < 0 applies a flip (the authors take FD <= 0, which with our scores would apply flips that
change nothing); zero gradients are not filled with random values (PDSG's Gaussian is nowhere
exactly 0); the passes cap. Deterministic: no random draws.
"""
from __future__ import annotations

import numpy as np
import torch

from ..metrics import predict
from ..models import SpikingNetwork
from .scores import class_scores, margin
from .threats import allowed_elements

#: k at the first iteration; iteration n tests (n + 1) * K_INIT single flips.
K_INIT = 10


def succeeded(net: SpikingNetwork, x: torch.Tensor, label: int, target: int) -> bool:
    """Whether the single row ``x`` (1, *shape, T) is a success: the target wins alone (target >= 0)
    or another class than ``label`` does (target -1); the count prediction with the tie rule."""
    with torch.no_grad():
        pred = predict(net(x).sum(-1).numpy())[0]
    return bool(pred == target) if target >= 0 else bool(pred != label and pred >= 0)


def sda_row(net: SpikingNetwork, clean: np.ndarray, label: int, iterations: int, max_passes: int,
            threat: str = "flips", batch_size: int = 128, target: int = -1) -> tuple[np.ndarray, dict]:
    """Attack one row ``clean`` (*shape, T) uint8 (towards ``target``, or untargeted with -1).

    Returns:
        (adversarial uint8 like ``clean``, clean when failed; dict with success,
        l0_before_reduction, l0_at_success, iterations, forward_passes, backward_passes and
        ``applied_fd``: the FD of every applied flip when it was tested).
    """
    cls, targeted = (target, True) if target >= 0 else (label, False)
    allowed = torch.from_numpy(allowed_elements(clean, threat).reshape(-1))
    x = torch.from_numpy(clean.astype(np.float32))[None]
    applied, fds = [], []
    stats = {"success": False, "iterations": 0, "forward_passes": 0, "backward_passes": 0, "l0_at_success": -1}
    for n in range(iterations):
        if stats["forward_passes"] >= max_passes:
            break
        stats["iterations"] += 1
        xg = x.clone().requires_grad_(True)
        base = margin(class_scores(net, xg), cls, targeted)
        (g,) = torch.autograd.grad(base.sum(), xg)
        stats["forward_passes"] += 1
        stats["backward_passes"] += 1
        flat, gf = x.view(-1), g.reshape(-1)
        realisable = allowed & (((flat == 0) & (gf < 0)) | ((flat == 1) & (gf > 0)))
        realisable[applied] = False
        score = torch.where(realisable, gf.abs(), torch.full_like(gf, -1.0))
        k = min((n + 1) * K_INIT, int(realisable.sum()), max_passes - stats["forward_passes"])
        if k <= 0:
            break
        chosen = torch.sort(score, descending=True, stable=True).indices[:k]
        fd = _single_flip_fd(net, x, chosen, cls, targeted, float(base.detach()), batch_size)
        stats["forward_passes"] += k
        better = fd < 0
        for element, value in zip(chosen[better].tolist(), fd[better].tolist()):
            flat[element] = 1 - flat[element]
            applied.append(element)
            fds.append(value)
        if better.any():
            stats["forward_passes"] += 1
            if succeeded(net, x, label, target):
                stats["success"] = True
                stats["l0_at_success"] = len(applied)
                break
    stats["l0_before_reduction"] = len(applied)
    stats["applied_fd"] = fds
    if not stats["success"]:
        return clean.copy(), stats
    return _reduce(net, clean, applied, fds, label, target, stats), stats


def _single_flip_fd(net, x, chosen: torch.Tensor, cls: int, targeted: bool, base: float,
                    batch_size: int) -> torch.Tensor:
    """FD_i = L(x with element chosen[i] flipped) - L(x), one forward pass per candidate (batched)."""
    out = []
    with torch.no_grad():
        for start in range(0, len(chosen), batch_size):
            part = chosen[start:start + batch_size]
            cand = x.repeat(len(part), *[1] * (x.ndim - 1)).view(len(part), -1)
            rows = torch.arange(len(part))
            cand[rows, part] = 1 - cand[rows, part]
            out.append(margin(class_scores(net, cand.view(len(part), *x.shape[1:])), cls, targeted) - base)
    return torch.cat(out)


def _reduce(net, clean: np.ndarray, applied: list[int], fds: list[float], label: int, target: int,
            stats: dict) -> np.ndarray:
    """Undo the most flips of smallest |FD| first with the row still a success (binary search)."""
    order = [applied[i] for i in np.argsort(np.abs(fds), kind="stable")]

    def example(undone: int) -> np.ndarray:
        adv = clean.copy().reshape(-1)
        keep = np.array(order[undone:], dtype=np.int64)
        adv[keep] ^= 1
        return adv.reshape(clean.shape)

    low, high = 0, len(order) - 1  # undoing 0 is a success; undoing all is clean (not one)
    while low < high:
        mid = (low + high + 1) // 2
        stats["forward_passes"] += 1
        if succeeded(net, torch.from_numpy(example(mid).astype(np.float32))[None], label, target):
            low = mid
        else:
            high = mid - 1
    return example(low)
