"""Running a plan of stage tasks (:mod:`.plan`), and :func:`run_experiment`, which does it all.

An executor takes the tasks in dependency order and runs each once, handing it the results of
the tasks it depends on. :class:`LocalExecutor` runs them one after another in this process;
another executor (e.g. one on a cluster) implements the same ``run(plan, echo)``.
"""
from __future__ import annotations

import time
import traceback
from collections import Counter
from pathlib import Path
from typing import Callable, Protocol

import tomli_w

from ..errors import HarnessError
from ..store import run_lock, write_if_changed
from ..versions import package_versions
from .plan import STAGES, Task, build_plan
from .spec import Experiment
from .tasks import TaskResult

Echo = Callable[[str], None]


class Executor(Protocol):
    """Runs every task of a plan after its dependencies; returns task id -> result.

    A task that fails does not stop the others: every task that does not depend on it still
    runs (its artifacts are kept), then :class:`TaskFailed` names each failure.
    """

    def run(self, plan: list[Task], echo: Echo) -> dict[str, TaskResult]: ...


class TaskFailed(HarnessError):
    """Tasks of a plan failed; every task that did not depend on them finished.

    Attributes:
        failures: (task, its error's message, its traceback ("" for a HarnessError)) per failure.
        skipped: ids of the tasks not run because they depend on a failed task.
    """

    def __init__(self, failures: list[tuple[Task, str, str]], skipped: list[str], total: int):
        self.failures, self.skipped = failures, skipped
        lines = [f"{len(failures)} of {total} tasks failed"
                 + (f" ({len(skipped)} not run: they need a failed task's output)" if skipped else "")
                 + "; the other tasks finished and their artifacts are kept:"]
        lines += [f"  {task.id} (stage {task.stage}, run {task.cell or 'all'}): {message}"
                  for task, message, _ in failures]
        super().__init__("\n".join(lines))


def stage_line(task: Task) -> str:
    """"[2/5] attack G2S+RSF on digits ..." for a task that starts."""
    return f"[{STAGES.index(task.stage) + 1}/{len(STAGES)}] {task.stage} {task.describe} ..."


def done_line(result: TaskResult, started: float) -> str:
    """"kept: up to date" when the task's output was not (re)written since ``started``, else its time."""
    kept = result.output.stat().st_mtime < started
    status = "kept: up to date" if kept else f"done in {time.time() - started:.0f} s"
    return f"      {status}{'; ' + result.note if result.note else ''}"


def check_order(plan: list[Task]) -> None:
    """Raise ValueError unless every task's dependencies come before it and ids are unique."""
    seen: set[str] = set()
    for task in plan:
        missing = [d for d in task.deps if d not in seen]
        if missing or task.id in seen:
            raise ValueError(f"plan out of order at {task.id}: {missing or 'duplicate id'}")
        seen.add(task.id)


def failure_message(exc: BaseException) -> tuple[str, str]:
    """A task's error as (one-line message, traceback); a HarnessError's traceback is ""."""
    if isinstance(exc, HarnessError):
        return str(exc), ""
    return f"{type(exc).__name__}: {exc}", "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))


class PlanState:
    """Where a plan stands: which tasks finished, failed, were skipped, and which may start.

    Both executors use it, so they start tasks under the same rule (every dependency finished)
    and print the same progress: each stage line says how many tasks of its stage and of the
    plan have finished, e.g. ``[2/5] attack G2S on a-s1 ... (attack 3/6 done, plan 7/20)``, and
    each line of a finished task names it (under Ray, tasks finish in any order).
    """

    def __init__(self, plan: list[Task]):
        check_order(plan)
        self.plan = plan
        self.results: dict[str, TaskResult] = {}
        self.failures: list[tuple[Task, str, str]] = []
        self.skipped: list[str] = []
        self.started: dict[str, float] = {}
        self.totals = Counter(task.stage for task in plan)
        self.done = Counter()

    def ready(self) -> list[Task]:
        """Tasks not yet started whose dependencies all finished, in plan order."""
        return [t for t in self.plan if t.id not in self.started and t.id not in self.skipped
                and all(d in self.results for d in t.deps)]

    @property
    def finished(self) -> bool:
        """Every task finished, failed or was skipped."""
        return len(self.results) + len(self.failures) + len(self.skipped) == len(self.plan)

    def counts(self, stage: str) -> str:
        return f"({stage} {self.done[stage]}/{self.totals[stage]} done, plan {sum(self.done.values())}/{len(self.plan)})"

    def start(self, task: Task) -> str:
        """Mark ``task`` started; its stage line."""
        self.started[task.id] = time.time()
        return f"{stage_line(task)} {self.counts(task.stage)}"

    def inputs(self, task: Task) -> dict[str, TaskResult]:
        """The results of the tasks ``task`` depends on."""
        return {d: self.results[d] for d in task.deps}

    def finish(self, task: Task, result: TaskResult) -> str:
        """Record ``task``'s result; the line that says it finished."""
        self.results[task.id] = result
        self.done[task.stage] += 1
        return f"      {task.id}: {done_line(result, self.started[task.id]).strip()} {self.counts(task.stage)}"

    def fail(self, task: Task, message: str, trace: str = "") -> str:
        """Record ``task``'s failure (its error's message and traceback) and skip every task that
        needs its output; the failure line."""
        self.failures.append((task, message, trace))
        lost = {task.id}
        for later in self.plan:
            if later.id not in self.started and later.id not in self.skipped and lost & set(later.deps):
                self.skipped.append(later.id)
                lost.add(later.id)
        return f"      FAILED {task.id} (stage {task.stage}, run {task.cell or 'all'}): {message}"

    def outcome(self) -> dict[str, TaskResult]:
        """Every result, or TaskFailed when any task failed."""
        if self.failures:
            raise TaskFailed(self.failures, self.skipped, len(self.plan))
        return self.results


class LocalExecutor:
    """Every task in this process, one after another in the plan's order."""

    def run(self, plan: list[Task], echo: Echo) -> dict[str, TaskResult]:
        state = PlanState(plan)
        while not state.finished:
            task = state.ready()[0]
            echo(state.start(task))
            try:
                result = task.fn(**task.kwargs, inputs=state.inputs(task))
            except Exception as exc:  # noqa: BLE001 - reported with the others by state.outcome()
                echo(state.fail(task, *failure_message(exc)))
            else:
                echo(state.finish(task, result))
        return state.outcome()


def write_config(exp: Experiment, root: Path) -> None:
    """``ROOT/config.toml``: the resolved experiment, seeds and package versions (if changed)."""
    config = {**exp.to_dict(), "versions": package_versions()}
    write_if_changed(root / "config.toml", tomli_w.dumps(config).encode("utf-8"))


def run_experiment(exp: Experiment, run_dir: str | Path | None = None, progress: bool = True,
                   echo: Echo = print, executor: Executor | None = None) -> Path:
    """Run every stage of ``exp`` in ``run_dir`` (default runs/<name>); the report's path.

    Stages keep what exists with the same identity (:func:`harness.store.cached`): a model
    trained from the same spec, seed, epochs and data; an attack file made with the same
    settings on the same model and inputs; a replay of the same inputs on the same network and
    profile; results and report files whose content would not change. ``echo`` receives the
    stage lines; ``executor`` defaults to :class:`LocalExecutor`.
    """
    root = Path(run_dir) if run_dir is not None else Path("runs") / exp.name
    with run_lock(root, "harness run"):  # a second study on this folder is refused (docs/scale.md)
        write_config(exp, root)
        results = (executor or LocalExecutor()).run(build_plan(exp, root, progress), echo)
    return results["report"].output
