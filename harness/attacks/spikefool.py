"""SpikeFool: SparseFool for binary spike inputs (Buechel et al. 2022, jubueche/SPAA ``sparsefool.py``).

Per row, up to ``loops`` outer loops (the authors' ``max_iter`` 20), until the prediction changes:

1. DeepFool (:func:`deepfool`, the authors' ``deepfool``) from the current binary input x_i: at
   most ``deepfool_iterations`` (50) steps towards the nearest linearised class boundary of the
   class scores f (:mod:`harness.attacks.scores`), each r = max(|f_k - f_y| / ||w_k||, 0.01)
   w_k / ||w_k|| for the closest class k (w_k = grad f_k - grad f_y), until x_0 + (1 + overshoot)
   r_tot (overshoot 0.02) changes the predicted class; then the boundary point x_0 + lambda r_tot
   (lambda 2) and the unit normal grad (f_k - f_y) there;
2. the linear solver (:func:`linear_solve`, the authors' ``linear_solver``): coordinates in order
   of decreasing |normal| move towards the plane, each by |f + beta| / |normal_i| along
   sign(normal_i) (beta = 0.001 sign(f)), clamped to the input's bounds, until the side of the
   plane flips; then rounding to {0, 1}.

Success: the count prediction (with the tie rule, :func:`harness.metrics.predict`) is not the
label and L0 <= ``max_l0`` (the authors' ``max_hamming_distance``, 1,000 on N-MNIST); a failed
row keeps its clean input. Ours differs: class scores = counts with the logit tie-breaker instead
of the authors' network output; the solver runs in closed form over the sorted coordinates (the
same moves as the authors' loop, one at a time); per-element bounds honour the threat (add-only:
[clean, 1], delete-only: [0, clean]); deterministic (no draws).
"""
from __future__ import annotations

import numpy as np
import torch

from ..metrics import predict
from ..models import SpikingNetwork
from .scores import class_scores
from .threats import allowed_elements

#: The authors' settings (``sparsefool`` and ``deepfool`` defaults used on N-MNIST).
LAMBDA, OVERSHOOT, STEP_SIZE, BETA = 2.0, 0.02, 0.01, 0.001


def _scores_and_jacobian(net: SpikingNetwork, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Scores f (K,) at the single input ``x`` (*shape, T) and their gradients (K, *shape, T): one
    batched pass over K copies (the work of the authors' one forward and K backward passes)."""
    k = net.spec.n_classes
    xs = x.detach()[None].repeat(k, *[1] * x.ndim).requires_grad_(True)
    scores = class_scores(net, xs)
    (jac,) = torch.autograd.grad(scores.diagonal().sum(), xs)
    return scores[0].detach(), jac


def _top(net: SpikingNetwork, x: torch.Tensor) -> int:
    """argmax of the class scores of the single input ``x`` (the authors' check of DeepFool)."""
    with torch.no_grad():
        return int(class_scores(net, x[None])[0].argmax())


def deepfool(net: SpikingNetwork, x0: torch.Tensor, label: int, iterations: int,
             stats: dict) -> tuple[torch.Tensor, torch.Tensor]:
    """(unit normal, boundary point x0 + LAMBDA r_tot), both like ``x0``; counts passes in ``stats``."""
    r_tot = torch.zeros_like(x0)
    x_adv, k_i = x0.clone(), label
    for _ in range(iterations):
        f, jac = _scores_and_jacobian(net, x_adv)
        stats["forward_passes"] += 1
        stats["backward_passes"] += len(f)
        w = jac - jac[label]
        gap = (f - f[label]).abs()
        norms = w.reshape(len(f), -1).norm(dim=1)
        pert = torch.where(norms > 0, gap / norms.clamp_min(1e-30), torch.full_like(gap, float("inf")))
        pert[label] = float("inf")
        k = int(pert.argmin())
        if not torch.isfinite(pert[k]):
            break  # no class's gradient differs from the label's: no direction to step
        r_tot = r_tot + pert[k].clamp_min(STEP_SIZE) * w[k] / norms[k]
        x_adv = x0 + r_tot
        k_i = _top(net, x0 + (1 + OVERSHOOT) * r_tot)
        stats["forward_passes"] += 1
        if k_i != label:
            break
    other = k_i if k_i != label else int(torch.where(torch.arange(len(f)) == label, -torch.inf, f).argmax())
    x_in = x_adv.clone().requires_grad_(True)
    scores = class_scores(net, x_in[None])[0]
    (normal,) = torch.autograd.grad(scores[other] - scores[label], x_in)
    stats["forward_passes"] += 1
    stats["backward_passes"] += 1
    return normal / (normal.norm() + 1e-10), x0 + LAMBDA * r_tot


def linear_solve(x: np.ndarray, normal: np.ndarray, point: np.ndarray, low: np.ndarray,
                 high: np.ndarray) -> np.ndarray:
    """Move coordinates of the binary ``x`` (flat float64) towards the plane {v: normal . (v - point) = 0}
    in order of decreasing |normal| (ties by index) until its side flips; round to {0, 1}.

    Each coordinate moves by max(|f + beta| / |normal_i|, 1e-4) along sign(normal_i), clamped to
    [low_i, high_i] (f = normal . (x - point) before the move, beta = BETA sign of the starting f);
    every move raises f by |normal_i| times the distance moved, so the walk is a cumulative sum.
    """
    f0 = float(normal @ (x - point))
    sign = np.sign(f0)
    order = np.argsort(-np.abs(normal), kind="stable")
    order = order[normal[order] != 0]
    n = normal[order]
    room = np.where(n > 0, high[order] - x[order], x[order] - low[order])  # distance to the bound it moves to
    before = f0 + np.concatenate([[0.0], np.cumsum(np.abs(n) * room)[:-1]])  # f before each coordinate's move
    step = np.maximum(np.abs(before + BETA * sign) / np.abs(n), 1e-4)
    moved = np.minimum(step, room)
    after = before + np.abs(n) * moved
    flipped = np.flatnonzero(np.sign(after) != sign)
    last = flipped[0] + 1 if len(flipped) else len(order)
    out = x.copy()
    out[order[:last]] += np.sign(n[:last]) * moved[:last]
    return np.round(out)


def spikefool_row(net: SpikingNetwork, clean: np.ndarray, label: int, loops: int, deepfool_iterations: int,
                  max_l0: int, threat: str = "flips") -> tuple[np.ndarray, dict]:
    """Attack one row ``clean`` (*shape, T) uint8, untargeted.

    Returns:
        (adversarial uint8 like ``clean``, clean when failed; dict with success, iterations
        (outer loops), l0_before_reduction (L0 of the final input, also when over ``max_l0``),
        forward_passes, backward_passes).
    """
    allowed = allowed_elements(clean, threat).reshape(-1)
    flat_clean = clean.reshape(-1).astype(np.float64)
    low = np.where(allowed, 0.0, flat_clean)
    high = np.where(allowed, 1.0, flat_clean)
    x = flat_clean.copy()
    stats = {"success": False, "iterations": 0, "forward_passes": 0, "backward_passes": 0}
    pred = label
    for _ in range(loops):
        stats["iterations"] += 1
        current = torch.from_numpy(x.reshape(clean.shape).astype(np.float32))
        normal, point = deepfool(net, current, label, deepfool_iterations, stats)
        x = linear_solve(x, normal.reshape(-1).double().numpy(), point.reshape(-1).double().numpy(), low, high)
        with torch.no_grad():
            pred = int(predict(net(torch.from_numpy(x.reshape(clean.shape).astype(np.float32))[None])
                               .sum(-1).numpy())[0])
        stats["forward_passes"] += 1
        if pred != label and pred >= 0:
            break
    adversarial = x.reshape(clean.shape).astype(np.uint8)
    stats["l0_before_reduction"] = int((adversarial != clean).sum())
    stats["success"] = pred != label and pred >= 0 and stats["l0_before_reduction"] <= max_l0
    return (adversarial if stats["success"] else clean.copy()), stats
