"""Replay throughput: the harness's Lava replay against the naive way and against SLAYER.

- ours: :func:`harness.device.replay` of the digits test split (360 samples) on
  ``loihi2-fixed``, one call for the whole split (build, compile, run, read-back);
- naive baseline: one netx network built, compiled and run per sample
  (:mod:`benchmarks.netx_naive`) on the first samples of the split; its output rasters must be
  identical to ours (else :class:`BenchmarkFailure`);
- floor: SLAYER's own no-grad forward pass on the same inputs, in one batch: the speed a CPU
  simulation can approach;
- warm session: the same split replayed inside a device session that is already compiled and
  started (:func:`harness.device.device_session`), against the same floor;
- four sets: the demo's four replay sets (the clean split, and three attack sets of the demo's
  sizes: distinct clean rows + adversarial rows) through one session (opened, four replays,
  stopped), against one ``replay`` call on their union.

The one-time imports of Lava and netx happen before any timing, on both sides.
Goals: >= 100x faster than naive, <= 10 ms per sample, the warm session within 20x of SLAYER's
forward pass (a whole call's figure beside it, for the record), four sets <= 1.3x their union.
"""
from __future__ import annotations

import numpy as np
import torch

from harness.device import device_session, preload, replay
from harness.runs import open_run
from harness.store import RunDir

from . import netx_naive
from .common import BenchmarkFailure, Goal, Row, Timing, interleaved, speedup_row
from .plan import Setup

NAME = "replay"
PROFILE = "loihi2-fixed"
MIN_SPEEDUP = 100.0
MAX_MS_PER_SAMPLE = 10.0
MAX_SLAYER_SLOWDOWN = 20.0
MAX_SETS_OVERHEAD = 1.3
DEMO_ATTACK_ROWS = ((360, 360), (60, 540), (360, 360))  # (distinct clean rows, adversarial rows) per attack set
FLIPS_PER_ROW = 40  # stand-in perturbation (replay cost does not depend on how the flips were found)


def run(setup: Setup) -> list[Row]:
    """Five rows: speed-up over naive, time per sample, a whole call and a warm session against
    SLAYER, four sets through one session against their union."""
    run_dir = setup.model(setup.plan.replay_model)
    run_ = open_run(run_dir)
    net, spikes = run_.net, run_.test(setup.plan.replay_samples, setup.nmnist).spikes
    network = RunDir(run_dir).network
    preload()
    netx_naive.preload()
    x = torch.as_tensor(spikes, dtype=torch.float32)
    with device_session(network, PROFILE) as dev:
        dev.replay(spikes)  # build, compile, start: the session is warm from here on
        timings = interleaved({"ours": lambda: replay(network, spikes, PROFILE),
                               "slayer": lambda: _slayer_forward(net, x),
                               "session": lambda: dev.replay(spikes)}, setup.plan.repeats, setup.plan.budget_s)
    naive_rasters, naive_seconds = netx_naive.replay_naive(network, spikes[:setup.plan.naive_samples])
    check_identical(timings["ours"].result.rasters, naive_rasters)
    check_identical(timings["ours"].result.rasters, timings["session"].result.rasters)
    sets = demo_sets(spikes, setup.plan.replay_samples)
    union = np.concatenate(sets)
    set_timings = interleaved({"sets": lambda: _through_one_session(network, sets),
                               "union": lambda: replay(network, union, PROFILE)}, setup.plan.repeats,
                              setup.plan.budget_s)
    check_identical(set_timings["union"].result.rasters, np.concatenate(set_timings["sets"].result))
    return (rows(timings["ours"], timings["slayer"], naive_seconds)
            + [session_row(timings["session"], timings["slayer"]),
               sets_row(set_timings["sets"], set_timings["union"], [len(s) for s in sets])])


def demo_sets(spikes: np.ndarray, limit: int | None) -> list[np.ndarray]:
    """The demo's replay sets: the clean split, then per attack its distinct clean rows followed by
    its adversarial rows (:data:`DEMO_ATTACK_ROWS`, cut to ``limit`` rows each when given), the
    adversarial rows being clean rows with :data:`FLIPS_PER_ROW` seeded random flips."""
    rng = np.random.default_rng(0)
    sets = [spikes]
    for distinct, rows_ in DEMO_ATTACK_ROWS:
        distinct, rows_ = min(distinct, len(spikes), limit or distinct), min(rows_, limit or rows_)
        adversarial = spikes[np.arange(rows_) % distinct].copy()
        flat = adversarial.reshape(rows_, -1)
        for row in flat:
            row[rng.choice(row.size, FLIPS_PER_ROW, replace=False)] ^= 1
        sets.append(np.concatenate([spikes[:distinct], adversarial]))
    return sets


def _through_one_session(network, sets: list[np.ndarray]) -> list[np.ndarray]:
    """Open a session, replay every set, stop it: the output rasters of each set."""
    with device_session(network, PROFILE, expected_samples=max(len(s) for s in sets)) as dev:
        return [dev.replay(s).rasters for s in sets]


def session_row(session: Timing, slayer: Timing) -> Row:
    """The warm session's time per sample against SLAYER's no-grad forward."""
    n = len(slayer.result)
    ours_s, slayer_s = session.median / n, slayer.median / n
    return Row(NAME, "replay in a warm session vs SLAYER no-grad forward", "ms/sample", ours_s * 1e3,
               slayer_s * 1e3, ours_s / slayer_s, "x slower", Goal("ratio", "<=", MAX_SLAYER_SLOWDOWN),
               info={"samples": n, "session_replay": session.info(), "slayer_forward": slayer.info(),
                     "lanes": session.result.lanes})


def sets_row(sets: Timing, union: Timing, sizes: list[int]) -> Row:
    """Four sets through one session (cold: opened and stopped) against one call on their union."""
    return Row(NAME, f"{len(sizes)} demo sets through one session vs one call on their union", "s",
               sets.median, union.median, sets.median / union.median, "x", Goal("ratio", "<=", MAX_SETS_OVERHEAD),
               info={"set_sizes": sizes, "sets": sets.info(), "union": union.info(), "union_lanes": union.result.lanes})


def rows(ours: Timing, slayer: Timing, naive_seconds: list[float]) -> list[Row]:
    """The three rows from the timings of ours and SLAYER (whole split) and naive (per sample)."""
    n = len(slayer.result)
    ours_s, naive_s, slayer_s = ours.median / n, float(np.median(naive_seconds)), slayer.median / n
    info = {"samples": n, "naive_samples": len(naive_seconds), "lanes": ours.result.lanes,
            "ours": ours.info(), "slayer_forward": slayer.info(),
            "naive_per_sample_s": [round(s, 4) for s in naive_seconds],
            "rasters_identical_to_naive": f"{len(naive_seconds)}/{len(naive_seconds)}",
            "rasters_identical_to_slayer": f"{_identical(ours.result.rasters, slayer.result)}/{n}"}
    return [speedup_row(NAME, f"replay {n} samples vs naive netx per sample", ours_s, naive_s, MIN_SPEEDUP, info),
            Row(NAME, "replay, time per sample", "ms/sample", ours_s * 1e3,
                goal=Goal("ours", "<=", MAX_MS_PER_SAMPLE), info={"samples": n}),
            Row(NAME, "replay (whole call) vs SLAYER no-grad forward", "ms/sample", ours_s * 1e3, slayer_s * 1e3,
                ours_s / slayer_s, "x slower", None, info={"samples": n})]


def _slayer_forward(net, x: torch.Tensor) -> np.ndarray:
    """SLAYER's output rasters (N, K, T) uint8 for inputs ``x`` (N, *shape, T), one no-grad batch."""
    with torch.no_grad():
        return net(x).numpy().astype(np.uint8)


def _identical(a: np.ndarray, b: np.ndarray) -> int:
    """Number of samples whose (K, T) rasters are equal in ``a`` and ``b`` (N, K, T)."""
    return int((a == b).reshape(len(a), -1).all(axis=1).sum())


def check_identical(ours: np.ndarray, other: np.ndarray) -> None:
    """Raise BenchmarkFailure unless the ``other`` rasters (naive replay, session) equal the first rows of ours."""
    differ = np.flatnonzero((ours[:len(other)] != other).reshape(len(other), -1).any(axis=1))
    if len(differ):
        raise BenchmarkFailure(f"replay output differs from the other replay on {len(differ)} of {len(other)} "
                               f"samples (first: sample {differ[0]}); the timings are not comparable")
