"""Reading ``RUN_DIR/evaluations/<id>.h5``: curves with Wilson intervals, the trust checks, the summary.

Every read checks flag (b): a robust-accuracy curve that rises with the budget, or a row counted
robust at a budget after being broken at a smaller one, is refused (DataError naming the file):
such a curve is never printed as a result.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import DataError
from ..stats import wilson
from ..store import read_h5

KIND = "evaluation"
#: The verdict of the offline (SLAYER) model; the others are device profile names.
OFFLINE = "offline"


@dataclass
class Evaluation:
    """One evaluation file: ``arrays`` (docs/evaluation.md) and root ``attrs``."""

    path: Path
    arrays: dict[str, np.ndarray]
    attrs: dict[str, Any]

    @property
    def budgets(self) -> list[int]:
        return [int(b) for b in self.attrs["budgets"]]

    @property
    def verdicts(self) -> list[str]:
        return list(self.attrs["verdicts"])

    @property
    def labels(self) -> list[str]:
        """The ensemble's attack labels in cascade order (``broken_first_by`` indexes them)."""
        return [a["label"] for a in self.attrs["ensemble"]["attacks"]]

    @property
    def errors(self) -> list[str]:
        return [f["message"] for f in self.attrs.get("flags", []) if f.get("level") == "error"]

    def robust(self, verdict: str) -> np.ndarray:
        """(N, B) bool robust per row and budget."""
        return self.arrays[f"{verdict}/robust"].astype(bool)

    def curve(self, verdict: str) -> dict[str, Any]:
        """Robust accuracy per budget (budget 0 = clean accuracy): ``{"<b>": {value, k, n, low, high}}``."""
        n = len(self.arrays["labels"])
        counts = {"0": int(self.arrays[f"{verdict}/clean_correct"].sum())}
        counts.update({str(b): int(k) for b, k in zip(self.budgets, self.robust(verdict).sum(axis=0))})
        return {b: _rate(k, n) for b, k in counts.items()}

    @property
    def retime_budgets(self) -> list[int]:
        """The timing budgets D of the retiming curve (empty: none evaluated)."""
        return [int(d) for d in self.attrs.get("retime_budgets", [])]

    def retime_curve(self, verdict: str) -> dict[str, Any]:
        """Robust accuracy per timing budget D under retiming: ``{"<D>": {value, k, n, low, high}}``
        (:mod:`harness.evaluation.retiming`); {} when the evaluation has no retiming curve."""
        if not self.retime_budgets:
            return {}
        robust = self.arrays[f"retime/{verdict}/robust"].astype(bool)
        return {str(d): _rate(int(k), len(robust)) for d, k in zip(self.retime_budgets, robust.sum(axis=0))}

    def broken_first_by(self, verdict: str) -> dict[str, int]:
        """Rows each attack broke first (cascade order) within the largest budget."""
        first = self.arrays[f"{verdict}/broken_first_by"]
        return {label: int((first == i).sum()) for i, label in enumerate(self.labels)}


def _rate(k: int, n: int) -> dict[str, Any]:
    low, high = wilson(k, n)
    return {"value": k / n if n else float("nan"), "k": k, "n": n, "low": low, "high": high}


def load_evaluation(path: str | Path) -> Evaluation:
    """Read and check an evaluation file (flag (b): DataError when a curve rises with the budget)."""
    path = Path(path)
    arrays, attrs = read_h5(path, kind=KIND)
    evaluation = Evaluation(path, arrays, attrs)
    for verdict in evaluation.verdicts:
        _check_monotone(evaluation, verdict)
    return evaluation


def _check_monotone(evaluation: Evaluation, verdict: str) -> None:
    """Flag (b): robust at a larger budget but not at a smaller one, or robust without being correct (the
    flip curve, and the retiming curve over its timing budgets)."""
    clean = evaluation.arrays[f"{verdict}/clean_correct"].astype(bool)
    curves = {"robust-accuracy": evaluation.robust(verdict)}
    if evaluation.retime_budgets:
        curves["retiming"] = evaluation.arrays[f"retime/{verdict}/robust"].astype(bool)
    for what, robust in curves.items():
        rises = np.flatnonzero(np.any(robust[:, 1:] & ~robust[:, :-1], axis=1) | (robust[:, 0] & ~clean))
        if len(rises):
            raise DataError(f"{evaluation.path}: the {verdict} {what} curve rises with the budget at rows "
                            f"{', '.join(map(str, rises[:20]))}; refused (an evaluation is never printed from it)")


def evaluations_of(run_root: str | Path) -> list[Path]:
    """The run's evaluation files, oldest first (by modification time, then name)."""
    folder = Path(run_root) / "evaluations"
    return sorted(folder.glob("*.h5"), key=lambda p: (p.stat().st_mtime, p.name)) if folder.is_dir() else []


def format_summary(evaluation: Evaluation) -> str:
    """The command line's summary: each verdict's curve with intervals, the cascade, the flags."""
    a = evaluation.attrs
    lines = [f"evaluation {a['evaluation_id']} of {a.get('model', '?')}: {a['n']} test rows, worst case over "
             f"{len(evaluation.labels)} attacks ({', '.join(evaluation.labels)})"]
    for verdict in evaluation.verdicts:
        curve = evaluation.curve(verdict)
        lines.append(f"  {verdict}: robust accuracy (k/n, Wilson 95%)")
        lines += [f"    {'clean' if b == '0' else f'L0 <= {b}':>12}: {_fmt(r)}" for b, r in curve.items()]
        lines += [f"    {f'retiming D <= {d}':>12}: {_fmt(r)}" for d, r in evaluation.retime_curve(verdict).items()]
        first = ", ".join(f"{label} {k}" for label, k in evaluation.broken_first_by(verdict).items())
        lines.append(f"    broken first by: {first}")
    for step in a.get("cascade", []):
        zero = "" if step["zero_gradient_share"] is None else f", all-zero gradients {step['zero_gradient_share']:.0%}"
        lines.append(f"  cascade: {step['label']}: attacked {step['rows_attacked']} rows, spared {step['rows_saved']}"
                     f" ({step['seconds']:.1f} s{zero})")
    lines += [f"  {f['level']}: {f['message']}" for f in a.get("flags", [])]
    lines += [_adaptive_line(profile, c) for profile, c in a.get("adaptive", {}).items()]
    lines.append(f"  file: {evaluation.path}")
    return "\n".join(lines)


def _adaptive_line(profile: str, c: dict[str, Any]) -> str:
    """Which attack was stronger on a filtered profile (harness/evaluation/adaptive.py)."""
    left = ", ".join(f"L0 <= {b}: {a} vs {n}" for b, a, n in zip(c["budgets"], c["robust_adaptive"],
                                                                  c["robust_non_adaptive"]))
    verdict = "neither (equal)" if c["stronger"] == "equal" else f"the {c['stronger']} attack"
    return (f"  {profile}: its verdict is the worst case of adaptive (BPDA through the filter) and non-adaptive "
            f"attacks; stronger: {verdict} (rows left robust, adaptive vs non-adaptive: {left})")


def _fmt(rate: dict[str, Any]) -> str:
    return f"{rate['value']:.1%} [{rate['low']:.1%}, {rate['high']:.1%}] ({rate['k']}/{rate['n']})"
