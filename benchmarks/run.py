"""``make bench``: run the benchmarks, print one table, write it as JSON.

Usage::

    .venv/bin/python benchmarks/run.py                      # everything (what make bench runs)
    .venv/bin/python benchmarks/run.py --only attack,replay  # a subset
    .venv/bin/python benchmarks/run.py --threads 2           # torch threads (default 1), both sides alike
    .venv/bin/python benchmarks/run.py --plan smoke --cache /tmp/c --results /tmp/r.json

Models are trained on first use into the cache directory and reused afterwards. A benchmark
that fails (bad data path, outputs that differ from the baseline) is reported and the others
still run; the exit status is then 1.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
import traceback
import warnings
from pathlib import Path

import torch

if __package__ in (None, ""):  # run as a script: make the repository root importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import bench_attack, bench_query, bench_ray, bench_replay, bench_scaling, bench_training  # noqa: E402
from benchmarks.common import DEFAULT_NMNIST, REPO, BenchmarkFailure, Row, machine, table  # noqa: E402
from benchmarks.plan import PLANS, Setup  # noqa: E402
from harness.errors import HarnessError  # noqa: E402
from harness.store import write_json  # noqa: E402

BENCHMARKS = {module.NAME: module for module in (bench_attack, bench_replay, bench_query, bench_scaling, bench_training,
                                                 bench_ray)}
RESULTS = REPO / "benchmarks" / "results"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description="Speed and memory benchmarks against baselines measured in the "
                                                 "same run; prints one table and writes it as JSON.")
    parser.add_argument("--only", default=",".join(BENCHMARKS),
                        help=f"comma-separated benchmarks to run (default: all of {', '.join(BENCHMARKS)})")
    parser.add_argument("--plan", choices=sorted(PLANS), default="full",
                        help="sizes: 'full' (make bench) or 'smoke' (tiny, for the smoke test)")
    parser.add_argument("--cache", type=Path, default=RESULTS / "models",
                        help="directory of trained models, reused across runs (default: %(default)s)")
    parser.add_argument("--results", type=Path, default=RESULTS / "latest.json",
                        help="JSON file the table is written to (default: %(default)s)")
    parser.add_argument("--nmnist", type=Path, default=DEFAULT_NMNIST,
                        help="N-MNIST directory (default: $HARNESS_NMNIST or %(default)s)")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads for every benchmark, ours and baselines alike (default: 1; on a shared "
                             "machine more threads than free cores make timings swing with the load)")
    parser.add_argument("--no-progress", action="store_true", help="hide progress bars")
    return parser


def selected(only: str) -> list[str]:
    """Benchmark names from ``--only``, validated."""
    names = [name.strip() for name in only.split(",") if name.strip()]
    unknown = [name for name in names if name not in BENCHMARKS]
    if unknown or not names:
        raise SystemExit(f"--only: unknown benchmark(s) {', '.join(unknown) or '(none given)'}; "
                         f"available: {', '.join(BENCHMARKS)}")
    return names


def run_all(names: list[str], setup: Setup) -> tuple[list[Row], dict[str, str]]:
    """Run the named benchmarks in order: their rows, and {name: message} of those that failed.

    A failing benchmark does not stop the others (their minutes of measurement are kept); an
    unexpected exception (a bug, not a bad input) also prints its traceback.
    """
    rows, errors = [], {}
    for name in names:
        print(f"== {name}", flush=True)
        try:
            rows += BENCHMARKS[name].run(setup)
        except (HarnessError, BenchmarkFailure) as exc:
            errors[name] = str(exc)
        except Exception as exc:  # noqa: BLE001 - reported below, with its traceback
            traceback.print_exc()
            errors[name] = f"{type(exc).__name__}: {exc}"
        if name in errors:
            print(f"   failed: {errors[name]}", file=sys.stderr, flush=True)
    return rows, errors


def describe(info: dict, seconds: float) -> str:
    """One line on the machine and the run, printed under the table."""
    return (f"{info['nproc']} CPUs ({info['cpu_model']}), {info['memory_gb']} GB, torch threads "
            f"{info['torch_threads']}, load average {info['load_average']} at the start, "
            f"{info['load_average_end']} at the end; {seconds:.0f} s in all")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    names = selected(args.only)
    warnings.filterwarnings("ignore", message=".*weight_norm is deprecated.*")  # lava-dl's, not ours
    if args.threads < 1:
        raise SystemExit(f"--threads must be >= 1, got {args.threads}")
    torch.set_num_threads(args.threads)
    setup = Setup(plan=PLANS[args.plan], cache=args.cache, nmnist=args.nmnist, progress=not args.no_progress)
    info = machine()
    started = time.perf_counter()
    rows, errors = run_all(names, setup)
    seconds = time.perf_counter() - started
    info["load_average_end"] = [round(x, 2) for x in os.getloadavg()]
    print(f"\n{table(rows)}\n\n{describe(info, seconds)}")
    for name, message in errors.items():
        print(f"{name}: FAILED: {message}")
    write_json(args.results, {"plan": setup.plan.name, "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                              "wall_seconds": round(seconds, 1), "machine": info,
                              "rows": [row.to_dict() for row in rows], "errors": errors})
    print(f"written: {args.results}")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
