"""Transfer: judge an adversarial set crafted on one model on another model.

A real attacker rarely has the deployed weights: an adversarial set crafted on model A (another
seed, the unquantized weights, ...) is judged on model B. The crafting columns (flips,
iterations, RSF use) describe the set as made on A; predictions, ``correct_before`` and
``success`` are recomputed on B, and success counts only rows B classified correctly before.
Rows whose attack failed on A hold the clean input, so on B they cannot succeed either.
"""
from __future__ import annotations

from dataclasses import replace

from ..models import SpikingNetwork
from .judge import check_spikes, judge
from ..records import AttackRecord


def transfer(record: AttackRecord, net: SpikingNetwork, batch_size: int = 256) -> AttackRecord:
    """``record`` judged on ``net``: pred_clean, pred_adv, correct_before and success recomputed.

    The returned attrs keep the source's; callers set ``crafted_on`` and ``model``.
    """
    clean = check_spikes(net, record.clean, "transfer set (clean)")
    adversarial = check_spikes(net, record.adversarial, "transfer set (adversarial)")
    pred_clean, _ = judge(net, clean, record.labels, record.targets, batch_size)
    pred_adv, won = judge(net, adversarial, record.labels, record.targets, batch_size)
    correct = pred_clean == record.labels
    return replace(record, pred_clean=pred_clean, pred_adv=pred_adv, correct_before=correct, success=won & correct)
