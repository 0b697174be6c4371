"""The record of an attack that works one row at a time (SDA, SpikeFool): rows, targets, counters."""
from __future__ import annotations

from typing import Callable

import numpy as np

from ..metrics import predict
from ..records import AttackRecord
from ..train import output_counts
from .targets import expand_targets

#: Per-row counters a row attack reports beside ``success``.
COUNTERS = ("l0_before_reduction", "l0_at_success", "iterations", "forward_passes", "backward_passes")

#: attack_row(clean (*shape, T) uint8, label, target or -1) -> (adversarial uint8, stats with
#: ``success`` and any of :data:`COUNTERS`).
RowAttack = Callable[[np.ndarray, int, int], tuple[np.ndarray, dict]]


def rowwise_record(net, spikes: np.ndarray, labels: np.ndarray, attack_row: RowAttack, attrs: dict,
                   batch_size: int, targeted: str | None = None, seed: int = 0) -> AttackRecord:
    """Run ``attack_row`` on every (sample, target) row whose sample the model classifies correctly
    (the others: clean, 0 passes); targets from :func:`harness.attacks.targets.expand_targets`
    (seeded per sample, so a row's target does not depend on the others).

    Args:
        spikes: (N, *shape, T) uint8 test inputs; labels: (N,) their classes.
        attrs: the record's attributes (``method``, ``params``, ...).
    """
    clean_counts = output_counts(net, spikes, batch_size)
    rows, targets = expand_targets(targeted, labels, net.spec.n_classes, np.arange(len(spikes)), seed, clean_counts)
    pred_clean = predict(clean_counts)[rows]
    correct = pred_clean == labels[rows]
    adversarial = spikes[rows].copy()
    success = np.zeros(len(rows), bool)
    cols = {key: np.zeros(len(rows), np.int64) for key in COUNTERS}
    cols["l0_at_success"][:] = -1
    for r in np.flatnonzero(correct):
        adversarial[r], stats = attack_row(spikes[rows[r]], int(labels[rows[r]]), int(targets[r]))
        success[r] = stats["success"]
        for key in COUNTERS:
            cols[key][r] = int(stats.get(key, cols[key][r]))
    pred_adv = np.where(success, predict(output_counts(net, adversarial, batch_size)), pred_clean)
    zeros = np.zeros(len(rows), np.int64)
    return AttackRecord(
        clean=spikes[rows], adversarial=adversarial, labels=labels[rows], targets=targets, sample_index=rows,
        pred_clean=pred_clean, pred_adv=pred_adv, correct_before=correct, success=success,
        l0=(adversarial != spikes[rows]).reshape(len(rows), -1).sum(1).astype(np.int64),
        rsf_iterations=zeros, zero_grad_iterations=zeros.copy(), queries=zeros.copy(), **cols, attrs=attrs)
