"""What every benchmark shares: result rows with goals, interleaved median timing, peak memory
of a process tree, cached trained models, the machine description and the result table.

Machines here are shared and noisy, so a figure is always a ratio against a baseline measured
in the same process (or the same ``make bench`` run), each side the median of several
repetitions run in turn; absolute seconds are kept for information only.
"""
from __future__ import annotations

import os
import platform
import statistics
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import psutil

REPO = Path(__file__).resolve().parent.parent
DEFAULT_NMNIST = Path(os.environ.get("HARNESS_NMNIST", REPO.parent / "shared" / "data" / "nmnist_small"))
MB = 2**20


class BenchmarkFailure(Exception):
    """A benchmark's own check failed (e.g. its outputs differ from the baseline's)."""


# ------------------------------------------------------------------ rows and goals
@dataclass(frozen=True)
class Goal:
    """A bound on one value of a row.

    Attributes:
        on: "ratio" or "ours" (the value the bound applies to).
        op: ">=", "<=" or "within" (absolute value <= bound).
        bound: the bound, in the unit of that value.
    """

    on: str
    op: str
    bound: float

    def met(self, row: "Row") -> bool | None:
        value = row.ratio if self.on == "ratio" else row.ours
        if value is None:
            return None
        if self.op == ">=":
            return value >= self.bound
        if self.op == "<=":
            return value <= self.bound
        return abs(value) <= self.bound

    def text(self, row: "Row") -> str:
        unit = row.ratio_label if self.on == "ratio" else f" {row.unit}"
        return f"{self.op} {self.bound:g}{unit}"


@dataclass
class Row:
    """One line of the result table.

    Attributes:
        benchmark: the benchmark that produced it ("attack", "replay", ...).
        figure: what is measured, e.g. "G2S+RSF attack, time per sample".
        unit: unit of ``ours`` and ``baseline`` (e.g. "ms/sample", "%", "MB").
        ours: the harness's value.
        baseline: the baseline's value (None: a figure for the record only).
        ratio: the compared value, e.g. baseline / ours for a speed-up, ours - baseline for rates.
        ratio_label: how ``ratio`` reads, e.g. "x faster", "x slower", " pt".
        goal: the bound the figure should meet (None: no goal).
        info: absolute timings and other context (JSON only).
    """

    benchmark: str
    figure: str
    unit: str
    ours: float
    baseline: float | None = None
    ratio: float | None = None
    ratio_label: str = ""
    goal: Goal | None = None
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def met(self) -> bool | None:
        return None if self.goal is None else self.goal.met(self)

    def to_dict(self) -> dict[str, Any]:
        return {"benchmark": self.benchmark, "figure": self.figure, "unit": self.unit, "ours": self.ours,
                "baseline": self.baseline, "ratio": self.ratio, "ratio_label": self.ratio_label,
                "goal": None if self.goal is None else self.goal.text(self), "met": self.met, "info": self.info}


def speedup_row(benchmark: str, figure: str, ours_s: float, baseline_s: float, at_least: float,
                info: dict[str, Any]) -> Row:
    """A time-per-sample row (inputs in seconds per sample, shown in ms) judged on baseline / ours."""
    return Row(benchmark, figure, "ms/sample", ours_s * 1e3, baseline_s * 1e3, baseline_s / ours_s, "x faster",
               Goal("ratio", ">=", at_least), info)


def rate_row(benchmark: str, figure: str, ours: float, baseline: float, within_points: float) -> Row:
    """A success-rate row (inputs as fractions, shown in %) judged on the difference in points."""
    return Row(benchmark, figure, "%", 100 * ours, 100 * baseline, 100 * (ours - baseline), " pt",
               Goal("ratio", "within", within_points))


# ------------------------------------------------------------------ timing
@dataclass
class Timing:
    """Wall-clock seconds of every repetition of one callable, and its last result."""

    seconds: list[float]
    result: Any

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)

    def info(self) -> dict[str, Any]:
        """Absolute seconds for the JSON (information only)."""
        return {"median_s": round(self.median, 4), "repeats_s": [round(s, 4) for s in self.seconds]}


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    """(wall-clock seconds, result) of one call."""
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def interleaved(runs: dict[str, Callable[[], Any]], repeats: int, budget_s: float = float("inf")
                ) -> dict[str, Timing]:
    """Time every callable up to ``repeats`` times, taking turns (A, B, A, B, ...).

    Taking turns spreads the slow phases of a shared machine over all sides alike, so their
    medians stay comparable. A callable is not repeated once its runs have taken ``budget_s``
    seconds together (it always runs once): a run that long already averages over the
    machine's bursts, and ``make bench`` has to stay short.
    """
    timings = {name: Timing([], None) for name in runs}
    for _ in range(repeats):
        for name, fn in runs.items():
            if timings[name].seconds and sum(timings[name].seconds) >= budget_s:
                continue
            seconds, timings[name].result = timed(fn)
            timings[name].seconds.append(seconds)
    return timings


# ------------------------------------------------------------------ memory
def tree_pss(root: psutil.Process) -> int:
    """Summed PSS (bytes) of ``root`` and all its descendants.

    PSS splits every shared page among the processes that map it, so Lava's forked workers,
    which share the parent's pages (about 575 MB of imports), are not counted once per worker
    as summed RSS would (../shared/notes/lava-replay.md).
    """
    total = 0
    try:
        procs = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0
    for proc in procs:
        try:
            total += proc.memory_full_info().pss
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
    return total


class PeakMemory:
    """Context manager sampling the summed PSS of this process tree in a thread; ``peak`` in bytes.

    Args:
        interval: seconds between samples (a peak shorter than this can be missed).
    """

    def __init__(self, interval: float = 0.05):
        self.interval = interval
        self.peak = 0
        self.start = 0
        self._root = psutil.Process()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, name="pss-sampler", daemon=True)

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, tree_pss(self._root))
            self._stop.wait(self.interval)

    def __enter__(self) -> "PeakMemory":
        self.start = self.peak = tree_pss(self._root)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, tree_pss(self._root))


# ------------------------------------------------------------------ models
def trained_model(model: str, cache: Path, seed: int, epochs: int | None, data_path: Path | None,
                  progress: bool) -> Path:
    """Run directory of ``model`` trained with ``seed`` for ``epochs`` (None: the spec's).

    The run lives under ``cache`` and is reused when its model card exists (train_run writes
    the card last); otherwise it is trained now with :func:`harness.train.train_run`.
    """
    from harness.models import load_spec
    from harness.store import RunDir
    from harness.train import train_run

    epochs = int(epochs or load_spec(model).training["epochs"])
    run = cache / f"{model}-seed{seed}-epochs{epochs}"
    if not RunDir(run).card_file.exists():
        train_run(model, run, data_path, seed=seed, epochs=epochs, progress=progress)
    return run


def test_then_train(run_dir: Path, nmnist: Path, samples: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The first ``samples`` recordings of the run's data, test split first, then train split
    (N-MNIST small holds 100 + 1,000): spikes (N, *shape, T) uint8 and labels (N,) int64."""
    from harness.errors import DataError
    from harness.models import spec_from_dict
    from harness.runs import open_run
    from harness.train import load_split

    run = open_run(run_dir)
    spec = spec_from_dict(run.card["spec"], str(run.card_file))
    parts = [load_split(spec, "test", nmnist, seed, limit=samples)]
    if len(parts[0].spikes) < samples:
        parts.append(load_split(spec, "train", nmnist, seed, limit=samples - len(parts[0].spikes)))
    spikes = np.concatenate([part.spikes for part in parts])
    if len(spikes) < samples:
        raise DataError(f"{nmnist}: {len(spikes)} samples in the train and test splits, {samples} requested")
    return spikes, np.concatenate([np.asarray(part.labels, dtype=np.int64) for part in parts])


# ------------------------------------------------------------------ machine and table
def machine() -> dict[str, Any]:
    """The machine a run measured: CPUs, CPU model, memory, torch threads, load, versions."""
    import torch

    from harness.versions import package_versions

    model = "unknown"
    try:
        model = next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                     if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return {"nproc": len(os.sched_getaffinity(0)), "cpu_model": model,
            "memory_gb": round(psutil.virtual_memory().total / 2**30, 1), "torch_threads": torch.get_num_threads(),
            "load_average": [round(x, 2) for x in os.getloadavg()], "platform": platform.platform(),
            "versions": package_versions()}


def _number(value: float | None) -> str:
    if value is None:
        return "-"
    if abs(value) >= 100:
        return f"{value:.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.3g}"


def table(rows: list[Row]) -> str:
    """The rows as a Markdown table: figure, ours, baseline, ratio, goal, met?."""
    header = ["figure", "ours", "baseline", "ratio", "goal", "met?"]
    lines = [[row.figure, f"{_number(row.ours)} {row.unit}",
              "-" if row.baseline is None else f"{_number(row.baseline)} {row.unit}",
              "-" if row.ratio is None else f"{_number(row.ratio)}{row.ratio_label}",
              "-" if row.goal is None else row.goal.text(row),
              {True: "yes", False: "NO", None: "-"}[row.met]] for row in rows]
    widths = [max(len(cells[i]) for cells in [header, *lines]) for i in range(len(header))]

    def fmt(cells: list[str]) -> str:
        return "| " + " | ".join(cell.ljust(width) for cell, width in zip(cells, widths)) + " |"

    return "\n".join([fmt(header), "|" + "|".join("-" * (w + 2) for w in widths) + "|", *map(fmt, lines)])
