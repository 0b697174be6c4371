"""Whole studies from ``experiments/*.toml``: train -> attack -> replay -> summarise -> report.

- :mod:`.spec`: the experiment file (schema, validation, the resolved :class:`Experiment`);
- :mod:`.plan`: the experiment as stage tasks with stable ids and dependencies;
- :mod:`.tasks`: what each task does (idempotent functions of picklable arguments);
- :mod:`.executor`: running a plan (:class:`LocalExecutor`) and :func:`run_experiment`.
"""
from .executor import Executor, LocalExecutor, run_experiment, write_config
from .plan import STAGES, Task, build_plan
from .spec import DEFAULT_DATA, AnnPlan, AttackPlan, Experiment, RunPlan, load_experiment, merge

__all__ = ["DEFAULT_DATA", "STAGES", "AnnPlan", "AttackPlan", "Executor", "Experiment", "LocalExecutor", "RunPlan",
           "Task", "build_plan", "load_experiment", "merge", "run_experiment", "write_config"]
