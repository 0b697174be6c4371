"""The sizing table of docs/scale.md: estimated wall-clock time of the five canned studies x 3
seeds on the full N-MNIST test set (10,000 recordings), on 1, 8 and 64 Ray workers.

An estimate, not a measurement: every task of the real plans (:func:`harness.experiment.build_plan`
of experiments/study1..5, three independent copies each) gets a cost from measured single-task
costs (:data:`COSTS`, from docs/benchmarks.md: nmnist-mlp, one torch thread, the shared 2-core
machine), and the tasks are list-scheduled on W workers under their dependencies, the ready
task first in plan order (as :class:`~harness.experiment.ray_executor.RayExecutor` does).

    .venv/bin/python -m benchmarks.sizing      # prints the Markdown table
"""
from __future__ import annotations

import heapq
from pathlib import Path

from harness.experiment import build_plan, load_experiment
from harness.experiment.plan import Task

STUDIES = ("study1-methods", "study2-loss", "study3-threshold", "study4-ann", "study5-device")
SEEDS = 3
RECORDINGS = 10_000  # the full N-MNIST test set
TRAIN_RECORDINGS = 60_000  # the full N-MNIST training set, for training
WORKERS = (1, 8, 64)

#: Measured single-task costs (docs/benchmarks.md, "A real run"; this branch's runs for the last two).
COSTS = {
    "dense_attack_s_per_row": 8.69e-3,     # G2S+RSF, K=25, eta 1, batched (also used for G2S and RSF only)
    "sparse_attack_s_per_row": 85.6e-3,    # eta 0.05, K=100, reduction
    "replay_s_per_recording": 18.5e-3,     # loihi2-fixed, 1,000 recordings in one call
    "train_samples_per_s": 638.0,          # nmnist-mlp training throughput
    "summarise_s": 1.0,                    # results.json of one run (measured: < 1 s)
    "report_s_per_run": 5.0,               # report (measured: 10 s for two digits runs)
    "digits_epoch_s": 2.0,                 # digits-mlp, one epoch (this branch's runs)
    "digits_replay_s_per_sample": 3.13e-3,  # digits-mlp on loihi2-fixed (docs/benchmarks.md)
}
DIGITS_TEST = 360  # digits runs (study 4) keep their own data set: its 360 test samples
#: Not measured: a random-flip baseline is one forward pass per row (taken as a tenth of a
#: dense attack); an ANN comparison trains a twin and runs three attacks (taken as one SNN
#: training of the same epochs).
RANDOM_FRACTION = 0.1


def _training(epochs: int, digits: bool) -> float:
    return epochs * (COSTS["digits_epoch_s"] if digits else TRAIN_RECORDINGS / COSTS["train_samples_per_s"])


def task_seconds(task: Task, digits: bool = False) -> float:
    """The estimated cost of one task at :data:`RECORDINGS` test recordings (``digits``: the
    task's run is a digits model, on its own 360 test samples)."""
    kw = task.kwargs
    samples = DIGITS_TEST if digits else RECORDINGS
    if task.stage == "train":
        return _training(kw["plan"].epochs, digits)
    if task.id.startswith("ann/"):  # the twin's training dominates; its epochs default to the SNN's
        return _training(kw["plan"].epochs or (30 if digits else 20), digits)
    if task.stage == "attack":
        plan = kw["plan"]
        rows = samples * (9 if plan.targeted == "every-other" else 1)
        if plan.method == "random":
            return rows * COSTS["dense_attack_s_per_row"] * RANDOM_FRACTION
        sparse = plan.config.eta < 1 or plan.config.reduce
        return rows * COSTS["sparse_attack_s_per_row" if sparse else "dense_attack_s_per_row"]
    if task.stage == "replay":
        return samples * COSTS["digits_replay_s_per_sample" if digits else "replay_s_per_recording"]
    if task.stage == "summarise":
        return COSTS["summarise_s"]
    return COSTS["report_s_per_run"] * len(kw["runs"])


def all_tasks() -> list[tuple[str, Task, float]]:
    """(copy, task, estimated seconds) for every task of the five studies x :data:`SEEDS` copies."""
    out = []
    for name in STUDIES:
        exp = load_experiment(name, data=Path("."))
        digits = {run.id for run in exp.runs if not run.needs_data}
        for seed in range(SEEDS):
            out += [(f"{name}#{seed}", task, task_seconds(task, task.cell in digits))
                    for task in build_plan(exp, Path("/nonexistent"), progress=False)]
    return out


def makespan(tasks: list[tuple[str, Task, float]], workers: int) -> float:
    """Seconds until the last task ends, list-scheduled on ``workers`` workers."""
    cost = {(c, t.id): seconds for c, t, seconds in tasks}
    deps = {(c, t.id): [(c, d) for d in t.deps] for c, t, _ in tasks}
    order = [(c, t.id) for c, t, _ in tasks]
    end: dict[tuple[str, str], float] = {}
    free = [0.0] * workers  # times at which each worker is free
    pending = list(order)
    now = 0.0
    running: list[tuple[float, tuple[str, str]]] = []
    while pending or running:
        ready = [k for k in pending if all(d in end and end[d] <= now for d in deps[k])]
        while ready and sum(1 for f in free if f <= now):
            key = ready.pop(0)
            pending.remove(key)
            worker = next(i for i, f in enumerate(free) if f <= now)
            free[worker] = now + cost[key]
            end[key] = free[worker]
            heapq.heappush(running, (free[worker], key))
        if not running:
            break
        now = heapq.heappop(running)[0]
    return max(end.values())


def _hours(seconds: float) -> str:
    return f"{seconds / 3600:.1f} h" if seconds >= 3600 else f"{seconds / 60:.0f} min"


def table() -> str:
    """The Markdown sizing table."""
    tasks = all_tasks()
    total = sum(seconds for _, _, seconds in tasks)
    trainings = sum(seconds for _, t, seconds in tasks if t.stage == "train" or t.id.startswith("ann/"))
    lines = ["| workers | estimated wall-clock | bound: the longest dependency chain |", "|---|---|---|"]
    chain = makespan(tasks, len(tasks))  # unlimited workers: the critical path
    for workers in WORKERS:
        lines.append(f"| {workers} | {_hours(makespan(tasks, workers))} | {_hours(chain)} |")
    return (f"{len(tasks)} tasks, {_hours(total)} of work in all (estimated), {_hours(trainings)} of it "
            f"training (SNNs and ANN twins)\n\n" + "\n".join(lines))


if __name__ == "__main__":
    print(table())
