"""AttackRecord: the per-row result of any attack, and the file ``RUN_DIR/attacks/<id>.h5``.

One row per attacked (sample, target) pair; the format is the same for the G2S/RSF attack,
the baselines and transfer sets (docs/artifacts.md, "attacks/<id>.h5"). Aggregates are computed
only over rows whose sample the judging model classified correctly before the attack
(../shared/notes/attack-spec.md, "The attack loop").
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import numpy as np

from .metrics import NO_PREDICTION, success_by_budget
from .store import read_h5, write_h5

#: Budgets (flips) of the robustness curve in summaries, as in the experiments' default.
DEFAULT_BUDGETS = (10, 20, 50, 100, 200, 500, 1000, 2000)
KIND = "attack"
#: Points of a query attack's success-against-queries curve, as shares of its query budget.
QUERY_CURVE_SHARES = (0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0)
#: Datasets that older files and some records lack (then None): ``stalled`` (not tracked by the
#: baselines), ``activity_ratio`` and ``activity_by_budget`` (energy attacks only), the per-row
#: cost ``forward_passes``, ``backward_passes`` and ``queries`` (files written before the costs).
OPTIONAL_ARRAYS = ("stalled", "activity_ratio", "activity_by_budget", "forward_passes", "backward_passes", "queries",
                   "spikes_moved", "total_shift")


def is_success(pred: np.ndarray, labels: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """Attack success per row: untargeted (target -1) a unique max other than the label,
    targeted the target. ``pred`` uses the tie rule (-1 = no prediction, never a success)."""
    pred, labels, targets = (np.asarray(a) for a in (pred, labels, targets))
    untargeted = (pred != labels) & (pred != NO_PREDICTION)
    return np.where(targets < 0, untargeted, pred == targets)


@dataclass
class AttackRecord:
    """Per-row arrays (R rows) plus the attributes stored at the file's root.

    Attributes: see docs/artifacts.md; ``attrs`` holds ``attack_id``, ``method``,
    ``targeted``, ``params``, ``model``, ``crafted_on``, ``seed`` and ``dataset``.
    """

    clean: np.ndarray                 # (R, *shape, T) uint8
    adversarial: np.ndarray           # (R, *shape, T) uint8; = clean where the attack failed
    labels: np.ndarray                # (R,) int64
    targets: np.ndarray               # (R,) int64, -1 = untargeted
    sample_index: np.ndarray          # (R,) int64, index in the run's test split
    pred_clean: np.ndarray            # (R,) int64, -1 = tie or silence
    pred_adv: np.ndarray              # (R,) int64
    correct_before: np.ndarray        # (R,) bool
    success: np.ndarray               # (R,) bool
    l0: np.ndarray                    # (R,) int64, flips in `adversarial`
    l0_before_reduction: np.ndarray   # (R,) int64, flips of the attack's last example
    l0_at_success: np.ndarray         # (R,) int64, flips at first success, -1 = never
    iterations: np.ndarray            # (R,) int64
    rsf_iterations: np.ndarray        # (R,) int64
    zero_grad_iterations: np.ndarray  # (R,) int64, -1 = no gradient computed
    stalled: np.ndarray | None = None  # (R,) bool, failed with no change of pred/margin over the last
    #                                    attrs["stall_window"] iterations; None = not tracked (baselines)
    activity_ratio: np.ndarray | None = None      # (R,) float64, energy attacks: the objective (attrs
    #                                    ["energy"]["objective"]) of `adversarial` / of `clean` (SLAYER); NaN = not attacked; None = no energy attack
    activity_by_budget: np.ndarray | None = None  # (R, B) float64, energy attacks: best ratio among the examples
    #                                    met with L0 <= attrs["energy"]["budgets"][b]; NaN = not attacked
    forward_passes: np.ndarray | None = None   # (R,) int64, forward passes of the network over the row
    backward_passes: np.ndarray | None = None  # (R,) int64, input gradients computed for the row (0: none)
    queries: np.ndarray | None = None          # (R,) int64, oracle queries of the row (0: white-box)
    spikes_moved: np.ndarray | None = None     # (R,) int64, retiming: spikes moved in time (0: failed); None = flips
    total_shift: np.ndarray | None = None      # (R,) int64, retiming: sum of |shift| in time steps (0: failed)
    attrs: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def array_names(cls) -> list[str]:
        """Names of the per-row datasets, in file order (optional ones included)."""
        return [f.name for f in fields(cls) if f.name != "attrs"]

    @classmethod
    def from_arrays(cls, adversarial: np.ndarray, labels: np.ndarray, pred_adv: np.ndarray,
                    clean: np.ndarray | None = None, pred_clean: np.ndarray | None = None,
                    targets: np.ndarray | None = None, sample_index: np.ndarray | None = None,
                    attrs: dict[str, Any] | None = None) -> "AttackRecord":
        """A record of an adversarial set crafted elsewhere, from its judged arrays (R rows).

        Args:
            adversarial: (R, *shape, T) binary inputs; labels, pred_adv: (R,) classes and the
                judging model's predictions of ``adversarial`` (-1 = tie or silence).
            clean, pred_clean: the clean rows (R, *shape, T) and their predictions (R,); None when
                the set does not come from known rows: then ``clean`` holds ``adversarial``, every
                row counts as classified correctly before (``correct_before`` True) and ``l0`` is
                -1 (not available).
            targets: (R,) targets, -1 = untargeted (default: all untargeted).
            sample_index: (R,) rows of the run's test split (default -1: not from the split).
        Success is :func:`is_success` on rows classified correctly before; the crafting columns
        are unknown: iterations and RSF counts 0, no gradient (-1), ``l0_at_success`` = ``l0``
        where successful else -1.
        """
        adversarial = np.asarray(adversarial, np.uint8)
        rows = len(adversarial)
        labels, pred_adv = np.asarray(labels, np.int64), np.asarray(pred_adv, np.int64)
        targets = np.full(rows, -1, np.int64) if targets is None else np.asarray(targets, np.int64)
        known = clean is not None
        clean = np.asarray(clean, np.uint8) if known else adversarial.copy()
        pred_clean = labels.copy() if pred_clean is None else np.asarray(pred_clean, np.int64)
        correct = pred_clean == labels if known else np.ones(rows, bool)
        success = is_success(pred_adv, labels, targets) & correct
        l0 = ((clean != adversarial).reshape(rows, -1).sum(1).astype(np.int64) if known
              else np.full(rows, -1, np.int64))
        none = np.zeros(rows, np.int64)
        return cls(clean=clean, adversarial=adversarial, labels=labels, targets=targets,
                   sample_index=np.full(rows, -1, np.int64) if sample_index is None
                   else np.asarray(sample_index, np.int64),
                   pred_clean=pred_clean, pred_adv=pred_adv, correct_before=correct, success=success, l0=l0,
                   l0_before_reduction=l0.copy(), l0_at_success=np.where(success, l0, -1), iterations=none,
                   rsf_iterations=none.copy(), zero_grad_iterations=np.full(rows, -1, np.int64),
                   attrs=dict(attrs or {}))

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def numel(self) -> int:
        """Elements per input (the denominator of the flip rate)."""
        return int(np.prod(self.clean.shape[1:]))

    @property
    def targeted(self) -> bool:
        return bool(len(self.targets)) and bool((self.targets >= 0).any())

    def save(self, path: str | Path) -> Path:
        """Write atomically to ``path`` (HDF5, kind ``attack``, with schema_version)."""
        arrays = {name: getattr(self, name) for name in self.array_names()}
        write_h5(path, {k: v for k, v in arrays.items() if v is not None}, self.attrs, kind=KIND)
        return Path(path)

    @classmethod
    def load(cls, path: str | Path) -> "AttackRecord":
        """Read a file written by :meth:`save` (clear errors for missing/foreign/newer files)."""
        arrays, attrs = read_h5(path, kind=KIND)
        missing = [name for name in cls.array_names() if name not in arrays and name not in OPTIONAL_ARRAYS]
        if missing:
            from .errors import DataError
            raise DataError(f"{path}: attack file lacks dataset(s) {', '.join(missing)}")
        attrs = {k: v for k, v in attrs.items() if k not in ("schema_version", "kind")}
        return cls(**{name: arrays.get(name) for name in cls.array_names()}, attrs=attrs)

    def with_attrs(self, **attrs: Any) -> "AttackRecord":
        """A copy whose attrs are updated with ``attrs``."""
        return replace(self, attrs={**self.attrs, **attrs})

    def stats(self, budgets=DEFAULT_BUDGETS) -> dict[str, Any]:
        """Aggregates over rows classified correctly before the attack.

        Returns a dict with ``n_rows``, ``n_samples``, ``n_correct_before``, ``n_success``,
        ``success_rate``, ``mean_l0``/``median_l0`` and ``median_flip_rate`` (final examples of
        successful rows), ``median_l0_before_reduction``, ``mean_iterations`` (attacked rows),
        ``rsf_iterations`` and ``zero_grad_iterations`` (totals), ``success_by_budget``
        ({flips: rate}, a row counts at budget B when it succeeded with ``l0`` <= B) and, for
        targeted records, ``per_target`` ({target: {n, success_rate, median_l0}}).

        Of the failed rows (correct before, not successful): ``n_failed``, ``stalled_rows`` and
        ``stalled_share`` (no change of prediction and count margin over the last
        ``stall_window`` iterations; None when the record does not track it) and
        ``zero_grad_share`` (share with at least one all-zero input gradient; None without
        gradients). ``mean_iterations`` averages over all correct rows, failures that ran to
        K included. ``budget_curve`` says what ``success_by_budget`` is: kind "final-l0" (from
        the final examples of this one run: such an example exists at that budget, which is not
        the same as a run with that budget enforced), ``enforced_budget`` (flips, the budget
        the run itself enforced, or None) and its ``budget_mode``.
        """
        ok = self.correct_before.astype(bool)
        won = self.success.astype(bool) & ok
        measured = won & (self.l0 >= 0)  # L0 -1: not available (an imported set without clean rows)
        out = {"n_rows": len(self), "n_samples": int(len(np.unique(self.sample_index))),
               "n_correct_before": int(ok.sum()), "n_success": int(won.sum()),
               "success_rate": _mean(won[ok]),
               "mean_l0": _mean(self.l0[measured]), "median_l0": _median(self.l0[measured]),
               "median_flip_rate": _median(self.l0[measured]) / self.numel if measured.any() else float("nan"),
               "median_l0_before_reduction": _median(self.l0_before_reduction[measured]),
               "mean_iterations": _mean(self.iterations[ok]),
               "rsf_iterations": int(self.rsf_iterations[ok].sum()),
               "zero_grad_iterations": int(self.zero_grad_iterations[ok].clip(min=0).sum()),
               "success_by_budget": success_by_budget(self.l0, measured, budgets, ok),
               **self._failure_stats(ok & ~won),
               "budget_curve": self.attrs.get("budget_curve", {"kind": "final-l0", "enforced_budget": None,
                                                               "budget_mode": None})}
        if self.targeted:
            out["per_target"] = {int(t): {"n": int((ok & (self.targets == t)).sum()),
                                          "success_rate": _mean(won[ok & (self.targets == t)]),
                                          "median_l0": _median(self.l0[won & (self.targets == t)])}
                                 for t in np.unique(self.targets[self.targets >= 0])}
        return out


    @property
    def is_energy(self) -> bool:
        """True for an energy attack's record (or its random baseline): it has ``activity_ratio``."""
        return self.activity_ratio is not None

    def energy_stats(self) -> dict[str, Any]:
        """Activity aggregates of an energy record over the rows classified correctly before.

        Returns ``n_correct_before``, ``energy_target`` (None: success = ratio > 1),
        ``n_success``/``success_rate`` (reached the target), ``mean_activity_ratio`` and
        ``median_activity_ratio`` (the objective, adversarial / clean, SLAYER; ``objective``),
        ``prediction_kept`` (share of rows whose adversarial prediction is the clean one),
        ``mean_l0``, and ``activity_by_budget`` ({flips: mean best ratio with L0 <= flips}).
        Raises:
            ValueError: the record is not an energy record.
        """
        if not self.is_energy:
            raise ValueError("not an energy attack record (no activity_ratio)")
        ok = self.correct_before.astype(bool)
        won = self.success.astype(bool) & ok
        settings = self.attrs.get("energy", {})
        budgets = settings.get("budgets", [])
        by_budget = self.activity_by_budget[ok] if self.activity_by_budget is not None else np.zeros((0, 0))
        return {"n_correct_before": int(ok.sum()), "energy_target": settings.get("target"),
                "objective": settings.get("objective", "hidden-synops"),
                "n_success": int(won.sum()), "success_rate": _mean(won[ok]),
                "mean_activity_ratio": _mean(self.activity_ratio[ok]),
                "median_activity_ratio": _median(self.activity_ratio[ok]),
                "prediction_kept": _mean(self.pred_adv[ok] == self.pred_clean[ok]),
                "n_prediction_kept": int((self.pred_adv[ok] == self.pred_clean[ok]).sum()),
                "mean_l0": _mean(self.l0[ok]),
                "activity_by_budget": {int(b): _mean(by_budget[:, i]) for i, b in enumerate(budgets)}}

    @property
    def is_query(self) -> bool:
        """True for a score- or decision-based attack's record: its settings hold a query budget."""
        return self.queries is not None and isinstance(self.attrs.get("params", {}).get("queries"), int)

    def query_stats(self, seed: int = 0) -> dict[str, Any]:
        """The query cost of a query attack's record, over rows classified correctly before.

        Returns ``query_budget`` (the most queries per row), ``oracle`` and ``profile`` (who
        answered), ``n_correct_before``, ``n_success``, ``median_queries`` of the successful rows
        with ``median_queries_ci`` (bootstrap 95% interval, seeded by ``seed``) and
        ``success_by_queries`` ({q: (k, n)}: rows that succeeded having made at most q queries, at
        1, 2, 5, 10, 20, 50 and 100% of the budget; a row's queries are all it made, so for the
        pointwise attack they include its reduction after the first success).
        Raises:
            ValueError: the record has no query budget (not a query attack).
        """
        from .stats import bootstrap_median  # scipy: loaded only when a summary needs it

        if not self.is_query:
            raise ValueError("not a query attack record (no query budget in its params)")
        params = self.attrs["params"]
        budget = int(params["queries"])
        ok = self.correct_before.astype(bool)
        won = self.success.astype(bool) & ok
        used = self.queries[won]
        points = sorted({max(1, round(budget * share)) for share in QUERY_CURVE_SHARES})
        return {"query_budget": budget, "oracle": params.get("oracle"), "profile": params.get("profile"),
                "n_correct_before": int(ok.sum()), "n_success": int(won.sum()),
                "median_queries": _median(used), "median_queries_ci": bootstrap_median(used, seed),
                "success_by_queries": {q: (int((used <= q).sum()), int(ok.sum())) for q in points}}

    def _failure_stats(self, failed: np.ndarray) -> dict[str, Any]:
        """Stall and zero-gradient counts of the ``failed`` rows (mask (R,))."""
        tracked = self.stalled is not None
        stalled = int(self.stalled[failed].sum()) if tracked else None
        zero = self.zero_grad_iterations[failed]
        has_grad = bool((self.zero_grad_iterations >= 0).any())
        return {"n_failed": int(failed.sum()), "stall_window": self.attrs.get("stall_window") if tracked else None,
                "stalled_rows": stalled,
                "stalled_share": stalled / int(failed.sum()) if tracked and failed.any() else None,
                "zero_grad_share": float((zero > 0).mean()) if has_grad and failed.any() else None}


def _mean(x: np.ndarray) -> float:
    return float(np.mean(x)) if len(x) else float("nan")


def _median(x: np.ndarray) -> float:
    return float(np.median(x)) if len(x) else float("nan")
