"""Whole studies from ``experiments/*.toml``: train -> attack -> replay -> summarise -> report.

An experiment file describes one study (docs/experiments.md has every key)::

    name = "demo"                    # run directory: runs/<name>/ unless --run is given
    seed = 0                         # default seed of every run and attack
    budgets = [10, 20, 50, 100]      # flip budgets of the success curves (default: 10 ... 2000)
    profiles = ["loihi2-fixed"]      # hardware profiles to replay on ([] = offline only)
    data = "../shared/data/nmnist_small"   # N-MNIST folder, relative to the repository root
    study = "methods"                # optional: the study table/figure the report adds

    [[runs]]                         # one trained model per run: RUN_DIR/<id>/
    id = "digits-mlp"
    model = "digits-mlp"             # a models/ name or a path to a spec
    epochs = 15                      # default: the spec's
    spec = { training = { loss = "cross-entropy" } }   # optional overrides of the spec

    [[attacks]]                      # every attack runs on every run unless `runs` is given
    method = "g2s-rsf"
    ...                              # the attack's settings (harness.attacks)

Each run directory follows docs/artifacts.md; the experiment directory holds the resolved
``config.toml`` and the report.
"""
from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import tomli_w

from .attacks import TARGET_MODES, AttackConfig, AttackRecord, run_attack, run_random_baseline, run_transfer
from .attacks.ann import DEFAULT_EPS, EPS_SCALES, ann_comparison
from .config import PROJECT_ROOT, check_unknown, load_toml, require_keys, resolve_spec
from .device import load_profile, replay_run
from .errors import ConfigError, DataError
from .models import load_spec, spec_from_dict
from .report import write_experiment_report
from .report.sections import Labels, num, pct
from .report.studies import STUDIES
from .results import DEFAULT_BUDGETS, check_budgets, load_run, write_results
from .store import RunDir, read_json, write_if_changed
from .train import train_run
from .versions import package_versions

#: Where N-MNIST experiments read their data unless the file or --data says otherwise.
DEFAULT_DATA = "../shared/data/nmnist_small"

_EXPERIMENT_KEYS = {"name", "description", "seed", "budgets", "profiles", "data", "study", "runs", "attacks", "ann"}
_ANN_KEYS = {"runs", "snn_attack", "eps", "eps_scale", "seed", "code_seed", "epochs", "n"}
_RUN_KEYS = {"id", "model", "seed", "epochs", "spec"}
_ATTACK_KEYS = {"label", "targeted", "n", "runs", "crafted_on", "reference"}
#: Keys of an [[attacks]] table passed on to :class:`harness.attacks.AttackConfig`.
_ATTACK_SETTINGS = {"method", "iterations", "gamma", "eta", "reduce", "max_flips", "max_flip_rate",
                    "attack_threshold", "loss", "seed"}


@dataclass
class RunPlan:
    """One model of an experiment, trained into ``RUN_DIR/<id>/``.

    Attributes:
        spec: the resolved model spec (the models/*.toml layout with the overrides applied).
    """

    id: str
    model: str
    seed: int
    epochs: int
    spec: dict[str, Any]

    @property
    def needs_data(self) -> bool:
        """The model's data set is read from a folder (N-MNIST), not embedded (digits)."""
        return self.spec["data"]["dataset"] != "digits"


@dataclass
class AttackPlan:
    """One ``[[attacks]]`` table: what to run on which runs.

    Attributes:
        label: display name, unique in the experiment (default: method and target mode).
        method: an iterative method (g2s-rsf, g2s, rsf) or "random" (flips at the L0 of the
            attack ``reference``, a label of an earlier table).
        config: the iterative attack's settings (None for "random").
        targeted: target mode or None (untargeted).
        n: attack the first ``n`` test samples (None: all).
        runs: ids of the runs whose model judges the examples.
        crafted_on: a run id whose model crafts the examples (transfer); None = each run's own.
        reference: the label of the attack whose per-row L0 the random baseline uses.
        seed: the random baseline's seed (None: the reference's).
    """

    label: str
    method: str
    config: AttackConfig | None
    targeted: str | None
    n: int | None
    runs: list[str]
    crafted_on: str | None = None
    reference: str | None = None
    seed: int | None = None

    def to_dict(self) -> dict[str, Any]:
        """The resolved table (for config.toml; no None values, which TOML cannot hold)."""
        out = {"label": self.label, "method": self.method, "targeted": self.targeted, "n": self.n,
               "runs": self.runs, "crafted_on": self.crafted_on, "reference": self.reference, "seed": self.seed,
               "settings": None if self.config is None else self.config.to_dict()}
        return _drop_none(out)


@dataclass
class AnnPlan:
    """One ``[[ann]]`` table: the SNN vs ANN comparison (:func:`harness.attacks.ann.ann_comparison`).

    Attributes:
        runs: ids of the runs whose SNN gets an ANN twin.
        snn_attack: label of the attack table whose examples transfer to the ANN and give the
            SNN's success at equal L0 (None: no SNN attack in the comparison).
        eps: L-infinity budgets of FGSM/BIM/PGD, in rate units or relative to the mean rate.
        eps_scale: "absolute" or "mean-rate".
        seed, code_seed: ANN weights/PGD start; Bernoulli coding of ANN examples for the SNN.
        epochs: ANN training epochs (None: the SNN spec's); n: first n test samples (None: all).
    """

    runs: list[str]
    snn_attack: str | None
    eps: list[float]
    eps_scale: str
    seed: int
    code_seed: int
    epochs: int | None
    n: int | None

    def to_dict(self) -> dict[str, Any]:
        return _drop_none(dict(vars(self)))


@dataclass
class Experiment:
    """A validated experiment file (``data`` absolute)."""

    name: str
    path: Path
    description: str
    seed: int
    budgets: list[int]
    profiles: list[str]
    data: Path
    study: str | None
    runs: list[RunPlan]
    attacks: list[AttackPlan] = field(default_factory=list)
    ann: list[AnnPlan] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """The resolved experiment, as written to config.toml (without versions)."""
        uses_data = any(r.needs_data for r in self.runs)
        return _drop_none({
            "name": self.name, "description": self.description, "source": str(self.path.resolve()),
            "seed": self.seed, "budgets": self.budgets, "profiles": self.profiles,
            "data": str(self.data) if uses_data else None, "study": self.study,
            "runs": [{"id": r.id, "model": r.model, "seed": r.seed, "epochs": r.epochs, "spec": r.spec}
                     for r in self.runs],
            "attacks": [a.to_dict() for a in self.attacks], "ann": [a.to_dict() for a in self.ann]})


def _drop_none(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _drop_none(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_drop_none(v) for v in value]
    return value


def merge(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """``base`` with ``overrides`` applied: tables merge key by key, any other value replaces."""
    out = copy.deepcopy(base)
    for key, value in overrides.items():
        out[key] = merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def _int(table: dict, key: str, default: int | None, where: str, minimum: int = 0) -> int | None:
    value = table.get(key, default)
    if value is None and default is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise ConfigError(f"{where}: '{key}' must be an integer >= {minimum}, got {value!r}")
    return value


def _str_list(table: dict, key: str, default: list[str], where: str) -> list[str]:
    value = table.get(key, default)
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{where}: '{key}' must be a list of strings, got {value!r}")
    return value


def _run_plan(raw: dict[str, Any], seed: int, where: str) -> RunPlan:
    check_unknown(raw, _RUN_KEYS, where)
    require_keys(raw, ["id", "model"], where)
    if not isinstance(raw["id"], str) or not raw["id"] or "/" in raw["id"] or raw["id"].startswith("."):
        raise ConfigError(f"{where}: 'id' must be a plain folder name, got {raw['id']!r}")
    overrides = raw.get("spec", {})
    if not isinstance(overrides, dict):
        raise ConfigError(f"{where}: 'spec' must be a table of model spec overrides")
    base = load_spec(raw["model"])
    spec = spec_from_dict(merge(base.to_dict(), overrides), f"{where} (model '{raw['model']}' with overrides)")
    epochs = _int(raw, "epochs", int(spec.training["epochs"]), where, minimum=1)
    return RunPlan(id=raw["id"], model=raw["model"], seed=_int(raw, "seed", seed, where), epochs=epochs,
                   spec=spec.to_dict())


def _attack_config(raw: dict[str, Any], seed: int, where: str) -> AttackConfig:
    settings = {k: v for k, v in raw.items() if k in _ATTACK_SETTINGS}
    settings.setdefault("seed", seed)
    try:
        return AttackConfig(**settings)
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from None
    except TypeError as exc:  # a value of the wrong type reaching a comparison
        raise ConfigError(f"{where}: invalid attack setting ({exc})") from None


def _attack_plan(raw: dict[str, Any], exp_seed: int, run_ids: list[str], earlier: list[AttackPlan],
                 where: str) -> AttackPlan:
    check_unknown(raw, _ATTACK_KEYS | _ATTACK_SETTINGS, where)
    require_keys(raw, ["method"], where)
    method, targeted = raw["method"], raw.get("targeted")
    if targeted is not None and targeted not in TARGET_MODES:
        raise ConfigError(f"{where}: targeted '{targeted}' unknown; available: {', '.join(TARGET_MODES)}")
    runs = _str_list(raw, "runs", run_ids, where)
    crafted_on = raw.get("crafted_on")
    for run_id in runs + ([crafted_on] if crafted_on is not None else []):
        if run_id not in run_ids:
            raise ConfigError(f"{where}: run '{run_id}' is not one of this experiment's runs ({', '.join(run_ids)})")
    label = raw.get("label", f"{method} {targeted or 'untargeted'}" + (f" from {crafted_on}" if crafted_on else ""))
    labels = {a.label: a for a in earlier}
    if label in labels:
        raise ConfigError(f"{where}: label '{label}' is used twice; give each [[attacks]] table its own 'label'")
    if method == "random":
        check_unknown(raw, {"method", "label", "runs", "reference", "seed"}, where)
        require_keys(raw, ["reference"], where)
        reference = labels.get(raw["reference"])
        if reference is None or not set(runs) <= set(reference.runs):
            raise ConfigError(f"{where}: reference '{raw['reference']}' must be the label of an earlier [[attacks]] "
                              f"table run on {', '.join(runs)} (known: {', '.join(labels) or 'none'})")
        return AttackPlan(label=label, method=method, config=None, targeted=None, n=None, runs=runs,
                          reference=raw["reference"], seed=_int(raw, "seed", None, where))
    return AttackPlan(label=label, method=method, config=_attack_config(raw, exp_seed, where), targeted=targeted,
                      n=_int(raw, "n", None, where, minimum=1), runs=runs, crafted_on=crafted_on)


def _ann_plan(raw: dict[str, Any], exp_seed: int, run_ids: list[str], attacks: list[AttackPlan],
              where: str) -> AnnPlan:
    check_unknown(raw, _ANN_KEYS, where)
    runs = _str_list(raw, "runs", run_ids, where)
    unknown = [r for r in runs if r not in run_ids]
    if unknown:
        raise ConfigError(f"{where}: run(s) {', '.join(unknown)} not among this experiment's runs ({', '.join(run_ids)})")
    label = raw.get("snn_attack")
    attack = next((a for a in attacks if a.label == label), None)
    if label is not None and (attack is None or not set(runs) <= set(attack.runs)):
        raise ConfigError(f"{where}: snn_attack '{label}' must be the label of an [[attacks]] table run on "
                          f"{', '.join(runs)}")
    eps = raw.get("eps", list(DEFAULT_EPS))
    if not isinstance(eps, list) or not eps or not all(isinstance(e, (int, float)) and e > 0 for e in eps):
        raise ConfigError(f"{where}: 'eps' must be a non-empty list of positive numbers, got {eps!r}")
    scale = raw.get("eps_scale", "absolute")
    if scale not in EPS_SCALES:
        raise ConfigError(f"{where}: eps_scale '{scale}' unknown; available: {', '.join(EPS_SCALES)}")
    return AnnPlan(runs=runs, snn_attack=label, eps=[float(e) for e in eps], eps_scale=scale,
                   seed=_int(raw, "seed", exp_seed, where), code_seed=_int(raw, "code_seed", exp_seed, where),
                   epochs=_int(raw, "epochs", None, where, minimum=1), n=_int(raw, "n", None, where, minimum=1))


def _check_data(exp: Experiment) -> None:
    if any(r.needs_data for r in exp.runs) and not exp.data.is_dir():
        raise DataError(f"{exp.path}: N-MNIST data folder {exp.data} not found; set 'data' in the file or "
                        "pass --data PATH")


def load_experiment(path: str | Path, data: str | Path | None = None) -> Experiment:
    """Read and validate an experiment file (a path, or a name in experiments/).

    Args:
        data: overrides the file's N-MNIST data folder (the CLI's --data).
    Raises:
        ConfigError: naming the file, the table and the key that is missing, unknown or invalid.
        DataError: an N-MNIST run whose data folder does not exist.
    """
    path = resolve_spec("experiments", path)
    raw = load_toml(path)
    where = str(path)
    check_unknown(raw, _EXPERIMENT_KEYS, where)
    require_keys(raw, ["name", "runs"], where)
    seed = _int(raw, "seed", 0, where)
    budgets = check_budgets(raw.get("budgets", DEFAULT_BUDGETS), f"{where} 'budgets'")
    profiles = _str_list(raw, "profiles", [], where)
    for profile in profiles:
        try:
            load_profile(profile)
        except ConfigError as exc:
            raise ConfigError(f"{where} 'profiles': {exc}") from None
    study = raw.get("study")
    if study is not None and study not in STUDIES:
        raise ConfigError(f"{where}: study '{study}' unknown; available: {', '.join(STUDIES)}")
    if not isinstance(raw["runs"], list) or not raw["runs"]:
        raise ConfigError(f"{where}: needs at least one [[runs]] table")
    runs = [_run_plan(r, seed, f"{where} [[runs]] #{i + 1}") for i, r in enumerate(raw["runs"])]
    run_ids = [r.id for r in runs]
    if len(set(run_ids)) != len(run_ids):
        raise ConfigError(f"{where}: run ids must be unique, got {', '.join(run_ids)}")
    attacks: list[AttackPlan] = []
    for i, table in enumerate(raw.get("attacks", [])):
        attacks.append(_attack_plan(table, seed, run_ids, attacks, f"{where} [[attacks]] #{i + 1}"))
    ann = [_ann_plan(table, seed, run_ids, attacks, f"{where} [[ann]] #{i + 1}")
           for i, table in enumerate(raw.get("ann", []))]
    data_path = Path(data) if data is not None else PROJECT_ROOT / raw.get("data", DEFAULT_DATA)
    exp = Experiment(name=raw["name"], path=path, description=raw.get("description", ""), seed=seed, budgets=budgets,
                     profiles=profiles, data=data_path.resolve(), study=study, runs=runs, attacks=attacks, ann=ann)
    _check_data(exp)
    return exp


# ---------------------------------------------------------------- running an experiment
STAGES = ("train", "attack", "replay", "summarise", "report")


class _Progress:
    """Stage lines ("[2/5] attack g2s-rsf untargeted on digits-mlp ...") on stdout."""

    def __init__(self, echo: Callable[[str], None]):
        self.echo = echo

    def stage(self, name: str, what: str) -> float:
        """Announce a step of stage ``name``; its start time (seconds since the epoch)."""
        self.echo(f"[{STAGES.index(name) + 1}/{len(STAGES)}] {name} {what} ...")
        return time.time()

    def done(self, started: float, output: Path, note: str = "") -> None:
        """Close the step: "kept" when ``output`` was not (re)written since ``started``."""
        kept = output.stat().st_mtime < started
        status = "kept: up to date" if kept else f"done in {time.time() - started:.0f} s"
        self.echo(f"      {status}{'; ' + note if note else ''}")


def _trained(run: RunDir, plan: RunPlan, data: Path | None) -> bool:
    """The run holds a model trained with exactly this spec, seed, epochs and data."""
    if not all(p.exists() for p in (run.card, run.checkpoint, run.network)):
        return False
    card = read_json(run.card)
    return (card.get("spec") == plan.spec and card.get("seed") == plan.seed and card.get("epochs") == plan.epochs
            and card.get("dataset", {}).get("path") == (None if data is None else str(data)))


def _data_path(plan: RunPlan, data: Path) -> Path | None:
    """The data folder a run reads (None for the embedded digits)."""
    return data if plan.needs_data else None


def train_stage(plan: RunPlan, run: RunDir, data: Path, progress: bool) -> None:
    """Train ``plan`` into ``run`` unless it is already trained with the same settings.

    The resolved spec is kept as ``RUN_DIR/spec.toml`` (what was trained, overrides included).
    """
    data_path = _data_path(plan, data)
    spec_file = run.root / "spec.toml"
    write_if_changed(spec_file, tomli_w.dumps(plan.spec).encode("utf-8"))
    if not _trained(run, plan, data_path):
        train_run(str(spec_file), run.root, data_path=data_path, seed=plan.seed, epochs=plan.epochs,
                  progress=progress)


def attack_stage(plan: AttackPlan, root: Path, run_id: str, ids: dict[str, dict[str, str]], progress: bool) -> Path:
    """Run one attack table on one run; the attack file (existing files are reused).

    Args:
        ids: run id -> {attack label -> attack id} of the tables already run (random
            baselines look their reference up here).
    """
    run_dir = root / run_id
    if plan.method == "random":
        return run_random_baseline(run_dir, ids[run_id][plan.reference], seed=plan.seed, progress=progress)
    if plan.crafted_on is not None:
        source = run_attack(root / plan.crafted_on, plan.config, plan.targeted, plan.n, progress=progress)
        return run_transfer(run_dir, source)
    return run_attack(run_dir, plan.config, plan.targeted, plan.n, progress=progress)


def replay_stage(run_dir: Path, profile: str, input_id: str, data: Path, progress: bool) -> Path:
    """Replay the clean test split (``input_id`` "clean") or an attack set; kept when up to date."""
    return replay_run(run_dir, profile, None if input_id == "clean" else input_id, data_path=data,
                      progress=progress)


def write_config(exp: Experiment, root: Path) -> None:
    """``ROOT/config.toml``: the resolved experiment, seeds and package versions (if changed)."""
    config = {**exp.to_dict(), "versions": package_versions()}
    write_if_changed(root / "config.toml", tomli_w.dumps(config).encode("utf-8"))


def _train_all(exp: Experiment, root: Path, say: _Progress, progress: bool) -> None:
    for plan in exp.runs:
        run = RunDir(root / plan.id)
        started = say.stage("train", f"{plan.id} ({plan.model}, seed {plan.seed}, {plan.epochs} epochs)")
        train_stage(plan, run, exp.data, progress)
        say.done(started, run.card, f"test accuracy {read_json(run.card)['test_accuracy']:.1%}")


def _attack_all(exp: Experiment, root: Path, say: _Progress, progress: bool) -> dict[str, dict[str, str]]:
    """Every attack table on its runs; run id -> {label -> attack id}, in the file's order."""
    ids: dict[str, dict[str, str]] = {plan.id: {} for plan in exp.runs}
    for plan in exp.attacks:
        for run_id in plan.runs:
            started = say.stage("attack", f"{plan.label} on {run_id}")
            path = attack_stage(plan, root, run_id, ids, progress)
            ids[run_id][plan.label] = path.stem
            stats = AttackRecord.load(path).stats(exp.budgets)
            say.done(started, path, f"success {pct(stats['success_rate'])} of {stats['n_correct_before']} "
                                    f"correct rows, median L0 {num(stats['median_l0'])}")
    return ids


def _ann_all(exp: Experiment, root: Path, ids: dict[str, dict[str, str]], say: _Progress,
             progress: bool) -> dict[str, list[Path]]:
    """Every [[ann]] table on its runs; run id -> its comparison files."""
    files: dict[str, list[Path]] = {plan.id: [] for plan in exp.runs}
    for plan in exp.ann:
        for run_id in plan.runs:
            started = say.stage("attack", f"ANN twin of {run_id}: FGSM/BIM/PGD and black-box transfer both ways")
            snn_attack = None if plan.snn_attack is None else ids[run_id][plan.snn_attack]
            path, result = ann_comparison(root / run_id, snn_attack, plan.eps, plan.eps_scale, plan.seed,
                                          plan.code_seed, plan.epochs, plan.n, progress=progress)
            files[run_id].append(path)
            clean = result["clean"]
            say.done(started, path, f"clean accuracy SNN {pct(clean['snn_accuracy'])}, ANN {pct(clean['ann_accuracy'])}")
    return files


def _replay_all(exp: Experiment, root: Path, ids: dict[str, dict[str, str]], say: _Progress,
                progress: bool) -> None:
    for profile in exp.profiles:
        for plan in exp.runs:
            for input_id in ["clean", *ids[plan.id].values()]:
                started = say.stage("replay", f"{input_id} of {plan.id} on {profile}")
                path = replay_stage(root / plan.id, profile, input_id, _data_path(plan, exp.data), progress)
                say.done(started, path)


def run_experiment(exp: Experiment, run_dir: str | Path | None = None, progress: bool = True,
                   echo: Callable[[str], None] = print) -> Path:
    """Run every stage of ``exp`` in ``run_dir`` (default runs/<name>); the report's path.

    Stages skip what exists for the same settings: a model with the same spec, seed, epochs and
    data; an attack file with the same settings on the same model (harness.attacks); a replay of
    unchanged inputs on the same network and profile (harness.device); results and report files
    whose content would not change. ``echo`` receives the stage lines.
    """
    root = Path(run_dir) if run_dir is not None else Path("runs") / exp.name
    say = _Progress(echo)
    write_config(exp, root)
    _train_all(exp, root, say, progress)
    ids = _attack_all(exp, root, say, progress)
    ann = _ann_all(exp, root, ids, say, progress)
    _replay_all(exp, root, ids, say, progress)
    runs = {}
    for plan in exp.runs:
        started = say.stage("summarise", f"{plan.id} -> results.json")
        art = load_run(root / plan.id, list(ids[plan.id].values()), exp.profiles, ann[plan.id])
        runs[plan.id] = (art, write_results(art, exp.budgets))
        say.done(started, art.run.results)
    started = say.stage("report", str(root))
    labels = Labels({attack_id: label for by_label in ids.values() for label, attack_id in by_label.items()})
    report = write_experiment_report(root, f"{exp.name}: robustness report", exp.description, runs, labels,
                                     exp.study, exp.to_dict(), progress=progress)
    say.done(started, report)
    return report
