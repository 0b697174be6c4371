"""A filtered profile's verdict: the worst case of the adaptive and the non-adaptive attacks
(docs/defences.md, docs/evaluation.md).

The cascade of :mod:`.cascade` crafts on the bare offline network and judges every example on each
profile, whose device session puts the profile's ``[input_filter]`` in front of the network: the
*non-adaptive* verdict (an attack that ignores the filter). For a profile with a filter the
cascade runs once more with the same filter in front of the offline network (gradient attacks
differentiate through it by BPDA, :mod:`harness.attacks.filtered`), judged by the filtered offline
network and the profile's session: the *adaptive* verdict. The profile's verdict is their
per-row worst case (a row is broken at b when either broke it at b), stored with both parts as
``<profile>:adaptive`` and ``<profile>:non-adaptive``; the file's ``adaptive`` attribute says, per
filtered profile, which part broke more rows.
"""
from __future__ import annotations

from dataclasses import replace

import numpy as np

from ..attacks.filtered import through_filter
from .cascade import Outcome, QueryOracle, Rows, run_cascade
from .verdicts import NONE, Verdict

ADAPTIVE, NON_ADAPTIVE = "adaptive", "non-adaptive"


class _AdaptiveJudge:
    """A profile's judge in the adaptive cascade: the same session under the part's verdict name,
    bit-exact against the filtered offline network when the profile's arithmetic is."""

    def __init__(self, judge, profile) -> None:
        self.judge, self.name = judge, f"{profile.name}:{ADAPTIVE}"
        self.bit_exact = profile.select_tag == "fixed_pt" and not profile.noise.active

    def predictions(self, spikes: np.ndarray, rows: np.ndarray) -> np.ndarray:
        return self.judge.predictions(spikes, rows)

    def counts(self, spikes: np.ndarray) -> np.ndarray:
        return self.judge.counts(spikes)


def with_adaptive(outcome: Outcome, run, ensemble, rows: Rows, offline_judge, judge, profile, budgets: list[int],
                  query_oracle: QueryOracle | None = None, **cascade_options) -> Outcome:
    """``outcome`` with ``profile``'s verdict replaced by the worst case of the adaptive cascade and
    the non-adaptive one it holds (both kept as parts), the adaptive cascade's steps and flags added.

    Args:
        offline_judge: a factory ``net -> Judge`` of the offline judge (called inside the filter).
        judge: the profile's device judge (its session applies the filter).
        query_oracle: what the adaptive cascade's query attacks ask (the profile's session: the
            filter is part of the device a black-box attacker queries).
        cascade_options: passed on to :func:`run_cascade` (batch_size, progress, device, data_path).
    """
    with through_filter(run.net, profile.input_filter):
        offline = offline_judge(run.net)
        offline.name = f"offline:{profile.input_filter.tag}"
        adaptive = run_cascade(run, ensemble, rows, [offline, _AdaptiveJudge(judge, profile)], budgets,
                               query_oracle=query_oracle, **cascade_options)
    parts = {ADAPTIVE: adaptive.verdicts[f"{profile.name}:{ADAPTIVE}"], NON_ADAPTIVE: outcome.verdicts[profile.name]}
    verdicts = {}
    for name, verdict in outcome.verdicts.items():
        verdicts[name] = worst_case(*parts.values()) if name == profile.name else verdict
        if name == profile.name:
            verdicts.update({f"{name}:{part}": v for part, v in parts.items()})
    steps = outcome.steps + [type(step)(**{**vars(step), "label": f"{step.label} ({ADAPTIVE}, {profile.name})"})
                             for step in adaptive.steps]
    comparison = {**outcome.adaptive, profile.name: stronger(parts[ADAPTIVE], parts[NON_ADAPTIVE], budgets)}
    return replace(outcome, verdicts=verdicts, steps=steps, flags=outcome.flags + adaptive.flags, adaptive=comparison)


def worst_case(a: Verdict, b: Verdict) -> Verdict:
    """Per row, the smaller of the two examples that break it (a row is broken when either broke it);
    ``broken_first_by`` the earlier attack in cascade order. Both verdicts judge the same clean rows."""
    take_b = (b.min_l0 != NONE) & ((a.min_l0 == NONE) | (b.min_l0 < a.min_l0))
    first = np.where((a.broken_first_by == NONE) | ((b.broken_first_by != NONE)
                                                     & (b.broken_first_by < a.broken_first_by)),
                     b.broken_first_by, a.broken_first_by)
    pick = lambda x, y: np.where(take_b.reshape(-1, *[1] * (x.ndim - 1)), y, x)  # noqa: E731
    return Verdict(a.clean_correct & b.clean_correct, pick(a.min_l0, b.min_l0), pick(a.example_by, b.example_by),
                   first, pick(a.example, b.example))


def stronger(adaptive: Verdict, non_adaptive: Verdict, budgets: list[int]) -> dict:
    """Which part broke more rows: per budget (rows left robust by each) and overall (summed over the
    budgets: ``adaptive``, ``non-adaptive`` or ``equal``)."""
    left = {ADAPTIVE: adaptive.robust(budgets).sum(axis=0), NON_ADAPTIVE: non_adaptive.robust(budgets).sum(axis=0)}
    a, n = int(left[ADAPTIVE].sum()), int(left[NON_ADAPTIVE].sum())
    return {"budgets": list(budgets), "robust_adaptive": left[ADAPTIVE].tolist(),
            "robust_non_adaptive": left[NON_ADAPTIVE].tolist(),
            "stronger": ADAPTIVE if a < n else NON_ADAPTIVE if n < a else "equal"}
