"""Ray executor: a study of independent cells under Ray (2 workers) against the local executor.

The study: ``ray_cells`` seeds of ``ray_model`` (``seeds = [0, ..]``, each trained for
``ray_epochs`` epochs), a G2S+RSF attack on the first ``ray_attack_samples`` test samples of
each, every set and the clean test split replayed on loihi2-fixed, results and the report.

Both sides run ``harness run`` in a fresh process on a fresh run directory (nothing reused),
so both pay their imports: the local executor with ``--threads 2`` (both cores its own way),
Ray with ``--workers 2`` (two task servers of one torch thread each; Ray's start-up and the
servers' imports included). The two runs must give the same results.json (apart from timings),
else the benchmark fails.

Goal: Ray >= 1.6x faster on 2 cores.
"""
from __future__ import annotations

import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path

from .common import REPO, BenchmarkFailure, Goal, Row, interleaved
from .plan import Plan, Setup

NAME = "ray"
WORKERS = 2
LOCAL_THREADS = 2
AT_LEAST = 1.6
_DONE = re.compile(r"^\s+(?P<task>\S+): done in (?P<s>\d+) s")


def study_text(plan: Plan) -> str:
    """The experiment file of the benchmark's study."""
    return f"""name = "bench-ray"
seeds = {list(range(plan.ray_cells))}
profiles = ["loihi2-fixed"]
budgets = [10, 50, 100]
[[runs]]
id = "cell"
model = "{plan.ray_model}"
epochs = {plan.ray_epochs}
[[attacks]]
label = "G2S+RSF"
method = "g2s-rsf"
n = {plan.ray_attack_samples}
iterations = 25
"""


def harness_run(study: Path, root: Path, *options: str) -> dict[str, float]:
    """``harness run STUDY --run ROOT OPTIONS`` in a fresh process; seconds per stage it printed."""
    command = [sys.executable, "-m", "harness", "run", str(study), "--run", str(root), "--no-progress", *options]
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True)
    if done.returncode != 0:
        raise BenchmarkFailure(f"{' '.join(options) or 'local'} run failed (exit {done.returncode}):\n"
                               f"{done.stderr.strip()[-2000:]}")
    stages: dict[str, float] = {}
    for line in done.stdout.splitlines():
        match = _DONE.match(line)
        if match:
            stage = match["task"].split("/")[0]
            stages[stage] = stages.get(stage, 0.0) + float(match["s"])
    return stages


def results_of(root: Path) -> dict[str, dict]:
    """Every cell's results.json, timings (keys with 'seconds') and the run paths left out."""
    def plain(value):
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items() if "seconds" not in k}
        if isinstance(value, list):
            return [plain(v) for v in value]
        return value.replace(str(root), "ROOT") if isinstance(value, str) else value

    return {p.parent.name: plain(json.loads(p.read_text())) for p in sorted(root.glob("*/results.json"))}


def run(setup: Setup) -> list[Row]:
    """One row: the study's wall-clock time under Ray against the local executor."""
    plan = setup.plan
    setup.require_data(plan.ray_model)
    with tempfile.TemporaryDirectory(prefix="bench-ray-") as tmp:
        work = Path(tmp)
        study = work / "study.toml"
        study.write_text(study_text(plan))
        roots: dict[str, list[Path]] = {"ray": [], "local": []}
        stages: dict[str, dict[str, float]] = {}

        def side(name: str, *options: str):
            def go() -> None:
                root = work / f"{name}-{len(roots[name])}"
                roots[name].append(root)
                stages[name] = harness_run(study, root, *options)
            return go

        timings = interleaved({"ray": side("ray", "--executor", "ray", "--workers", str(WORKERS)),
                               "local": side("local", "--threads", str(LOCAL_THREADS))},
                              plan.repeats, plan.budget_s)
        ours, local = results_of(roots["ray"][0]), results_of(roots["local"][0])
        if len(ours) != plan.ray_cells or ours != local:
            raise BenchmarkFailure(f"Ray and local runs differ (cells {sorted(ours)} vs {sorted(local)})")
    ray_s, local_s = timings["ray"].median, timings["local"].median
    info = {"ray": timings["ray"].info(), "local": timings["local"].info(), "cells": plan.ray_cells,
            "tasks_seconds_by_stage": stages, "workers": WORKERS, "local_threads": LOCAL_THREADS}
    figure = (f"study of {plan.ray_cells} {plan.ray_model} cells, Ray {WORKERS} workers vs local "
              f"(torch threads {LOCAL_THREADS})")
    return [Row(NAME, figure, "s", ray_s, local_s, local_s / ray_s, "x faster", Goal("ratio", ">=", AT_LEAST), info)]
