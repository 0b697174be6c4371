"""Whole studies from ``experiments/*.toml``: train -> attack -> replay -> summarise -> report.

- :mod:`.spec`: the experiment file (schema, validation, the resolved :class:`Experiment`);
  :mod:`.grid`: lists of seeds, models and attack settings expanded into cells;
- :mod:`.plan`: the experiment as stage tasks with stable ids and dependencies;
- :mod:`.tasks`: what each task does (idempotent functions of picklable arguments);
- :mod:`.executor`: running a plan (:class:`LocalExecutor`, progress, failures) and
  :func:`run_experiment`; :mod:`.ray_executor`: the same on a Ray cluster, through
  :mod:`.task_process` (a task server process per Ray worker) and :mod:`.task_worker`.

The names below are imported on first use (PEP 562), not with the package: a Ray worker
imports :mod:`.task_process` (standard library only) without torch and Lava.
"""
from __future__ import annotations

import importlib
from typing import Any

_WHERE = {"Executor": "executor", "LocalExecutor": "executor", "TaskFailed": "executor",
          "run_experiment": "executor", "write_config": "executor", "STAGES": "plan", "Task": "plan",
          "build_plan": "plan", "DEFAULT_DATA": "spec", "AnnPlan": "spec", "AttackPlan": "spec",
          "Experiment": "spec", "RunPlan": "spec", "load_experiment": "spec", "merge": "spec",
          "RayExecutor": "ray_executor"}

__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f".{_WHERE[name]}", __name__), name)
