"""The experiment file (``experiments/*.toml``): its schema, validation and resolved form.

Execution lives in :mod:`.plan` (the stage tasks) and :mod:`.executor` (running them).
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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..attacks.ann import DEFAULT_EPS, EPS_SCALES
from ..attacks.loop import AttackConfig
from ..attacks.methods.iterative import Iterative
from ..attacks.registry import ATTACKS, get
from ..attacks.targets import TARGET_MODES
from ..config import PROJECT_ROOT, check_unknown, load_toml, require_keys, resolve_spec
from ..device.profiles import Profile, load_profile
from ..errors import ConfigError, DataError
from ..models import load_spec, spec_from_dict
from ..evaluation.ensemble import load_ensemble
from ..evaluation.evaluate import DEFAULT_BUDGETS as EVALUATION_BUDGETS, check_budgets as check_flip_budgets
from ..evaluation.retiming import parse_retime_budgets
from ..report.studies import STUDIES
from ..results import DEFAULT_BUDGETS, check_budgets
from ..settings import POSITIVE, build, folder_name, toml_key
from .grid import expand_attack, expand_run, resolve_one_run, resolve_runs, seed_list

#: Where N-MNIST experiments read their data unless the file or --data says otherwise.
DEFAULT_DATA = "../shared/data/nmnist_small"

_EXPERIMENT_KEYS = {"name", "description", "seed", "seeds", "budgets", "profiles", "data", "study", "runs", "attacks", "ann",
                  "evaluations"}
_EVALUATION_KEYS = {"ensemble", "budgets", "n", "runs", "retime_budgets"}
_ANN_KEYS = {"runs", "snn_attack", "eps", "eps_scale", "seed", "code_seed", "epochs", "n"}
_RUN_KEYS = {"id", "model", "seed", "seeds", "epochs", "spec", "network", "steps", "dt_ms"}
#: Keys of a [[runs]] table that imports a netx network instead of training a model.
_IMPORT_KEYS = {"id", "network", "steps", "dt_ms"}
_ATTACK_KEYS = {"label", "targeted", "n", "runs", "crafted_on", "reference"}
#: Keys of an [[attacks]] table passed on to the attack: :class:`harness.attacks.AttackConfig` for the
#: iterative methods, the declared settings of every other registered attack that crafts examples.
_ATTACK_SETTINGS = set(AttackConfig.__dataclass_fields__).union(
    *(a.settings for a in ATTACKS.values() if a.needs != "record")) - {"targeted", "n"}


@dataclass
class RunPlan:
    """One model of an experiment, trained into ``RUN_DIR/<id>/``.

    Attributes:
        spec: the resolved model spec (the models/*.toml layout with the overrides applied).
        group: the ``[[runs]]`` id this run is a cell of, when its table held ``seeds`` or a
            list of models (:mod:`.grid`); None for a table that is one run.
    """

    id: str
    model: str
    seed: int
    epochs: int
    spec: dict[str, Any]
    group: str | None = None
    network: str | None = None
    steps: int | None = None
    dt_ms: float | None = None

    @property
    def needs_data(self) -> bool:
        """The model's data set is read from a folder (N-MNIST), not embedded (digits); an imported network
        is proven and attacked on the N-MNIST folder's test split."""
        return self.network is not None or self.spec["data"]["dataset"] != "digits"


@dataclass
class AttackPlan:
    """One ``[[attacks]]`` table: what to run on which runs.

    Attributes:
        label: display name, unique in the experiment (default: method and target mode).
        method: a registered attack that crafts examples (g2s-rsf, g2s, rsf, energy, sda,
            spikefool, sparse-rs, pointwise, ...) or "random" (flips at the L0 of the attack
            ``reference``, a label of an earlier table).
        config: an iterative attack's settings (None for the others).
        targeted: target mode or None (untargeted).
        n: attack the first ``n`` test samples (None: all).
        runs: ids of the runs whose model judges the examples.
        crafted_on: a run id whose model crafts the examples (transfer); None = each run's own.
        reference: the label of the attack whose per-row L0 the random baseline uses.
        seed: the random baseline's seed (None: the reference's).
        group: the label the file gave, when the table held lists of settings and this is
            one of its combinations (:mod:`.grid`); None otherwise.
        settings: a non-iterative attack's settings (checked against its declared ones), run
            through its :meth:`harness.attacks.interface.Attack.run`; None for the iterative ones.
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
    group: str | None = None
    settings: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        """The resolved table (for config.toml; no None values, which TOML cannot hold)."""
        out = {"label": self.label, "method": self.method, "targeted": self.targeted, "n": self.n,
               "runs": self.runs, "crafted_on": self.crafted_on, "reference": self.reference, "seed": self.seed,
               "group": self.group, "settings": self.settings if self.config is None else self.config.to_dict()}
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
class EvaluationPlan:
    """One ``[[evaluations]]`` table: robust accuracy over an ensemble (:func:`harness.evaluation.evaluate.evaluate`)
    on the experiment's profiles.

    Attributes:
        ensemble: a shipped ensemble name (quick, standard) or a TOML path, checked when the file is read.
        budgets: flip budgets (L0); n: the first ``n`` test rows (None: all); runs: the runs evaluated.
        retime_budgets: timing budgets D of the separate retiming curve (None: no retiming curve).
    """

    ensemble: str
    budgets: list[int]
    n: int | None
    runs: list[str]
    retime_budgets: list[int] | None = None

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
    hardware: dict[str, Profile] = field(default_factory=dict)
    evaluations: list[EvaluationPlan] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """The resolved experiment, as written to config.toml (without versions)."""
        uses_data = any(r.needs_data for r in self.runs)
        return _drop_none({
            "name": self.name, "description": self.description, "source": str(self.path.resolve()),
            "seed": self.seed, "budgets": self.budgets,
            "profiles": [p.name if p.path is None or p.path.parent.name == "hw_profiles" else str(p.path)
                         for p in self.hardware.values()],
            "data": str(self.data) if uses_data else None, "study": self.study,
            "runs": [{"id": r.id, "model": r.model, "seed": r.seed, "epochs": r.epochs, "spec": r.spec,
                      "group": r.group, "network": r.network, "steps": r.steps, "dt_ms": r.dt_ms} for r in self.runs],
            "attacks": [a.to_dict() for a in self.attacks], "ann": [a.to_dict() for a in self.ann],
            "evaluations": [e.to_dict() for e in self.evaluations]})


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


def _import_plan(raw: dict[str, Any], where: str, base: Path) -> RunPlan:
    """A ``[[runs]]`` table with ``network = "FILE.net"``: the netx file imported (``harness import``)
    instead of a model trained; the path is relative to the experiment file's folder."""
    check_unknown(raw, _IMPORT_KEYS, f"{where} (a run with 'network' imports it: no model, seed or training)")
    if not isinstance(raw["network"], str):
        raise ConfigError(f"{where}: 'network' must be the path of a netx file, got {raw['network']!r}")
    path = (base / raw["network"]).resolve()
    if not path.is_file():
        raise ConfigError(f"{where}: 'network' {path}: file not found")
    dt_ms = raw.get("dt_ms", 10.0)
    POSITIVE.check(dt_ms, f"{where}: 'dt_ms'")
    return RunPlan(id=raw["id"], model="imported", seed=0, epochs=0, spec={}, network=str(path),
                   steps=_int(raw, "steps", 30, where, minimum=1), dt_ms=float(dt_ms))


def _run_plan(raw: dict[str, Any], seed: int, where: str, group: str | None = None) -> RunPlan:
    """One run (a ``[[runs]]`` table with one model and one seed, see :func:`.grid.expand_run`)."""
    require_keys(raw, ["id", "model"], where)
    folder_name(raw["id"], f"{where}: 'id'")
    if not isinstance(raw["model"], str):
        raise ConfigError(f"{where}: 'model' must be a models/ name, a spec path or a list of them, "
                          f"got {raw['model']!r}")
    overrides = raw.get("spec", {})
    if not isinstance(overrides, dict):
        raise ConfigError(f"{where}: 'spec' must be a table of model spec overrides")
    base = load_spec(raw["model"])
    spec = spec_from_dict(merge(base.to_dict(), overrides), f"{where} (model '{raw['model']}' with overrides)")
    epochs = _int(raw, "epochs", int(spec.training["epochs"]), where, minimum=1)
    return RunPlan(id=raw["id"], model=raw["model"], seed=_int(raw, "seed", seed, where), epochs=epochs,
                   spec=spec.to_dict(), group=group)


def _runs(raw: dict[str, Any], seed: int, where: str) -> tuple[list[RunPlan], dict[str, list[str]]]:
    """Every run of the file (grids expanded) and ``[[runs]]`` id -> the ids of its runs."""
    if not isinstance(raw["runs"], list) or not raw["runs"]:
        raise ConfigError(f"{where}: needs at least one [[runs]] table")
    seeds = seed_list(raw["seeds"], where) if "seeds" in raw else None
    runs: list[RunPlan] = []
    groups: dict[str, list[str]] = {}
    for i, table in enumerate(raw["runs"]):
        table_where = f"{where} [[runs]] #{i + 1}"
        check_unknown(table, _RUN_KEYS, table_where)
        if "network" in table:  # an imported network: one run, no grid
            require_keys(table, ["id"], table_where)
            folder_name(table["id"], f"{table_where}: 'id'")
            runs.append(_import_plan(table, table_where, Path(where).parent))
            groups[table["id"]] = [table["id"]]
            continue
        cells = expand_run(table, seeds, table_where)
        runs += [_run_plan(c.raw, seed, table_where, c.group if c.suffix else None) for c in cells]
        if cells[0].group in groups:
            raise ConfigError(f"{table_where}: run ids must be unique; '{cells[0].group}' is used twice")
        groups[cells[0].group] = [c.raw["id"] for c in cells]
    run_ids = [r.id for r in runs]
    if len(set(run_ids)) != len(run_ids):
        raise ConfigError(f"{where}: run ids must be unique, got {', '.join(run_ids)}")
    return runs, groups


def _attack_config(raw: dict[str, Any], seed: int, where: str) -> AttackConfig | dict[str, Any]:
    """The table's attack settings for its registered method (:mod:`harness.attacks.registry`): an
    :class:`AttackConfig` for an iterative method, the checked settings of any other attack that
    crafts examples; a setting the method does not take is refused; an error names the file, the
    table and the key."""
    try:
        attack = get(raw["method"])
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from None
    if attack.needs == "record":
        raise ConfigError(f"{where}: method '{attack.name}' cannot be a table of an experiment file; use one of "
                          f"{', '.join(n for n, a in ATTACKS.items() if a.needs != 'record')} or random")
    settings = {k: v for k, v in raw.items() if k in _ATTACK_SETTINGS - {"method"}}
    with_run_keys = {**settings, **{k: raw[k] for k in ("targeted", "n") if k in raw}}
    try:
        attack.check(with_run_keys, toml_key)
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from None
    if "seed" in attack.settings:
        settings.setdefault("seed", seed)
    if not isinstance(attack, Iterative):
        if raw.get("crafted_on") is not None:
            raise ConfigError(f"{where}: 'crafted_on' (transfer) takes an iterative method, not '{attack.name}'")
        return settings
    return attack.config(settings, toml_key, where)


def _default_label(raw: dict[str, Any]) -> str:
    targeted, crafted_on = raw.get("targeted"), raw.get("crafted_on")
    mode = "" if isinstance(targeted, list) else f" {targeted or 'untargeted'}"  # a list: the suffix says
    return f"{raw['method']}{mode}" + (f" from {crafted_on}" if crafted_on else "")


def _attack_tables(raw: dict[str, Any], earlier: list[AttackPlan], where: str) -> list[tuple[dict[str, Any], str | None]]:
    """One table per combination of the table's lists (:func:`.grid.expand_attack`), each with its
    group label (None: not a grid). A random baseline whose ``reference`` is the label of a grid
    gets one table per combination of it, labelled alike."""
    check_unknown(raw, _ATTACK_KEYS | _ATTACK_SETTINGS, where)
    require_keys(raw, ["method"], where)
    if not isinstance(raw.get("label", ""), str):
        raise ConfigError(f"{where}: 'label' must be a string, got {raw['label']!r}")
    label = raw.get("label", _default_label(raw))
    variants = [a for a in earlier if a.group is not None and a.group == raw.get("reference")]
    if raw["method"] == "random" and variants:
        tables = [({**raw, "reference": a.label}, a.label[len(a.group):]) for a in variants]
    else:
        tables = [(raw, "")]
    out = []
    for table, suffix in tables:
        cells = expand_attack(table, label + suffix, where)
        out += [(c.raw, label if suffix or c.suffix else None) for c in cells]
    return out


def _attack_plan(raw: dict[str, Any], exp_seed: int, groups: dict[str, list[str]], earlier: list[AttackPlan],
                 where: str, group: str | None = None) -> AttackPlan:
    """One attack table with one value per setting (``label`` set by :func:`_attack_tables`)."""
    method, targeted = raw["method"], raw.get("targeted")
    if targeted is not None and targeted not in TARGET_MODES:
        raise ConfigError(f"{where}: targeted '{targeted}' unknown; available: {', '.join(TARGET_MODES)}")
    runs = resolve_runs(_str_list(raw, "runs", list(groups), where), groups, where, "run")
    crafted_on = raw.get("crafted_on")
    if crafted_on is not None:
        crafted_on = resolve_one_run(crafted_on, groups, where, "crafted_on")
    label = raw["label"]
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
                          reference=raw["reference"], seed=_int(raw, "seed", None, where), group=group)
    config = _attack_config(raw, exp_seed, where)
    settings = config if isinstance(config, dict) else None
    return AttackPlan(label=label, method=method, config=None if settings is not None else config, targeted=targeted,
                      n=_int(raw, "n", None, where, minimum=1), runs=runs, crafted_on=crafted_on, group=group,
                      settings=settings)


def _ann_plan(raw: dict[str, Any], exp_seed: int, groups: dict[str, list[str]], attacks: list[AttackPlan],
              where: str) -> AnnPlan:
    check_unknown(raw, _ANN_KEYS, where)
    runs = resolve_runs(_str_list(raw, "runs", list(groups), where), groups, where, "run")
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


def _evaluation_plan(raw: dict[str, Any], groups: dict[str, list[str]], where: str) -> EvaluationPlan:
    check_unknown(raw, _EVALUATION_KEYS, where)
    ensemble = raw.get("ensemble", "quick")
    if not isinstance(ensemble, str):
        raise ConfigError(f"{where}: 'ensemble' must be a name (quick, standard) or a .toml path, got {ensemble!r}")
    try:
        load_ensemble(ensemble)
    except ConfigError as exc:
        raise ConfigError(f"{where}: 'ensemble': {exc}") from None
    budgets = raw.get("budgets", list(EVALUATION_BUDGETS))
    if not isinstance(budgets, list):
        raise ConfigError(f"{where}: 'budgets' must be a list of integers >= 1, got {budgets!r}")
    retime = raw.get("retime_budgets")
    if retime is not None and (not isinstance(retime, list) or not retime):
        raise ConfigError(f"{where}: 'retime_budgets' must be a list of integers >= 1, got {retime!r}")
    return EvaluationPlan(ensemble=ensemble, budgets=check_flip_budgets(budgets, f"{where}: 'budgets'"),
                          n=_int(raw, "n", None, where, minimum=1),
                          runs=resolve_runs(_str_list(raw, "runs", list(groups), where), groups, where, "run"),
                          retime_budgets=None if retime is None else parse_retime_budgets(
                              ",".join(map(str, retime)), f"{where}: 'retime_budgets'"))


def _profiles(names: list[str], where: str) -> dict[str, Profile]:
    """Every listed profile loaded once (a name in hw_profiles/ or a path), by its ``name``: after
    loading a profile is known by that name alone, which must be unique in the experiment."""
    profiles = []
    for name in names:
        try:
            profiles.append(load_profile(name))
        except ConfigError as exc:
            raise ConfigError(f"{where} 'profiles': {exc}") from None
    seen = [p.name for p in profiles]
    if len(set(seen)) != len(seen):
        raise ConfigError(f"{where} 'profiles': two profiles share a name ({', '.join(seen)}); "
                          "replays are stored under device/<name>/")
    return {p.name: p for p in profiles}


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
    name = folder_name(raw["name"], f"{where}: 'name'")
    seed = _int(raw, "seed", 0, where)
    budgets = check_budgets(raw.get("budgets", DEFAULT_BUDGETS), f"{where} 'budgets'")
    hardware = _profiles(_str_list(raw, "profiles", [], where), where)
    study = raw.get("study")
    if study is not None and study not in STUDIES:
        raise ConfigError(f"{where}: study '{study}' unknown; available: {', '.join(STUDIES)}")
    runs, groups = _runs(raw, seed, where)
    attacks: list[AttackPlan] = []
    for i, table in enumerate(raw.get("attacks", [])):
        table_where = f"{where} [[attacks]] #{i + 1}"
        for cell, group in _attack_tables(table, attacks, table_where):
            attacks.append(_attack_plan(cell, seed, groups, attacks, table_where, group))
    ann = [_ann_plan(table, seed, groups, attacks, f"{where} [[ann]] #{i + 1}")
           for i, table in enumerate(raw.get("ann", []))]
    evaluations = [_evaluation_plan(table, groups, f"{where} [[evaluations]] #{i + 1}")
                   for i, table in enumerate(raw.get("evaluations", []))]
    data_path = Path(data) if data is not None else PROJECT_ROOT / raw.get("data", DEFAULT_DATA)
    exp = Experiment(name=name, path=path, description=raw.get("description", ""), seed=seed, budgets=budgets,
                     profiles=list(hardware), data=data_path.resolve(), study=study, runs=runs, attacks=attacks, ann=ann,
                     hardware=hardware, evaluations=evaluations)
    _check_data(exp)
    return exp
