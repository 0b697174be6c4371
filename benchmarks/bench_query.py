"""Query throughput of the black-box attacks' oracles (issue 23), on the plan's attack model.

- device query: :meth:`harness.device.DeviceSession.output_counts` in a warm session (built,
  compiled and started before any timing), at batch 1 (a 1-lane session) and batch 16 (a
  16-lane session), against SLAYER's no-grad forward of the same inputs in one batch, per sample;
  each batch twice, in two sessions open side by side and timed in turns: before (Lava's own
  ``Sparse`` models, ``synapse="stock"``) and after (the active-column models,
  :mod:`harness.device.lava_procs.synapse`). Goal: the batch-16 ratio at most half of before's;
- twin oracle vs device oracle: :class:`harness.attacks.oracles.TwinOracle` (for nmnist-mlp its
  exact dense CUBA forward, :mod:`harness.attacks.cuba_forward`) against the warm 16-lane
  session (after; before for the record) on the same 16 candidates (goal: >= 20x the device's
  queries per second);
- twin oracle vs the plain no-grad forward it replaced (:func:`harness.train.output_counts`:
  SLAYER's forward, weight normalisation recomputed and quantized weights rebuilt on every
  call), same inputs.

Every side's counts must be identical (else :class:`BenchmarkFailure`).
"""
from __future__ import annotations

from contextlib import ExitStack

import numpy as np

from harness.attacks.oracles import TwinOracle
from harness.device import DeviceSession, load_profile, preload
from harness.device.lava_sim import ACTIVE, STOCK
from harness.runs import open_run
from harness.train import output_counts

from .common import BenchmarkFailure, Goal, Row, interleaved, speedup_row
from .plan import Setup

NAME = "query"
PROFILE = "loihi2-fixed"
MIN_DEVICE_GAIN_B16 = 2.0  # the batch-16 ratio at least halved against the stock synapses of the same run
MIN_TWIN_SPEEDUP = 20.0
MIN_FOLD_SPEEDUP = 1.5
BATCH = 16
REPEAT_FACTOR = 5  # a query call takes 0.05-1 s: five times the plan's repetitions steady the medians
SYNAPSE_WORDS = {STOCK: "before: Lava's Sparse models", ACTIVE: "after: active-column synapses"}


def run(setup: Setup) -> list[Row]:
    """Rows: device query at batch 1 and 16 vs SLAYER (before and after), twin vs device, twin vs plain forward."""
    run_ = open_run(setup.model(setup.plan.attack_model))
    net, spikes = run_.net, run_.test(BATCH, setup.nmnist).spikes
    twin = TwinOracle(net)
    preload()
    rows = []
    for n in (1, BATCH):
        t = _timed(setup, run_, {"slayer": lambda: output_counts(net, spikes[:n]),
                                 **({"twin": lambda: twin.counts(spikes[:n])} if n == BATCH else {})}, spikes[:n])
        before = _device_row(n, STOCK, t, None)
        goal = Goal("ratio", "<=", before.ratio / MIN_DEVICE_GAIN_B16) if n == BATCH else None
        rows += [before, _device_row(n, ACTIVE, t, goal)]
    for synapse in (ACTIVE, STOCK):  # t: the batch-16 timings
        rows.append(speedup_row(NAME, f"twin oracle vs device oracle (warm {BATCH}-lane session, "
                                      f"{SYNAPSE_WORDS[synapse]}), {BATCH} queries per call",
                                t["twin"].median / BATCH, t[synapse].median / BATCH, MIN_TWIN_SPEEDUP,
                                {"twin": t["twin"].info(), "twin_path": twin.path, "device": t[synapse].info()}))
    rows[-1].goal = None  # before, for the record: the goal is on the current device oracle
    rows.append(speedup_row(NAME, f"twin oracle vs plain no-grad forward (SLAYER's, as the twin ran before), {BATCH} per call",
                            t["twin"].median / BATCH, t["slayer"].median / BATCH, MIN_FOLD_SPEEDUP,
                            {"twin": t["twin"].info(), "plain": t["slayer"].info()}))
    twin.close()
    return rows


def _timed(setup: Setup, run_, sides: dict, batch: np.ndarray) -> dict:
    """``sides`` and a warm session per synapse model (STOCK, ACTIVE; ``len(batch)`` lanes, open
    side by side) answering ``batch``, timed in turns; every side's counts must be the same."""
    with ExitStack() as stack:
        for synapse in (STOCK, ACTIVE):
            dev = stack.enter_context(DeviceSession(run_.network_file, load_profile(PROFILE), lanes=len(batch),
                                                    synapse=synapse))
            dev.output_counts(batch)  # build, compile, start
            sides[synapse] = lambda dev=dev: dev.output_counts(batch)
        t = interleaved(sides, setup.plan.repeats * REPEAT_FACTOR, setup.plan.budget_s)
    for side in t:
        _same(t[ACTIVE].result, t[side].result)
    return t


def _device_row(n: int, synapse: str, t: dict, goal: Goal | None) -> Row:
    """A warm session's time per query sample (timings ``t[synapse]`` of ``n`` samples per call)
    against SLAYER's no-grad forward per sample (``t["slayer"]``)."""
    device_s, slayer_s = t[synapse].median / n, t["slayer"].median / n
    return Row(NAME, f"device query in a warm session, batch {n} ({SYNAPSE_WORDS[synapse]}), vs SLAYER no-grad "
                     "forward", "ms/sample", device_s * 1e3, slayer_s * 1e3, device_s / slayer_s, "x slower", goal,
               info={"samples": n, "lanes": n, "synapse": synapse, "device": t[synapse].info(),
                     "slayer": t["slayer"].info()})


def _same(ours: np.ndarray, other: np.ndarray) -> None:
    if not np.array_equal(np.asarray(ours, dtype=np.int64), np.asarray(other, dtype=np.int64)):
        raise BenchmarkFailure("query benchmark: the oracles' output counts differ")
