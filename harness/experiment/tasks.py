"""The stage tasks of an experiment: module-level functions with picklable arguments.

Each takes its settings plus ``inputs`` (the :class:`TaskResult` of every task it depends on,
by task id) and returns a :class:`TaskResult`. Each is idempotent: the stage functions it calls
keep every artifact whose identity matches (:func:`harness.store.cached`), so rerunning a
finished task rewrites nothing. Being plain functions of picklable values, they run the same
in-process (:class:`~harness.experiment.executor.LocalExecutor`) or in another worker process.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import tomli_w

from ..attacks import run_attack, run_random_baseline, run_transfer
from ..attacks.ann import ann_comparison
from ..attacks.interface import Job
from ..attacks.registry import get
from ..device.profiles import Profile
from ..evaluation.evaluate import evaluate as run_evaluation
from ..evaluation.record import load_evaluation
from ..report import write_experiment_report
from ..fmt import num, pct
from ..report.robustness import headline
from ..report.sections import Labels
from ..results import load_run, robustness_entry, write_results
from ..runs import open_run
from ..stages.replay import replay_sets
from ..store import write_if_changed
from ..adversarial_training import adversary_for
from ..train import train_run
from .spec import AnnPlan, AttackPlan, EvaluationPlan, RunPlan


@dataclass(frozen=True)
class TaskResult:
    """What a finished task hands to its dependants.

    Attributes:
        output: the artifact the task wrote or kept.
        note: a one-line summary for the stage line ("" for none).
        value: what dependants need (an attack's id, a summary), picklable.
    """

    output: Path
    note: str = ""
    value: Any = None


Inputs = Mapping[str, TaskResult]


def train(root: Path, plan: RunPlan, data: Path | None, progress: bool, inputs: Inputs) -> TaskResult:
    """Train ``plan`` into ``ROOT/<id>/`` (kept when trained from the same spec, seed, epochs and data).

    The resolved spec is kept as ``RUN_DIR/spec.toml`` (what was trained, overrides included).
    """
    run_dir = root / plan.id
    spec_file = run_dir / "spec.toml"
    write_if_changed(spec_file, tomli_w.dumps(plan.spec).encode("utf-8"))
    card = train_run(str(spec_file), run_dir, data_path=data, seed=plan.seed, epochs=plan.epochs, progress=progress,
                     adversary_for=adversary_for)
    return TaskResult(open_run(run_dir).card_file, f"test accuracy {card['test_accuracy']:.1%}")


def import_run(root: Path, plan: RunPlan, data: Path, progress: bool, inputs: Inputs) -> TaskResult:
    """Import ``plan.network`` into ``ROOT/<id>/`` (:func:`harness.interop.netx_import.import_netx`), proven on the
    N-MNIST folder's test split; kept when imported before from the same file and data."""
    from ..interop.netx_import import import_netx

    card = import_netx(plan.network, root / plan.id, data=data, steps=plan.steps, dt_ms=plan.dt_ms)
    return TaskResult(open_run(root / plan.id).card_file, f"twin vs device: {card['twin_device']['raster_exact']:.0%} "
                                                           f"identical rasters, test accuracy {card['test_accuracy']:.1%}")


def attack(root: Path, plan: AttackPlan, run_id: str, budgets: list[int], progress: bool,
           inputs: Inputs, reference: str | None = None) -> TaskResult:
    """One ``[[attacks]]`` table on one run; ``value`` is the attack id.

    Args:
        reference: the task id of the attack a random baseline copies its L0 from.
    """
    run_dir = root / run_id
    if plan.method == "random":
        path = run_random_baseline(run_dir, inputs[reference].value, seed=plan.seed, progress=progress)
    elif plan.settings is not None:  # a registered attack that is not iterative (sda, spikefool, sparse-rs, ...)
        values = {**plan.settings, **({"targeted": plan.targeted} if plan.targeted else {}),
                  **({"n": plan.n} if plan.n is not None else {})}
        path = get(plan.method).run(Job(run_dir, progress=progress), values)
    elif plan.crafted_on is not None:
        source = run_attack(root / plan.crafted_on, plan.config, plan.targeted, plan.n, progress=progress)
        path = run_transfer(run_dir, source)
    else:
        path = run_attack(run_dir, plan.config, plan.targeted, plan.n, progress=progress, method=plan.method)
    stats = open_run(run_dir).attack(path.stem).stats(budgets)
    return TaskResult(path, f"success {pct(stats['success_rate'])} of {stats['n_correct_before']} correct rows, "
                            f"median L0 {num(stats['median_l0'])}", path.stem)


def ann(root: Path, plan: AnnPlan, run_id: str, progress: bool, inputs: Inputs,
        snn_attack: str | None = None) -> TaskResult:
    """One ``[[ann]]`` table on one run (``snn_attack``: the task id of its SNN attack)."""
    path, result = ann_comparison(root / run_id, None if snn_attack is None else inputs[snn_attack].value,
                                  plan.eps, plan.eps_scale, plan.seed, plan.code_seed, plan.epochs, plan.n,
                                  progress=progress)
    clean = result["clean"]
    return TaskResult(path, f"clean accuracy SNN {pct(clean['snn_accuracy'])}, ANN {pct(clean['ann_accuracy'])}")


def replay(root: Path, run_id: str, profile: Profile, data: Path | None, progress: bool, inputs: Inputs,
           attacks: tuple[str, ...] = ()) -> TaskResult:
    """Replay the run's clean test split and every attack set (the task ids of its attacks) on ``profile``
    through one device session (:func:`harness.stages.replay.replay_sets`; up-to-date files are kept).

    ``output`` is the most recently written of the files, so the stage line says "kept" only when none was.
    """
    paths = replay_sets(root / run_id, profile, ["clean", *(inputs[t].value for t in attacks)], data_path=data,
                        progress=progress)
    return TaskResult(max(paths, key=lambda p: p.stat().st_mtime), f"{len(paths)} sets")


def evaluate(root: Path, plan: EvaluationPlan, run_id: str, profiles: list[Profile], progress: bool,
             inputs: Inputs) -> TaskResult:
    """One ``[[evaluations]]`` table on one run; ``value`` is the evaluation id."""
    path = run_evaluation(root / run_id, plan.ensemble, profiles, plan.budgets, plan.n, progress=progress,
                          retime_budgets=plan.retime_budgets or ())
    evaluation = load_evaluation(path)
    note = "; ".join(evaluation.errors) or headline(robustness_entry(evaluation))
    return TaskResult(path, note, path.stem)


def summarise(root: Path, run_id: str, profiles: list[str], budgets: list[int], inputs: Inputs,
              attacks: tuple[str, ...] = (), anns: tuple[str, ...] = (), evaluations: tuple[str, ...] = ()) -> TaskResult:
    """``ROOT/<run>/results.json`` from the run's attacks and ANN comparisons (task ids) and replays;
    its robustness block from the last of ``evaluations`` (task ids).

    ``value``: what the report reads again (attack ids, profiles, ANN files) and the results.
    """
    selection = {"attack_ids": [inputs[t].value for t in attacks], "profiles": list(profiles),
                 "ann": [inputs[t].output for t in anns]}
    art = load_run(root / run_id, **selection)
    headline = inputs[evaluations[-1]].value if evaluations else None
    return TaskResult(art.run.results, value={**selection, "results": write_results(art, budgets, headline)})


def report(root: Path, title: str, description: str, study: str | None, config: dict, progress: bool,
           inputs: Inputs, runs: Mapping[str, str] = {}, attacks: Mapping[str, str] = {}) -> TaskResult:
    """The experiment's report in ``root``.

    Args:
        runs: run id -> the task id of its summary, in the experiment's order.
        attacks: attack task id -> its table's label.
    """
    summaries = {}
    for run_id, task in runs.items():
        value = inputs[task].value
        art = load_run(root / run_id, value["attack_ids"], value["profiles"], value["ann"])
        summaries[run_id] = (art, value["results"])
    labels = Labels({inputs[task].value: label for task, label in attacks.items()})
    path = write_experiment_report(root, title, description, summaries, labels, study, config, progress=progress)
    return TaskResult(path)
