"""Per-sample measurements shared by every stage.

Conventions (../shared/notes/attack-spec.md, "The attack loop"):
- prediction = the class with the most output spikes over the sample window; a tie for the
  most, including an all-silent output, is "no prediction" (-1) and counts as incorrect. The
  same rule holds offline (SLAYER) and on the device.
- L0 = number of flipped input elements; flip rate = L0 / numel.
Per-sample values are kept; aggregates are computed only over samples the model classified
correctly before the attack.
"""
from __future__ import annotations

import numpy as np

NO_PREDICTION = -1


def predict(counts: np.ndarray) -> np.ndarray:
    """Predicted class per sample with the tie rule.

    Args:
        counts: (N, K) output spike counts (any numeric dtype).
    Returns:
        (N,) int64 class index, or -1 where the maximum is not unique (silence included).
    """
    counts = np.asarray(counts)
    if counts.ndim != 2:
        raise ValueError(f"counts must be (N, K), got shape {counts.shape}")
    best = counts.max(axis=1, keepdims=True)
    n_best = (counts == best).sum(axis=1)
    pred = counts.argmax(axis=1).astype(np.int64)
    pred[n_best != 1] = NO_PREDICTION
    return pred


def l0(clean: np.ndarray, adv: np.ndarray) -> np.ndarray:
    """Number of flipped elements per sample.

    Args:
        clean, adv: (N, ...) binary spike tensors of the same shape.
    Returns:
        (N,) int64 count of elements where they differ.
    """
    clean = np.asarray(clean)
    adv = np.asarray(adv)
    if clean.shape != adv.shape:
        raise ValueError(f"shape mismatch: clean {clean.shape} vs adversarial {adv.shape}")
    return (clean != adv).reshape(len(clean), -1).sum(axis=1).astype(np.int64)


def accuracy(pred: np.ndarray, labels: np.ndarray) -> float:
    """Fraction of samples whose prediction equals the label (no prediction is wrong)."""
    pred = np.asarray(pred)
    return float(np.mean(pred == np.asarray(labels))) if len(pred) else float("nan")


def rate(flags: np.ndarray, mask: np.ndarray | None = None) -> float:
    """Mean of boolean ``flags`` over ``mask`` (all samples when None); NaN when empty."""
    flags = np.asarray(flags, dtype=bool)
    if mask is not None:
        flags = flags[np.asarray(mask, dtype=bool)]
    return float(flags.mean()) if flags.size else float("nan")


def success_by_budget(l0_at_success: np.ndarray, success: np.ndarray, budgets, mask=None) -> dict:
    """Success rate at every budget from one run (Foolbox-style robustness curve).

    A sample counts as a success at budget B when it succeeded with L0 <= B.

    Args:
        l0_at_success: (N,) flips at first success (any value where not successful).
        success: (N,) bool.
        budgets: iterable of int flip budgets.
        mask: (N,) bool, the samples counted (classified correctly before the attack).
    Returns:
        {budget: success rate} with int keys.
    """
    success = np.asarray(success, dtype=bool)
    l0s = np.asarray(l0_at_success)
    return {int(b): rate(success & (l0s <= b), mask) for b in budgets}


def margin_of_counts(counts: np.ndarray, labels: np.ndarray, targets: np.ndarray | None = None) -> np.ndarray:
    """(N,) int64 margin of output spike counts (N, K) that an attack drives down.

    Untargeted rows (target -1 or ``targets`` None): the label's count minus the largest other
    count (<= 0 once another class ties or wins). Targeted rows: the largest count of a class other
    than the target minus the target's count (< 0 once the target wins alone).
    """
    counts = np.asarray(counts, dtype=np.int64)
    rows = np.arange(len(counts))
    labels = np.asarray(labels, dtype=np.int64)
    targets = np.full(len(counts), -1, np.int64) if targets is None else np.asarray(targets, dtype=np.int64)
    aimed = np.where(targets >= 0, targets, labels)
    others = counts.copy()
    others[rows, aimed] = np.iinfo(np.int64).min
    best_other = others.max(axis=1)
    own = counts[rows, aimed]
    return np.where(targets >= 0, best_other - own, own - best_other)
