"""Query throughput of the black-box attacks' oracles (issue 23), on the plan's attack model.

- device query: :meth:`harness.device.DeviceSession.output_counts` in a warm session (built,
  compiled and started before any timing), at batch 1 (a 1-lane session) and batch 16 (a
  16-lane session), against SLAYER's no-grad forward of the same inputs in one batch, per sample;
- twin oracle vs device oracle: :class:`harness.attacks.oracles.TwinOracle` against the warm
  16-lane session on the same 16 candidates (goal: >= 20x the device's queries per second);
- twin oracle vs the plain no-grad forward it replaced (:func:`harness.train.output_counts`:
  weight normalisation recomputed and quantized weights rebuilt on every call), same inputs.

Every side's counts must be identical (else :class:`BenchmarkFailure`).
"""
from __future__ import annotations

import numpy as np

from harness.attacks.oracles import TwinOracle
from harness.device import device_session, preload
from harness.runs import open_run
from harness.train import output_counts

from .common import BenchmarkFailure, Goal, Row, interleaved, speedup_row
from .plan import Setup

NAME = "query"
PROFILE = "loihi2-fixed"
#: The issue's figures before its changes: a warm 16-lane session's query cost 6.8x SLAYER's per-sample forward.
MAX_DEVICE_SLOWDOWN_B16 = 6.8 / 2
MIN_TWIN_SPEEDUP = 20.0
MIN_FOLD_SPEEDUP = 1.5
BATCH = 16


def run(setup: Setup) -> list[Row]:
    """Four rows: device query at batch 1 and 16 vs SLAYER, twin vs device, twin vs plain forward."""
    run_ = open_run(setup.model(setup.plan.attack_model))
    net, spikes = run_.net, run_.test(BATCH, setup.nmnist).spikes
    one, batch = spikes[:1], spikes[:BATCH]
    twin = TwinOracle(net)
    preload()
    rows = []
    with device_session(run_.network_file, PROFILE, lanes=1) as dev:
        dev.output_counts(one)  # build, compile, start
        t = interleaved({"device": lambda: dev.output_counts(one), "slayer": lambda: output_counts(net, one)},
                        setup.plan.repeats, setup.plan.budget_s)
    _same(t["device"].result, t["slayer"].result)
    rows.append(_device_row(1, t["device"].median, t["slayer"].median, None))
    with device_session(run_.network_file, PROFILE, lanes=len(batch)) as dev:
        dev.output_counts(batch)
        t = interleaved({"device": lambda: dev.output_counts(batch), "slayer": lambda: output_counts(net, batch),
                         "twin": lambda: twin.counts(batch)}, setup.plan.repeats, setup.plan.budget_s)
    for side in ("slayer", "twin"):
        _same(t["device"].result, t[side].result)
    n = len(batch)
    rows.append(_device_row(n, t["device"].median / n, t["slayer"].median / n,
                            Goal("ratio", "<=", MAX_DEVICE_SLOWDOWN_B16)))
    rows.append(speedup_row(NAME, f"twin oracle vs device oracle (warm {n}-lane session), {n} queries per call",
                            t["twin"].median / n, t["device"].median / n, MIN_TWIN_SPEEDUP,
                            {"twin": t["twin"].info(), "device": t["device"].info()}))
    rows.append(speedup_row(NAME, f"twin oracle vs plain no-grad forward (before the fold), {n} per call",
                            t["twin"].median / n, t["slayer"].median / n, MIN_FOLD_SPEEDUP,
                            {"twin": t["twin"].info(), "plain": t["slayer"].info()}))
    twin.close()
    return rows


def _device_row(n: int, device_s: float, slayer_s: float, goal: Goal | None) -> Row:
    """A warm session's time per query sample against SLAYER's no-grad forward per sample."""
    return Row(NAME, f"device query in a warm session, batch {n}, vs SLAYER no-grad forward", "ms/sample",
               device_s * 1e3, slayer_s * 1e3, device_s / slayer_s, "x slower", goal,
               info={"samples": n, "lanes": n})


def _same(ours: np.ndarray, other: np.ndarray) -> None:
    if not np.array_equal(np.asarray(ours, dtype=np.int64), np.asarray(other, dtype=np.int64)):
        raise BenchmarkFailure("query benchmark: the oracles' output counts differ")
