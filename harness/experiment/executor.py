"""Running a plan of stage tasks (:mod:`.plan`), and :func:`run_experiment`, which does it all.

An executor takes the tasks in dependency order and runs each once, handing it the results of
the tasks it depends on. :class:`LocalExecutor` runs them one after another in this process;
another executor (e.g. one on a cluster) implements the same ``run(plan, echo)``.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Callable, Protocol

import tomli_w

from ..store import write_if_changed
from ..versions import package_versions
from .plan import STAGES, Task, build_plan
from .spec import Experiment
from .tasks import TaskResult

Echo = Callable[[str], None]


class Executor(Protocol):
    """Runs every task of a plan after its dependencies; returns task id -> result."""

    def run(self, plan: list[Task], echo: Echo) -> dict[str, TaskResult]: ...


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


class LocalExecutor:
    """Every task in this process, in the plan's order."""

    def run(self, plan: list[Task], echo: Echo) -> dict[str, TaskResult]:
        check_order(plan)
        results: dict[str, TaskResult] = {}
        for task in plan:
            echo(stage_line(task))
            started = time.time()
            results[task.id] = task.fn(**task.kwargs, inputs={d: results[d] for d in task.deps})
            echo(done_line(results[task.id], started))
        return results


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
    write_config(exp, root)
    results = (executor or LocalExecutor()).run(build_plan(exp, root, progress), echo)
    return results["report"].output
