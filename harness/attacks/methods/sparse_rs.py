"""Sparse-RS for spikes: random search over sets of K flipped input elements (score-based, L0).

Croce, Andriushchenko, Singh, Flammarion and Hein, "Sparse-RS: a versatile framework for
query-efficient sparse black-box adversarial attacks", AAAI 2022 (fra31/sparse-rs,
``rs_attacks.py``, L0 mode). Every element of a (C, ..., T) spike input is a vertex of {0, 1};
the search keeps a set of exactly K flipped elements:

- start: K distinct elements drawn at random, flipped (query 1);
- query ``it`` = 1, 2, ...: with ``it' = int(it / Q * 10,000)`` the share ``p`` of the flips
  resampled is ``p_init`` at ``it' = 0``, then ``p_init`` x 1/2, 1/4, 1/5, 1/6, 1/8, 1/10, 1/12,
  1/15, 1/20 on ``it'`` in (0, 50], (50, 200], (200, 500], (500, 1k], (1k, 2k], (2k, 4k],
  (4k, 6k], (6k, 8k], > 8k (:func:`resampled_share`); ``m = max(int(p K), 1)`` current flips are
  undone and ``m`` unflipped elements flipped;
- the candidate replaces the current set when its count margin (the label's count minus the best
  other class's; targeted: the best non-target count minus the target's) is strictly lower, or
  when it is a success (another class wins alone; a tie is no success);
- a row stops at its first success or after Q queries.

Ours differs from rs_attacks.py in: counts of output spikes instead of logits (the margin is in
spikes, so plateaus are common and only strict drops are accepted); the unflipped elements are
drawn by rejection from the row's own generator (the input has ~10^5-10^6 elements), not from a
permutation of all of them; the clean input's own query is not counted.
"""
from __future__ import annotations

import numpy as np
import torch

from ..query import QueryAttack, QueryConfig, RowResult, flip, fooled, margin

#: it' bounds (upper, inclusive) and the divisor of p_init beyond each (rs_attacks.py, L0).
_SCHEDULE = ((0, 1), (50, 2), (200, 4), (500, 5), (1000, 6), (2000, 8), (4000, 10), (6000, 12), (8000, 15))


def resampled_share(p_init: float, it: int, queries: int) -> float:
    """The share p of the K flips resampled at query ``it`` of ``queries`` (module docstring)."""
    scaled = int(it / queries * 10000)
    divisor = next((d for bound, d in _SCHEDULE if scaled <= bound), 20)
    return p_init / divisor


def unflipped(flipped: np.ndarray, m: int, generator: torch.Generator) -> np.ndarray:
    """``m`` distinct elements where ``flipped`` (flat bool) is False, drawn uniformly by rejection."""
    chosen: list[int] = []
    while len(chosen) < m:
        for element in torch.randint(len(flipped), (2 * m,), generator=generator).tolist():
            if not flipped[element] and element not in chosen:
                chosen.append(element)
                if len(chosen) == m:
                    break
    return np.array(chosen, dtype=np.int64)


def search(clean: np.ndarray, label: int, target: int, config: QueryConfig, generator: torch.Generator):
    """One row's Sparse-RS (a search of :func:`harness.attacks.query.drive`)."""
    k, numel = config.max_flips, clean.size
    flips = torch.randperm(numel, generator=generator)[:k].numpy()
    flipped = np.zeros(numel, bool)
    flipped[flips] = True
    counts = yield flip(clean, flips)
    best, used = margin(counts, label, target), 1
    while not fooled(counts, label, target) and used < config.queries:
        m = max(int(resampled_share(config.p_init, used, config.queries) * k), 1)
        out = torch.randperm(k, generator=generator)[:m].numpy()
        candidate = flips.copy()
        candidate[out] = unflipped(flipped, m, generator)
        answer = yield flip(clean, candidate)
        used += 1
        if fooled(answer, label, target) or margin(answer, label, target) < best:
            flipped[flips[out]], flipped[candidate[out]] = False, True
            flips, counts, best = candidate, answer, margin(answer, label, target)
    return RowResult(flip(clean, flips), counts, used, k)


class SparseRs(QueryAttack):
    name, summary, needs = "sparse-rs", "Sparse-RS: random search over K flips on output counts (queries)", "scores"
    settings = frozenset({"max_flips", "queries", "p_init", "oracle", "profile", "seed", "targeted", "n"})

    search = staticmethod(search)
