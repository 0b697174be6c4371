"""Sparse mode, part (b): revert the flips an adversarial example does not need.

A harness addition beyond the paper (G2S changes far more events than later attacks need;
../shared/notes/attack-spec.md, "Measured here"). For each successful row, with its flips
ordered most useful first:

1. prefix search: bisect for a short prefix of the ordered flips that is still adversarial
   (keeping the first k flips and reverting the rest; about log2(L0) trials);
2. greedy halving: try reverting chunks of the kept flips, least useful first, with chunk
   sizes halving down to single flips; a chunk stays reverted when the example stays
   adversarial.

Every trial is judged on the unchanged model with the attack's success rule, so the result is
adversarial by construction. All rows advance together: each round judges one candidate per
row in one batched forward pass. A row stops after ``MAX_TRIALS`` trials, bounding the cost
for rows with many flips. A row's result depends only on its own trials, never on its batch.
"""
from __future__ import annotations

import numpy as np

from ..models import SpikingNetwork
from .judge import judge

#: Trials (candidate examples judged) per row, prefix search included.
MAX_TRIALS = 128


class _RowReduction:
    """The trial sequence of one row: prefix search, then greedy halving."""

    def __init__(self, order: np.ndarray, pred: int):
        self.order = order                  # flat indices of the flips, most useful first
        self.best, self.pred = order, pred  # smallest adversarial set found so far, its prediction
        self.lo, self.hi = 0, len(order)    # keeping lo flips fails (clean), keeping hi succeeds
        self.kept: np.ndarray | None = None  # greedy phase: kept flips, least useful first
        self.chunk = self.pos = self.trials = 0
        self.trial: np.ndarray | None = None

    def next_trial(self) -> np.ndarray | None:
        """Flips to keep in the next candidate, or None when this row is done."""
        if self.trials >= MAX_TRIALS:
            return None
        if self.kept is None and self.hi - self.lo > 1:
            self.trial = self.order[:(self.lo + self.hi) // 2]
        else:
            if self.kept is None:
                self.kept = self.best[::-1]
                self.chunk = len(self.kept) // 2
            while self.chunk and self.pos >= len(self.kept):
                self.chunk, self.pos = self.chunk // 2, 0
            if not self.chunk:
                return None
            self.trial = np.delete(self.kept, np.s_[self.pos:self.pos + self.chunk])
        self.trials += 1
        return self.trial

    def result(self, adversarial: bool, pred: int) -> None:
        """Record the judgement of the candidate from the last :meth:`next_trial`."""
        if adversarial:
            self.best, self.pred = self.trial, pred
        if self.kept is None:
            self.lo, self.hi = (self.lo, len(self.trial)) if adversarial else (len(self.trial), self.hi)
        elif adversarial:
            self.kept = self.trial
        else:
            self.pos += self.chunk


def _with_flips(clean: np.ndarray, flips: np.ndarray) -> np.ndarray:
    """``clean`` with the elements at flat indices ``flips`` flipped."""
    x = clean.copy()
    x.reshape(-1)[flips] ^= 1
    return x


def reduce_flips(net: SpikingNetwork, clean: np.ndarray, orders: list[np.ndarray], pred: np.ndarray,
                 labels: np.ndarray, targets: np.ndarray, batch_size: int = 128) -> tuple[np.ndarray, np.ndarray]:
    """Reduce successful adversarial examples.

    Args:
        clean: (M, *shape, T) uint8 clean inputs of the successful rows.
        orders: M arrays of flat indices of each row's flips, most useful first (all of them
            together make the adversarial example).
        pred: (M,) predictions of the unreduced adversarial examples.
        labels, targets: (M,) true classes and targets (-1 = untargeted).
        batch_size: candidates per forward pass.
    Returns:
        (adversarial (M, *shape, T) uint8, pred (M,) int64) of the reduced examples.
    """
    states = [_RowReduction(order, int(p)) for order, p in zip(orders, pred)]
    while True:
        trials = [(i, flips) for i, state in enumerate(states) if (flips := state.next_trial()) is not None]
        if not trials:
            break
        rows = np.array([i for i, _ in trials])
        candidates = np.stack([_with_flips(clean[i], flips) for i, flips in trials])
        verdict_pred, verdict = judge(net, candidates, labels[rows], targets[rows], batch_size)
        for i, ok, p in zip(rows, verdict, verdict_pred):
            states[i].result(bool(ok), int(p))
    adversarial = np.stack([_with_flips(c, s.best) for c, s in zip(clean, states)])
    return adversarial, np.array([s.pred for s in states], dtype=np.int64)
