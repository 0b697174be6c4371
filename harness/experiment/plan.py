"""An experiment as a plan of stage tasks: train -> attack -> replay -> summarise -> report.

:func:`build_plan` turns a validated :class:`~harness.experiment.spec.Experiment` into
:class:`Task` objects in a dependency order (every task after the tasks it depends on, stages in
data-flow order). A task has a stable id (the same experiment file gives the same ids), the ids
it depends on, a module-level function of :mod:`.tasks` and picklable keyword arguments, so any
executor (:mod:`.executor`) can run it, here or in another process.

Task ids: ``train/<run>`` (also for a run that imports a netx network), ``attack/<run>/<label>``,
``proof/<profile>/<run>`` (the clean replay a query attack's twin oracle needs first), ``ann/<run>/<n>``,
``replay/<profile>/<run>`` (the clean split and every attack set of the run through one device
session), ``evaluate/<run>/<n>`` (an ``[[evaluations]]`` table: robust accuracy on every profile, in
the replay stage), ``summarise/<run>``, ``report``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from ..attacks.registry import get
from ..device.profiles import load_profile
from . import tasks
from .spec import AttackPlan, Experiment

#: The stages in data-flow order (stage lines say "[i/5] <stage> ...").
STAGES = ("train", "attack", "replay", "summarise", "report")


@dataclass(frozen=True)
class Task:
    """One unit of work of a plan.

    Attributes:
        id: stable id (see the module docstring).
        stage: one of :data:`STAGES`.
        describe: what the stage line says, e.g. "G2S+RSF on digits".
        deps: ids of the tasks whose results it reads.
        fn: a function of :mod:`harness.experiment.tasks`.
        kwargs: its picklable keyword arguments (``inputs`` is added when it runs).
        cell: the run the task belongs to (None for the report, which reads every run).
    """

    id: str
    stage: str
    describe: str
    fn: Callable[..., tasks.TaskResult]
    deps: tuple[str, ...] = ()
    kwargs: dict[str, Any] = field(default_factory=dict)
    cell: str | None = None


def _twin_proof(plan: list[Task], exp: Experiment, table: AttackPlan, root: Path, run_id: str,
                progress: bool) -> list[str]:
    """The task id of the clean replay that proves the run's twin equals the device for a query attack
    answered by the twin oracle (:func:`harness.attacks.oracles.check_twin_proof`), added to ``plan``
    once per (profile, run); [] for any other attack. The later replay task keeps that file."""
    settings = table.settings
    if settings is None or get(table.method).needs not in ("scores", "labels") or settings.get("oracle", "twin") != "twin":
        return []  # an iterative method (rsf needs scores too, from the torch network itself) or the device oracle
    profile = load_profile(settings.get("profile", "loihi2-fixed"))
    task_id = f"proof/{profile.name}/{run_id}"
    if all(t.id != task_id for t in plan):
        run = next(r for r in exp.runs if r.id == run_id)
        plan.append(Task(task_id, "attack", f"clean {run_id} on {profile.name} (the twin oracle's proof)",
                         tasks.replay, (f"train/{run_id}",),
                         {"root": root, "run_id": run_id, "profile": profile,
                          "data": exp.data if run.needs_data else None, "progress": progress}, cell=run_id))
    return [task_id]


def build_plan(exp: Experiment, root: Path, progress: bool = True) -> list[Task]:
    """Every task of ``exp`` run in ``root``, each after its dependencies."""
    plan: list[Task] = []
    for run in exp.runs:
        what = f"{run.id} (imported {Path(run.network).name})" if run.network else \
            f"{run.id} ({run.model}, seed {run.seed}, {run.epochs} epochs)"
        plan.append(Task(f"train/{run.id}", "train", what, tasks.import_run if run.network else tasks.train,
                         kwargs={"root": root, "plan": run, "data": exp.data if run.needs_data else None,
                                 "progress": progress}, cell=run.id))
    attack_tasks: dict[str, list[tuple[str, str]]] = {run.id: [] for run in exp.runs}  # run -> (task, label)
    for table in exp.attacks:
        for run_id in table.runs:
            task_id = f"attack/{run_id}/{table.label}"
            deps = [f"train/{run_id}"] + ([f"train/{table.crafted_on}"] if table.crafted_on else [])
            deps += _twin_proof(plan, exp, table, root, run_id, progress)
            extra = {}
            if table.method == "random":
                extra["reference"] = f"attack/{run_id}/{table.reference}"
                deps.append(extra["reference"])
            plan.append(Task(task_id, "attack", f"{table.label} on {run_id}", tasks.attack, tuple(deps),
                             {"root": root, "plan": table, "run_id": run_id, "budgets": exp.budgets,
                              "progress": progress, **extra}, cell=run_id))
            attack_tasks[run_id].append((task_id, table.label))
    ann_tasks: dict[str, list[str]] = {run.id: [] for run in exp.runs}
    for number, table in enumerate(exp.ann, 1):
        for run_id in table.runs:
            task_id = f"ann/{run_id}/{number}"
            snn = None if table.snn_attack is None else f"attack/{run_id}/{table.snn_attack}"
            plan.append(Task(task_id, "attack", f"ANN twin of {run_id}: FGSM/BIM/PGD and black-box transfer both ways",
                             tasks.ann, tuple([f"train/{run_id}"] + ([snn] if snn else [])),
                             {"root": root, "plan": table, "run_id": run_id, "progress": progress, "snn_attack": snn},
                             cell=run_id))
            ann_tasks[run_id].append(task_id)
    replay_tasks: dict[str, list[str]] = {run.id: [] for run in exp.runs}
    for profile in exp.hardware.values():
        for run in exp.runs:
            data = exp.data if run.needs_data else None
            attacks = tuple(t for t, _ in attack_tasks[run.id])
            task_id = f"replay/{profile.name}/{run.id}"
            described = ", ".join(["clean", *(label for _, label in attack_tasks[run.id])])
            plan.append(Task(task_id, "replay", f"{described} of {run.id} on {profile.name} (one device session)",
                             tasks.replay, (f"train/{run.id}", *attacks),
                             {"root": root, "run_id": run.id, "profile": profile, "data": data,
                              "progress": progress, "attacks": attacks}, cell=run.id))
            replay_tasks[run.id].append(task_id)
    evaluation_tasks: dict[str, list[str]] = {run.id: [] for run in exp.runs}
    for number, table in enumerate(exp.evaluations, 1):
        for run_id in table.runs:
            task_id = f"evaluate/{run_id}/{number}"
            plan.append(Task(task_id, "replay", f"robust accuracy of {run_id} ({table.ensemble} ensemble, "
                                                f"{', '.join(exp.hardware) or 'offline'})", tasks.evaluate,
                             (f"train/{run_id}",), {"root": root, "plan": table, "run_id": run_id,
                                                    "profiles": list(exp.hardware.values()), "progress": progress},
                             cell=run_id))
            evaluation_tasks[run_id].append(task_id)
    for run in exp.runs:
        attacks = tuple(t for t, _ in attack_tasks[run.id])
        evaluations = tuple(evaluation_tasks[run.id])
        plan.append(Task(f"summarise/{run.id}", "summarise", f"{run.id} -> results.json", tasks.summarise,
                         tuple([f"train/{run.id}", *attacks, *ann_tasks[run.id], *replay_tasks[run.id], *evaluations]),
                         {"root": root, "run_id": run.id, "profiles": exp.profiles,
                          "budgets": exp.budgets, "attacks": attacks, "anns": tuple(ann_tasks[run.id]),
                          "evaluations": evaluations},
                         cell=run.id))
    labelled = {t: label for pairs in attack_tasks.values() for t, label in pairs}
    summaries = {run.id: f"summarise/{run.id}" for run in exp.runs}
    plan.append(Task("report", "report", str(root), tasks.report, tuple([*summaries.values(), *labelled]),
                     {"root": root, "title": f"{exp.name}: robustness report", "description": exp.description,
                      "study": exp.study, "config": exp.to_dict(), "progress": progress, "runs": summaries,
                      "attacks": labelled}))
    return plan
