"""Replay scaling: time and peak memory of :func:`harness.device.replay` as the sample count grows.

Each size runs in a fresh Python process (``python -m benchmarks.bench_scaling``), so its
peak memory is that of replaying that many samples (imports, data and Lava's process tree),
not of whatever the benchmark run did before. Memory is the summed PSS of the worker's
process tree, sampled every 50 ms (:class:`benchmarks.common.PeakMemory`), peak over the
repeated replays. Samples come from the test split, then the train split (N-MNIST small holds
100 + 1,000 recordings). Lava is imported before the timer starts.

Goals: roughly linear time (the time per sample at every size at most 1.5x that at the
smallest size) and a peak <= 1.5 GB at the largest size.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np

from .common import MB, REPO, BenchmarkFailure, Goal, PeakMemory, Row, interleaved, test_then_train
from .plan import SEED, Plan, Setup

NAME = "scaling"
PROFILE = "loihi2-fixed"
MAX_PER_SAMPLE_GROWTH = 1.5
MAX_PEAK_MB = 1536.0


def run(setup: Setup) -> list[Row]:
    """Two rows per size: time per sample (against the smallest size) and peak memory."""
    plan = setup.plan
    run_dir = setup.model(plan.scaling_model)
    results = [measure_in_worker(run_dir, setup.nmnist, n, plan) for n in plan.scaling_sizes]
    first, last = results[0], results[-1]
    base = first["median_s"] / first["samples"]
    rows = []
    for result in results:
        n, per_sample = result["samples"], result["median_s"] / result["samples"]
        name = f"replay {n} {plan.scaling_model} samples"
        rows.append(Row(NAME, f"{name}, time per sample", "ms/sample", per_sample * 1e3, base * 1e3,
                        per_sample / base, f"x of n={first['samples']}",
                        None if result is first else Goal("ratio", "<=", MAX_PER_SAMPLE_GROWTH), result))
        rows.append(Row(NAME, f"{name}, peak memory (PSS)", "MB", result["peak_bytes"] / MB,
                        goal=Goal("ours", "<=", MAX_PEAK_MB) if result is last else None,
                        info={"before_replay_mb": round(result["start_bytes"] / MB, 1)}))
    return rows


def measure_in_worker(run_dir: Path, nmnist: Path, samples: int, plan: Plan) -> dict:
    """Run :func:`measure` in a fresh process; its result dict."""
    command = [sys.executable, "-m", "benchmarks.bench_scaling", str(run_dir), str(samples), "--nmnist", str(nmnist),
               "--repeats", str(plan.repeats), "--budget", str(plan.budget_s)]
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True)
    if done.returncode != 0:
        raise BenchmarkFailure(f"scaling worker for {samples} samples failed (exit {done.returncode}):\n"
                               f"{done.stderr.strip()[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def load_samples(run_dir: Path, nmnist: Path, samples: int) -> tuple[Path, np.ndarray]:
    """The run's network file and its first ``samples`` test-then-train samples (N, *shape, T)."""
    from harness.runs import open_run

    return open_run(run_dir).network, test_then_train(run_dir, nmnist, samples, SEED)[0]


def measure(run_dir: Path, nmnist: Path, samples: int, repeats: int, budget_s: float) -> dict:
    """Replay ``samples`` samples of the run's data set ``repeats`` times (within ``budget_s``).

    Returns:
        {"samples", "median_s", "repeats_s", "peak_bytes", "start_bytes" (PSS before the first
        replay), "lanes"}.
    """
    from harness.device import preload, replay

    network, spikes = load_samples(run_dir, nmnist, samples)
    preload()
    with PeakMemory() as memory:
        timing = interleaved({"replay": lambda: replay(network, spikes, PROFILE)}, repeats, budget_s)["replay"]
    return {"samples": samples, **timing.info(), "peak_bytes": memory.peak, "start_bytes": memory.start,
            "lanes": timing.result.lanes}


def main() -> None:
    parser = argparse.ArgumentParser(description="One scaling measurement (a worker of benchmarks/run.py); "
                                                 "prints its result as JSON.")
    parser.add_argument("run_dir", type=Path, help="run directory with a trained model")
    parser.add_argument("samples", type=int, help="number of samples to replay")
    parser.add_argument("--nmnist", type=Path, required=True, help="N-MNIST directory (ignored for digits)")
    parser.add_argument("--repeats", type=int, default=1, help="replays to time (the median is reported)")
    parser.add_argument("--budget", type=float, default=float("inf"),
                        help="no further replay once the replays took this many seconds together")
    args = parser.parse_args()
    print(json.dumps(measure(args.run_dir, args.nmnist, args.samples, args.repeats, args.budget)))


if __name__ == "__main__":
    main()
