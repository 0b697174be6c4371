"""The report's first section: robust accuracy, the worst case over an ensemble of attacks (docs/evaluation.md).

The headline sentence, the curve over budgets with Wilson bands (offline beside each device
profile), the contribution table (which attack broke each row first) and the trust flags. An
evaluation with an error flag gives no headline and no curve: the errors instead.
"""
from __future__ import annotations


from ..results_model import Rate, Results, Robustness
from . import figures
from .render import Figure, Section, Table

#: The budget of the headline sentence when the evaluation has it (else its middle budget).
HEADLINE_BUDGET = 50
ROBUST_AXIS = "robust accuracy (% of all evaluated rows)"


def headline_budget(budgets: list[int]) -> int:
    return HEADLINE_BUDGET if HEADLINE_BUDGET in budgets else budgets[len(budgets) // 2]


def _rate(r: Rate) -> str:
    return f"{r.value:.1%} [{r.low:.1%}, {r.high:.1%}] ({r.k}/{r.n})"


def headline(robustness: Robustness) -> str:
    """"robust accuracy on P at L0 <= b: x% [low, high] (k/n), worst case over N attacks" (P: the
    first device profile, else offline)."""
    verdicts = robustness.verdicts()
    judge = next((name for name in verdicts if name != "offline"), "offline")
    budget = headline_budget(robustness.budgets)
    r = verdicts[judge].robust_accuracy_ci[str(budget)]
    return (f"robust accuracy on {judge} at L0 <= {budget}: {_rate(r)}, worst case over "
            f"{len(robustness.ensemble)} attacks")


def robustness_sections(results: Results) -> list[Section]:
    """The first section of a run's report, or none when the run has no evaluation."""
    robustness = results.robustness
    if robustness is None:
        return []
    title = f"Robust accuracy: {results.run}" if results.run else "Robust accuracy"
    errors = [f.message for f in robustness.flags if f.level == "error"]
    intro = (f"Evaluation {robustness.evaluation} of the first {robustness.n} test rows: a row counts as robust at "
             f"budget b when the judge classifies it correctly and no attack of the ensemble "
             f"({', '.join(robustness.ensemble)}) found an input with at most b flipped elements that the judge does "
             "not classify correctly (a tie or silence is wrong). Budget 0 is clean accuracy.")
    if errors:
        return [Section(title, [intro, "No robust accuracy is reported: " + "; ".join(errors)])]
    warnings = [f"Warning: {f.message}" for f in robustness.flags if f.level == "warning"]
    verdicts = robustness.verdicts()
    budgets = ["0", *map(str, robustness.budgets)]
    curve = Table(["L0 budget", *verdicts],
                  [["clean" if b == "0" else f"<= {b}", *(_rate(v.robust_accuracy_ci[b]) for v in verdicts.values())]
                   for b in budgets], caption="robust accuracy, k/n and Wilson 95% interval, per judge")
    contribution = Table(["attack (cascade order)", *(f"rows broken first, {name}" for name in verdicts)],
                         [[label, *(str(v.broken_first_by.get(label, 0)) for v in verdicts.values())]
                          for label in robustness.ensemble],
                         caption=f"which attack broke each row first within L0 <= {max(robustness.budgets)}")
    png = figures.budget_curves({"worst case over the ensemble": {
        name: {b: v.robust_accuracy_ci[b] for b in budgets[1:]} for name, v in verdicts.items()}},
        f"robust accuracy ({robustness.n} rows)", ROBUST_AXIS)
    return [Section(title, [f"**{headline(robustness)}**.", intro, *warnings], [curve, contribution,
                                                                              *_retiming_tables(robustness)],
                    [Figure(f"robust-accuracy-{results.run}" if results.run else "robust-accuracy", png, "robust accuracy vs budget, offline (solid) and on each device "
                                                    "profile (dashed), Wilson 95% bands")])]


def _retiming_tables(robustness: Robustness) -> list[Table]:
    """The retiming curve (robust accuracy per timing budget D, per judge), apart from the flip curve;
    none when the evaluation has no timing budgets."""
    retiming = robustness.retiming
    if retiming is None:
        return []
    return [Table(["timing budget", *retiming.verdicts],
                  [[f"every shift <= {d} steps", *(_rate(curve[str(d)]) for curve in retiming.verdicts.values())]
                   for d in retiming.budgets],
                  caption="retiming: robust accuracy when every spike may move in time (counts kept), k/n and "
                          "Wilson 95% interval, per judge (docs/evaluation.md)")]
