"""Replay throughput: the harness's Lava replay against the naive way and against SLAYER.

- ours: :func:`harness.device.replay` of the digits test split (360 samples) on
  ``loihi2-fixed``, one call for the whole split (build, compile, run, read-back);
- naive baseline: one netx network built, compiled and run per sample
  (:mod:`benchmarks.netx_naive`) on the first samples of the split; its output rasters must be
  identical to ours (else :class:`BenchmarkFailure`);
- floor: SLAYER's own no-grad forward pass on the same inputs, in one batch: the speed a CPU
  simulation can approach.

The one-time imports of Lava and netx happen before any timing, on both sides.
Goals: >= 100x faster than naive, <= 10 ms per sample, within 20x of SLAYER's forward pass.
"""
from __future__ import annotations

import numpy as np
import torch

from harness.device import preload, replay
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


def run(setup: Setup) -> list[Row]:
    """Three rows: speed-up over naive, absolute time per sample, slowdown against SLAYER."""
    run_dir = setup.model(setup.plan.replay_model)
    run_ = open_run(run_dir)
    net, spikes = run_.net, run_.test(setup.plan.replay_samples, setup.nmnist).spikes
    network = RunDir(run_dir).network
    preload()
    netx_naive.preload()
    x = torch.as_tensor(spikes, dtype=torch.float32)
    timings = interleaved({"ours": lambda: replay(network, spikes, PROFILE),
                           "slayer": lambda: _slayer_forward(net, x)}, setup.plan.repeats, setup.plan.budget_s)
    naive_rasters, naive_seconds = netx_naive.replay_naive(network, spikes[:setup.plan.naive_samples])
    check_identical(timings["ours"].result.rasters, naive_rasters)
    return rows(timings["ours"], timings["slayer"], naive_seconds)


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
            Row(NAME, "replay vs SLAYER no-grad forward", "ms/sample", ours_s * 1e3, slayer_s * 1e3,
                ours_s / slayer_s, "x slower", Goal("ratio", "<=", MAX_SLAYER_SLOWDOWN), info={"samples": n})]


def _slayer_forward(net, x: torch.Tensor) -> np.ndarray:
    """SLAYER's output rasters (N, K, T) uint8 for inputs ``x`` (N, *shape, T), one no-grad batch."""
    with torch.no_grad():
        return net(x).numpy().astype(np.uint8)


def _identical(a: np.ndarray, b: np.ndarray) -> int:
    """Number of samples whose (K, T) rasters are equal in ``a`` and ``b`` (N, K, T)."""
    return int((a == b).reshape(len(a), -1).all(axis=1).sum())


def check_identical(ours: np.ndarray, naive: np.ndarray) -> None:
    """Raise BenchmarkFailure unless the naive rasters equal the first rows of ours."""
    differ = np.flatnonzero((ours[:len(naive)] != naive).reshape(len(naive), -1).any(axis=1))
    if len(differ):
        raise BenchmarkFailure(f"replay output differs from the naive netx replay on {len(differ)} of {len(naive)} "
                               f"samples (first: sample {differ[0]}); the timings are not comparable")
