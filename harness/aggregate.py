"""Figures across seeds: the cells of a seed grid (same model and attacks, another seed) pooled.

Each run's figures are its long rows (:func:`harness.results.long_rows`). For every
(attack, profile, metric) that a group of runs reports, :func:`across_seeds` gives

- the mean over the runs where the figure is defined and its Student-t 95% interval
  (:func:`harness.stats.mean_interval`: one seed gives no interval);
- for a rate, the pooled Wilson 95% interval of the summed counts (sum k / sum n), which
  weights each seed by its rows; the t-interval instead treats each seed as one observation,
  and so also carries the seed-to-seed spread (training, coding).

:func:`seed_groups` finds which runs are such cells: the same data set, model, training and
attacks, whatever their seeds and names.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Mapping, Sequence

from .results import OFFLINE, long_rows
from .results_model import Rate, Results
from .stats import mean_interval


#: The headline figures (what the report's seed table and ``harness compare`` show), by the
#: metric names of the long rows: clean, an attack offline, an attack on a device profile.
CLEAN_METRICS = ("accuracy",)
OFFLINE_METRICS = ("success_rate", "median_l0", "stalled_share", "zero_grad_share")
DEVICE_METRICS = ("success_rate", "transfer_rate")


def is_headline(attack: str, profile: str, metric: str) -> bool:
    """Whether a figure (``attack`` "" for a clean one) is one of the headline figures."""
    if not attack:
        return metric in CLEAN_METRICS
    return metric in (OFFLINE_METRICS if profile == OFFLINE else DEVICE_METRICS)


@dataclass(frozen=True)
class SeedFigure:
    """One figure (an attack's metric on a profile, or a clean figure with ``attack`` "") over seeds.

    Attributes:
        values: the figure of each run where it is defined (units of the metric).
        seeds: those runs' training seeds, in the same order.
        mean, low, high: mean of ``values`` and its t-interval (low/high None under 2 values).
        pooled: for a rate, the Wilson interval of the summed counts; None otherwise.
    """

    attack: str
    profile: str
    metric: str
    values: tuple[float, ...]
    seeds: tuple[int, ...]
    mean: float | None
    low: float | None
    high: float | None
    pooled: Rate | None

    @property
    def interval(self) -> tuple[float | None, float | None, float | None]:
        """``(mean, low, high)`` (what the figures draw as a point with an error bar)."""
        return self.mean, self.low, self.high


def _finite(x: float) -> float | None:
    return None if x != x else float(x)


def across_seeds(runs: Sequence[Results]) -> list[SeedFigure]:
    """Mean, t-interval and pooled Wilson interval of every figure of ``runs``, in first-seen order.

    A run where a figure is undefined (null, e.g. a rate over no rows) is left out of its mean;
    a figure no run defines is left out altogether. The t-interval of a rate (a figure with
    counts) is clipped to [0, 1]: with few seeds near 0% or 100% it would reach beyond.
    """
    found: dict[tuple[str, str, str], list[tuple[int, dict]]] = {}
    for results in runs:
        for row in long_rows(results):
            if row.get("value") is not None or row.get("n"):
                found.setdefault((row["attack"], row["profile"], row["metric"]), []).append((results.seed, row))
    out = []
    for (attack, profile, metric), rows in found.items():
        values = [row["value"] for _, row in rows if row["value"] is not None]
        if not values:
            continue
        mean, low, high = mean_interval(values)
        counted = all(row.get("k") is not None for _, row in rows)
        if counted:
            low, high = max(low, 0.0), min(high, 1.0)
        pooled = Rate.of(sum(r["k"] for _, r in rows), sum(r["n"] for _, r in rows)) if counted else None
        out.append(SeedFigure(attack=attack, profile=profile, metric=metric, values=tuple(values),
                              seeds=tuple(seed for seed, row in rows if row["value"] is not None),
                              mean=_finite(mean), low=_finite(low), high=_finite(high), pooled=pooled))
    return out


def cell_key(results: Results) -> str:
    """What the cells of one seed grid share: data set (less its coding seed), model and training
    (the model entry, spec digest included: two variants of one named model are two grids), and
    every attack's id, method, targets and settings (less their seed), as canonical JSON."""
    dataset = {k: v for k, v in results.dataset.to_dict().items() if k != "seed"}
    model = {k: v for k, v in results.model.to_dict().items() if not k.endswith("accuracy")}
    attacks = [{"id": a.id, "method": a.method, "target_mode": a.target_mode, "crafted_on": a.crafted_on,
                "parameters": {k: v for k, v in a.parameters.items() if k != "seed"}} for a in results.attacks]
    return json.dumps({"dataset": dataset, "model": model, "attacks": attacks}, sort_keys=True, default=str)


def seed_groups(runs: Mapping[str, Results]) -> list[list[str]]:
    """Run names grouped by :func:`cell_key`, in first-seen order: the seed grids among ``runs``.

    A group keeps the first run of each seed (a second run with the same content and seed is
    a replicate, not another seed) and counts only with 2+ seeds.
    """
    groups: dict[str, dict[int, str]] = {}
    for name, results in runs.items():
        groups.setdefault(cell_key(results), {}).setdefault(results.seed, name)
    return [list(by_seed.values()) for by_seed in groups.values() if len(by_seed) > 1]
