"""Random flips at a given per-row L0: the noise an attack must beat.

The other baselines are methods of the iterative attack (:mod:`harness.attacks.loop`):
``g2s`` (G2S without RSF) and ``rsf`` (RSF alone). The ANN comparison is in
:mod:`harness.attacks.ann`.
"""
from __future__ import annotations

import numpy as np
import torch

from ..models import SpikingNetwork
from .judge import check_spikes, judge
from .randomness import row_generators, uniform
from .threats import allowed_elements
from ..records import AttackRecord

#: Generator stream of the random baseline: its draws are independent of the attack's.
RANDOM_STREAM = 1


def random_flip_inputs(clean: np.ndarray, l0: np.ndarray, generators: list[torch.Generator],
                       threat: str = "flips") -> np.ndarray:
    """Flip exactly ``l0[i]`` elements of row i, chosen uniformly without replacement among the
    elements ``threat`` lets flip (:func:`harness.attacks.threats.allowed_elements`).

    Args:
        clean: (R, ...) uint8 binary inputs.
        l0: (R,) flips per row (at most the row's allowed elements).
        generators: one per row; row i's elements are ranked by one uniform draw (forbidden
            elements ranked last, so "flips" draws exactly as without a threat).
    Returns:
        (R, ...) uint8 flipped inputs.
    """
    l0 = np.asarray(l0, dtype=np.int64)
    numel = int(np.prod(clean.shape[1:]))
    if len(l0) and (l0.min() < 0 or l0.max() > numel):
        raise ValueError(f"flips per row must be in [0, {numel}], got {l0.min()}..{l0.max()}")
    allowed = torch.from_numpy(allowed_elements(clean, threat).reshape(len(clean), numel))
    if len(l0) and (torch.as_tensor(l0) > allowed.sum(1)).any():
        raise ValueError(f"more flips than threat '{threat}' allows in some row")
    top = int(l0.max()) if len(l0) else 0
    draws = uniform(generators, (len(clean), numel))
    ranked = torch.where(allowed, draws, torch.full_like(draws, 2.0)).argsort(dim=1, stable=True)[:, :top]
    chosen = torch.zeros((len(clean), numel), dtype=torch.bool)
    chosen.scatter_(1, ranked, torch.arange(top)[None, :] < torch.as_tensor(l0)[:, None])
    return clean ^ chosen.numpy().reshape(clean.shape).astype(np.uint8)


def random_flips(net: SpikingNetwork, clean: np.ndarray, labels: np.ndarray, l0: np.ndarray, seed: int = 0,
                 targets: np.ndarray | None = None, sample_index: np.ndarray | None = None,
                 batch_size: int = 128, threat: str = "flips") -> AttackRecord:
    """Random flips at the same per-row L0 as an attack, in the attack's record format.

    Rows with ``l0`` 0 are left clean (not attacked). Success is judged as for the attack
    (untargeted, or the row's target) and only rows classified correctly before count; a
    failed row is rolled back to its clean input. ``iterations`` is 1 for rows with flips,
    ``zero_grad_iterations`` is -1 (no gradient).

    Args:
        clean: (R, *input_shape, T) binary inputs; labels, targets (-1 = untargeted): (R,).
        l0: (R,) flips per row, e.g. the final ``l0`` of an attack record.
        seed: seeds one generator per row from (seed, sample index[, target]) on the baseline's
            own stream, independent of the attack's draws.
        sample_index: (R,) indices in the test split (default 0..R-1).
        threat: the flips allowed (the matched attack's threat, :mod:`harness.attacks.threats`).
    """
    clean = check_spikes(net, clean, "random-flip input")
    rows = len(clean)
    labels = np.asarray(labels, dtype=np.int64)
    targets = np.full(rows, -1, dtype=np.int64) if targets is None else np.asarray(targets, dtype=np.int64)
    sample_index = np.arange(rows) if sample_index is None else np.asarray(sample_index, dtype=np.int64)
    l0 = np.asarray(l0, dtype=np.int64)
    noisy = np.empty_like(clean)
    for start in range(0, rows, batch_size):
        part = slice(start, start + batch_size)
        noisy[part] = random_flip_inputs(clean[part], l0[part], row_generators(
            seed, sample_index[part], targets[part], stream=RANDOM_STREAM), threat)
    pred_clean, _ = judge(net, clean, labels, targets, batch_size)
    pred_noisy, won = judge(net, noisy, labels, targets, batch_size)
    correct = pred_clean == labels
    won &= correct
    return AttackRecord(
        clean=clean, adversarial=np.where(won.reshape(-1, *[1] * (clean.ndim - 1)), noisy, clean),
        labels=labels, targets=targets, sample_index=sample_index, pred_clean=pred_clean,
        pred_adv=np.where(won, pred_noisy, pred_clean), correct_before=correct, success=won,
        l0=np.where(won, l0, 0), l0_before_reduction=l0, l0_at_success=np.where(won, l0, -1),
        iterations=(l0 > 0).astype(np.int64), rsf_iterations=np.zeros(rows, dtype=np.int64),
        zero_grad_iterations=np.full(rows, -1, dtype=np.int64),
        attrs={"method": "random", "params": {"seed": seed}, "seed": seed})
