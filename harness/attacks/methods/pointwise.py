"""The pointwise attack for spikes: a decision-based L0 attack that sees only the predicted label.

Schott, Rauber, Bethge and Brendel, "Towards the first adversarially robust neural network model
on MNIST", ICLR 2019 (Foolbox's ``PointwiseAttack``). It starts from a misclassified input and
reverts its differences from the clean input one element at a time while the label stays wrong,
until no single revert keeps it wrong. Ours, per row:

- start: the clean input with every element flipped with probability r, for r = 0.01, 0.02,
  0.05, 0.1, 0.2, 0.35, 0.5 in turn (one query each, one uniform draw per r from the row's
  generator), the first that is a success (another class wins alone; targeted: the target);
  none: the row fails;
- reduce: the flipped elements in a random order are tried in blocks, a block reverted (set back
  to clean) when the input stays a success; the block size starts at half the flips and halves
  after each pass, down to single elements, where passes repeat until one reverts nothing: then
  no single revert keeps the input wrong (the pointwise attack's fixed point);
- a row also ends after ``--queries`` queries (then possibly not minimal).

Success: a success within ``--max-flips`` flips (default the largest evaluation budget). The
median L0 of the successes is this attack's result. Differs from Foolbox: spikes are binary, so
a revert is a flip back (no binary search along a pixel's value), and the block passes before
the single-element passes save queries on starts with thousands of flips (the fixed point and
its test are Foolbox's).
"""
from __future__ import annotations

import numpy as np
import torch

from ..query import QueryAttack, QueryConfig, RowResult, flip, fooled

#: Flip probabilities of the starting points, tried in turn.
START_RATES = (0.01, 0.02, 0.05, 0.1, 0.2, 0.35, 0.5)


def search(clean: np.ndarray, label: int, target: int, config: QueryConfig, generator: torch.Generator):
    """One row's pointwise attack (a search of :func:`harness.attacks.query.drive`)."""
    used = 0
    for rate in START_RATES:
        flips = np.flatnonzero(torch.rand(clean.size, generator=generator).numpy() < rate)
        counts = yield flip(clean, flips)
        used += 1
        if fooled(counts, label, target) or used == config.queries:
            break
    start = len(flips)
    if not fooled(counts, label, target):
        return RowResult(clean, counts, used, start)
    block = max(len(flips) // 2, 1)
    while used < config.queries:
        reverted = False
        order = flips[torch.randperm(len(flips), generator=generator).numpy()]
        for first in range(0, len(order), block):
            if used == config.queries:
                break
            keep = np.setdiff1d(flips, order[first:first + block], assume_unique=True)
            answer = yield flip(clean, keep)
            used += 1
            if fooled(answer, label, target):
                flips, counts, reverted = keep, answer, True
        if block == 1 and not reverted:
            break
        block = max(block // 2, 1)
    return RowResult(flip(clean, flips), counts, used, start)


class Pointwise(QueryAttack):
    name, summary, needs = "pointwise", "pointwise: revert flips of a misclassified input while the label stays wrong", "labels"
    settings = frozenset({"max_flips", "queries", "oracle", "profile", "seed", "targeted", "n"})

    search = staticmethod(search)
