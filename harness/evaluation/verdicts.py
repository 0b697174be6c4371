"""Per-row verdicts of one judge (the offline model or one device profile) over an ensemble.

A row is *broken at budget b* when some attack's example with at most b flipped elements is not
classified correctly by the judge (a tie or silence is not correct). Only the smallest such
example is kept, so a row broken at b always has a stored example of L0 <= b, and robustness can
only fall as the budget grows.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: ``min_l0`` / ``broken_by`` of a row no attack broke within the largest budget.
NONE = -1


@dataclass
class Verdict:
    """One judge's verdict on N rows.

    Attributes:
        clean_correct: (N,) bool, the clean input classified correctly (tie rule).
        min_l0: (N,) int64 flips of the smallest example the judge misclassifies, -1 = none found.
        example_by: (N,) int64 ensemble index of the attack that made that example, -1 = none.
        broken_first_by: (N,) int64 ensemble index of the first attack in cascade order that
            broke the row within the largest budget, -1 = none.
        example: (N, *shape, T) uint8 the smallest example (the clean input where none).
    """

    clean_correct: np.ndarray
    min_l0: np.ndarray
    example_by: np.ndarray
    broken_first_by: np.ndarray
    example: np.ndarray

    @classmethod
    def start(cls, clean: np.ndarray, clean_correct: np.ndarray) -> "Verdict":
        """Before any attack: every clean-correct row robust."""
        n = len(clean)
        none = np.full(n, NONE, dtype=np.int64)
        return cls(np.asarray(clean_correct, dtype=bool), none.copy(), none.copy(), none.copy(), clean.copy())

    def broken(self, budget: int) -> np.ndarray:
        """(N,) bool: a stored example of L0 <= ``budget`` is misclassified."""
        return (self.min_l0 >= 0) & (self.min_l0 <= budget)

    def robust(self, budgets) -> np.ndarray:
        """(N, B) bool: correct when clean and not broken at each budget."""
        return np.stack([self.clean_correct & ~self.broken(b) for b in budgets], axis=1)

    def record(self, attack: int, rows: np.ndarray, spikes: np.ndarray, l0: np.ndarray, wrong: np.ndarray,
               largest: int) -> None:
        """Take one attack's examples: ``rows`` (R,) indices, ``spikes`` (R, ...), ``l0`` (R,) flips,
        ``wrong`` (R,) bool misclassified by this judge; only examples of L0 <= ``largest`` count."""
        hit = wrong & (l0 <= largest) & self.clean_correct[rows]
        first = hit & (self.broken_first_by[rows] == NONE)
        self.broken_first_by[rows[first]] = attack
        smaller = hit & ((self.min_l0[rows] == NONE) | (l0 < self.min_l0[rows]))
        self.min_l0[rows[smaller]] = l0[smaller]
        self.example_by[rows[smaller]] = attack
        self.example[rows[smaller]] = spikes[smaller]

    def arrays(self, budgets) -> dict[str, np.ndarray]:
        """The stored per-row arrays (docs/evaluation.md)."""
        return {"clean_correct": self.clean_correct, "robust": self.robust(budgets), "min_l0": self.min_l0,
                "example_by": self.example_by, "broken_first_by": self.broken_first_by, "example": self.example}


def flips(clean: np.ndarray, spikes: np.ndarray) -> np.ndarray:
    """(R,) int64 L0 distance: elements of ``spikes`` (R, ...) that differ from ``clean`` (R, ...)."""
    return (clean != spikes).reshape(len(clean), -1).sum(axis=1).astype(np.int64)
