"""``RUN_DIR/results.json``: the machine-readable summary of one run directory.

Built from the run's artifacts (docs/artifacts.md): the model card, ``attacks/<id>.h5`` and
``device/<profile>/<id>.h5``; the clean comparison with SLAYER re-runs the run's model on its
test split (:func:`harness.stages.measure.offline_outputs`). The fields are the typed records
of :mod:`harness.results_model` (their one definition, which also generates
``harness/schemas/results.schema.json``); their meanings and units are documented in
docs/results.md, and every file is checked against the schema before writing.

Counting rules (../shared/notes/attack-spec.md, "The attack loop"): every rate is over the
rows classified correctly before the attack (offline: by SLAYER; on a device: by that device
on the clean input), a tie or silent output is no prediction, L0 statistics are over the
successful rows, and an undefined rate (empty set) is null. No timing goes into results.json,
so re-summarising the same artifacts gives the same file.
"""
from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

import numpy as np

from .evaluation.record import Evaluation, evaluations_of, load_evaluation
from .records import AttackRecord, is_success
from .errors import ConfigError
from .metrics import success_by_budget
from .results_model import (CONFIDENCE, SCHEMA_VERSION, AnnComparison, Attack, BudgetCurve, Clean, CleanDevice,
                            CleanOffline, Dataset, DeviceStats, EnergyAttack, EvaluationFlag, Hardware, MedianCI, Model,
                            OfflineStats, Rate, Results, RetimingCurve, RobustVerdict, Robustness,
                            load_schema, validate_results)
from .runs import Replay, RunArtifacts, open_run
from .stages.hardware import hardware_entries, replay_profile
from .stages.replay import energy_summary
from .stages.measure import OfflineOutputs, attack_measurements, clean_measurements, offline_outputs, raster_exact
from .stats import BOOTSTRAP_RESAMPLES, bootstrap_median
from .store import identity, jsonable, write_json, write_if_changed
from .versions import package_versions

__all__ = ["CSV_COLUMNS", "DEFAULT_BUDGETS", "RESULTS_SCHEMA_VERSION", "Replay", "RunArtifacts",
           "attack_device_entry", "attack_entry", "build_results", "check_budgets", "csv_text", "load_run",
           "load_schema", "long_rows", "median_ci", "rate_of", "validate_results", "write_results"]

RESULTS_SCHEMA_VERSION = SCHEMA_VERSION
#: Flip budgets of ``success_by_budget`` when the experiment gives none.
DEFAULT_BUDGETS = (10, 20, 50, 100, 200, 500, 1000, 2000)
#: Fields of :func:`harness.stages.measure.attack_measurements` kept per profile (renamed).
_DEVICE_FIELDS = {"adversarial_accuracy": "accuracy", "clean_accuracy": "clean_accuracy",
                  "n_correct_clean": "n_correct_clean", "success_rate": "success_rate",
                  "transfer_rate": "transfer_rate", "activity_change": "activity_change",
                  "energy_change": "energy_change"}


#: Seed of every bootstrap interval in results.json (the same values give the same interval).
BOOTSTRAP_SEED = 0


def rate_of(flags: np.ndarray, mask: np.ndarray | None = None) -> Rate:
    """The rate of boolean ``flags`` (R,) over the rows of ``mask`` (R,) (all rows when None), with
    its counts and Wilson interval (:meth:`Rate.of`)."""
    flags = np.asarray(flags, dtype=bool)
    mask = np.ones(flags.shape, dtype=bool) if mask is None else np.asarray(mask, dtype=bool)
    return Rate.of(int((flags & mask).sum()), int(mask.sum()))


def rates_by(keys: np.ndarray, flags: np.ndarray, mask: np.ndarray) -> dict[str, Rate]:
    """Per value of ``keys`` (R,) ints among the rows of ``mask``: the rate of ``flags`` over those rows.

    Keys are decimal strings in ascending order (e.g. true class -> success over its correct rows).
    """
    keys, mask = np.asarray(keys), np.asarray(mask, dtype=bool)
    return {str(int(key)): rate_of(flags, mask & (keys == key)) for key in np.unique(keys[mask])}


def median_ci(values: np.ndarray) -> MedianCI:
    """Median of ``values`` (flips) with its bootstrap 95% interval (seed :data:`BOOTSTRAP_SEED`,
    :data:`harness.stats.BOOTSTRAP_RESAMPLES` resamples)."""
    values = np.asarray(values, dtype=np.float64)
    low, high = bootstrap_median(values, seed=BOOTSTRAP_SEED, confidence=CONFIDENCE, resamples=BOOTSTRAP_RESAMPLES)
    defined = len(values) > 0
    return MedianCI(value=float(np.median(values)) if defined else None, n=len(values),
                    low=low if defined else None, high=high if defined else None,
                    resamples=BOOTSTRAP_RESAMPLES, seed=BOOTSTRAP_SEED)


def load_run(run_dir: str | Path, attack_ids: list[str] | None = None, profiles: list[str] | None = None,
             ann: list[str | Path] | None = None) -> RunArtifacts:
    """A run directory's card, attacks, replays and ANN comparisons (:meth:`harness.runs.Run.artifacts`)."""
    return open_run(run_dir).artifacts(attack_ids, profiles, ann)
def check_budgets(budgets, where: str) -> list[int]:
    """The budgets sorted and de-duplicated; ConfigError naming ``where`` unless positive ints."""
    budgets = list(budgets)
    if not budgets or not all(isinstance(b, (int, np.integer)) and not isinstance(b, bool) and b > 0 for b in budgets):
        raise ConfigError(f"{where}: budgets must be a non-empty list of positive integers (flips), got {budgets!r}")
    return sorted({int(b) for b in budgets})


def _model_entry(card: dict[str, Any]) -> Model:
    spec = card["spec"]
    return Model(name=card["model"], T=int(card["steps"]), train_accuracy=card["train_accuracy"],
                 test_accuracy=card["test_accuracy"], loss=spec["training"]["loss"],
                 surrogate=spec["surrogate"]["kind"], epochs=int(card.get("epochs", 0)),
                 **({"imported": True} if card.get("kind") == "imported" else {}), spec_digest=identity(spec=spec))


def _clean_entry(art: RunArtifacts) -> Clean:
    """SLAYER on the clean test split (accuracy overall and per true class) and, per profile, the
    device on the same inputs vs SLAYER."""
    test = art.run.test()
    offline = offline_outputs(art.run.net, test.spikes)
    right = offline.predictions == test.labels
    return Clean(offline=CleanOffline(accuracy=art.card["test_accuracy"], accuracy_ci=rate_of(right),
                                      accuracy_by_class=rates_by(test.labels, right, np.ones(len(right), bool))),
                 device={profile: _clean_device_entry(replays["clean"], offline, test.labels)
                         for profile, replays in art.device.items()})


def _clean_device_entry(replay: Replay, offline: OfflineOutputs, labels: np.ndarray) -> CleanDevice:
    """The clean test split on one profile (:func:`~harness.stages.measure.clean_measurements`), with intervals."""
    device = replay.arrays
    measured = clean_measurements(device, offline, labels)
    pred = device["predictions"]
    exact = raster_exact(device["output_rasters"], offline.rasters) if len(pred) else np.zeros(0, bool)
    return CleanDevice(accuracy=measured["accuracy"], agreement=measured["agreement"],
                       raster_exact=measured["raster_exact"], n_samples=measured["n_samples"],
                       accuracy_ci=rate_of(pred == labels), agreement_ci=rate_of(pred == offline.predictions),
                       raster_exact_ci=rate_of(exact), sample_mode=replay.attrs.get("sample_mode"))


def attack_device_entry(record: AttackRecord, replay: Replay, budgets) -> DeviceStats:
    """On-device figures of one attack on one profile (:func:`~harness.stages.measure.attack_measurements`).

    Adds ``success_by_budget``: device successes with L0 <= budget over the rows the device
    classified correctly on their clean input (the denominator of ``success_rate``).
    """
    device = replay.arrays
    measured = attack_measurements({name: getattr(record, name) for name in AttackRecord.array_names()}, device)
    correct = device["clean/predictions"] == record.labels
    success = is_success(device["predictions"], record.labels, record.targets) & correct
    return DeviceStats(**{new: measured[old] for old, new in _DEVICE_FIELDS.items()},
                       success_by_budget=success_by_budget(record.l0, success, budgets, mask=correct),
                       accuracy_ci=rate_of(device["predictions"] == record.labels),
                       clean_accuracy_ci=rate_of(correct), success_rate_ci=rate_of(success, correct),
                       transfer_rate_ci=rate_of(success, record.success.astype(bool) & correct),
                       success_by_budget_ci=_budget_rates(record.l0, success, budgets, correct),
                       sample_mode=replay.attrs.get("sample_mode"))


def _budget_rates(l0: np.ndarray, success: np.ndarray, budgets, mask: np.ndarray) -> dict[str, Rate]:
    """Budget (flips) -> share of the ``mask`` rows that succeeded with L0 <= budget (as
    :func:`harness.metrics.success_by_budget`, with counts and intervals)."""
    return {str(int(b)): rate_of(success & (l0 <= b), mask) for b in budgets}


def _crafted_elsewhere(record: AttackRecord) -> str | None:
    """The source model of a transfer set (None when crafted on the judging model)."""
    crafted, judged = record.attrs.get("crafted_on"), record.attrs.get("judged_on")
    return None if not crafted or crafted == judged else str(crafted)


#: Failure statistics of :meth:`AttackRecord.stats` written as null when undefined (not tracked, no
#: gradient, no failed row) rather than left out.
_NULLABLE_FAILURE_STATS = ("stall_window", "stalled_rows", "stalled_share", "zero_grad_share")


def _offline_entry(record: AttackRecord, stats: dict[str, Any], budgets) -> OfflineStats:
    """An attack's offline figures from :meth:`AttackRecord.stats`, with counts and intervals.

    Rates are over the rows classified correctly before the attack; stall and zero-gradient
    shares over the failed ones among them; the median L0 interval over the successful ones.
    """
    ok = record.correct_before.astype(bool)
    won = record.success.astype(bool) & ok
    failed = ok & ~won
    measured = won & (record.l0 >= 0)  # L0 -1: not available (an imported set without clean rows)
    tracked, has_grad = record.stalled is not None, bool((record.zero_grad_iterations >= 0).any())
    undefined = frozenset(name for name in _NULLABLE_FAILURE_STATS if stats[name] is None)
    return OfflineStats(nulls=undefined,
        success_rate=stats["success_rate"], mean_l0=stats["mean_l0"], median_l0=stats["median_l0"],
        median_l0_before_reduction=stats["median_l0_before_reduction"], median_flip_rate=stats["median_flip_rate"],
        mean_iterations=stats["mean_iterations"], rsf_iterations=stats["rsf_iterations"],
        zero_grad_iterations=stats["zero_grad_iterations"], success_by_budget=stats["success_by_budget"],
        success_rate_ci=rate_of(won, ok), median_l0_ci=median_ci(record.l0[measured]),
        success_by_budget_ci=_budget_rates(record.l0, measured, budgets, ok),
        success_by_class=rates_by(record.labels, won, ok),
        success_by_target=rates_by(record.targets, won, ok & (record.targets >= 0)) if record.targeted else None,
        n_failed=stats["n_failed"], stall_window=stats["stall_window"], stalled_rows=stats["stalled_rows"],
        stalled_share=stats["stalled_share"],
        stalled_share_ci=rate_of(record.stalled, failed) if tracked else None,
        zero_grad_share=stats["zero_grad_share"],
        zero_grad_share_ci=rate_of(record.zero_grad_iterations > 0, failed) if has_grad else None,
        budget_curve=BudgetCurve.build(stats["budget_curve"], f"attack {record.attrs.get('attack_id')} budget_curve"))


def attack_entry(art: RunArtifacts, attack_id: str, budgets) -> Attack:
    """One element of results.json's ``attacks`` list."""
    record = art.attacks[attack_id]
    stats = record.stats(budgets)
    mode = record.attrs.get("targeted") or None
    return Attack(
        id=attack_id, method=record.attrs["method"], targeted=mode is not None, target_mode=mode,
        crafted_on=_crafted_elsewhere(record), parameters=record.attrs.get("params", {}),
        n_attacked=len(record), n_correct_before=stats["n_correct_before"],
        offline=_offline_entry(record, stats, budgets),
        device={profile: attack_device_entry(record, replays[attack_id], budgets)
                for profile, replays in art.device.items() if attack_id in replays},
        **({"energy": _energy_entry(art, attack_id)} if record.is_energy else {}))


def _energy_entry(art: RunArtifacts, attack_id: str) -> EnergyAttack:
    """An energy attack's offline activity and, on every replayed profile with a chip, the device's figures."""
    record = art.attacks[attack_id]
    profiles = {name: replay_profile(replays[attack_id]) for name, replays in art.device.items() if attack_id in replays}
    device = {name: energy_summary(art.run.root, profile, attack_id)
              for name, profile in profiles.items() if profile is not None and profile.chip is not None}
    stats = record.energy_stats()
    return EnergyAttack.build(jsonable({**stats, "activity_by_budget": {str(b): v for b, v in
                                                                       stats["activity_by_budget"].items()},
                                        "device": device}), f"{attack_id} energy")


def _ann_entry(name: str, result: dict[str, Any]) -> AnnComparison:
    """An SNN vs ANN comparison file's content without its timing (``seconds``)."""
    return AnnComparison.build({"comparison": name, **{k: v for k, v in result.items() if k != "seconds"}},
                               f"ann/{name}.json")


def build_results(art: RunArtifacts, budgets=DEFAULT_BUDGETS, evaluation: str | None = None) -> dict[str, Any]:
    """The results.json content of a run (JSON-ready: NaN as None), not yet validated.

    Built as :class:`~harness.results_model.Results`; parse the dict back with
    :meth:`Results.from_dict <harness.results_model.Results.from_dict>` for typed access.
    ``evaluation`` names the headline evaluation (default: the newest, :func:`robustness_entry`).
    """
    budgets = check_budgets(budgets, "budgets")
    card = art.card
    results = Results(
        schema_version=RESULTS_SCHEMA_VERSION, run=art.name, seed=int(card["seed"]), versions=package_versions(),
        dataset=Dataset.build(card["dataset"], f"{art.run.card_file} dataset"), model=_model_entry(card), budgets=budgets,
        clean=_clean_entry(art),
        attacks=[attack_entry(art, attack_id, budgets) for attack_id in art.attacks],
        ann=[_ann_entry(name, result) for name, result in art.ann.items()], **_hardware(art),
        **_robustness(art.run.root, evaluation))
    return jsonable(results.to_dict())


def headline_evaluation(run_root: str | Path, evaluation: str | None = None) -> Path | None:
    """The headline evaluation file: ``evaluations/<evaluation>.h5``, else the newest one, else None."""
    if evaluation is None:
        files = evaluations_of(run_root)
        return files[-1] if files else None
    path = Path(run_root) / "evaluations" / f"{evaluation}.h5"
    if Path(evaluation).name != evaluation or not path.exists():
        names = ", ".join(p.stem for p in evaluations_of(run_root)) or "none (harness evaluate makes one)"
        raise ConfigError(f"--evaluation {evaluation}: no such evaluation in {run_root}; available: {names}")
    return path


def robustness_entry(evaluation: Evaluation) -> Robustness:
    """results.json's ``robustness`` block of one evaluation (docs/evaluation.md, "JSON fields")."""
    verdicts = {}
    for name in evaluation.verdicts:
        curve = {b: Rate.of(r["k"], r["n"]) for b, r in evaluation.curve(name).items()}
        verdicts[name] = RobustVerdict(robust_accuracy={b: r.value for b, r in curve.items()}, robust_accuracy_ci=curve,
                                       broken_first_by=evaluation.broken_first_by(name))
    a = evaluation.attrs
    offline = verdicts.pop(OFFLINE)
    retiming = RetimingCurve(budgets=evaluation.retime_budgets, verdicts={
        name: {d: Rate.of(r["k"], r["n"]) for d, r in evaluation.retime_curve(name).items()}
        for name in evaluation.verdicts}) if evaluation.retime_budgets else None
    return Robustness(evaluation=a["evaluation_id"], n=int(a["n"]), budgets=evaluation.budgets,
                      ensemble=evaluation.labels, flags=[EvaluationFlag.build(f) for f in a.get("flags", [])],
                      offline=offline, retiming=retiming, extra={k: v.to_dict() for k, v in verdicts.items()})


def _robustness(run_root: Path, evaluation: str | None) -> dict[str, Any]:
    """``{"robustness": ...}`` from the headline evaluation (refused when its curve rises), else {}."""
    path = headline_evaluation(run_root, evaluation)
    return {"robustness": robustness_entry(load_evaluation(path))} if path else {}


def _hardware(art: RunArtifacts) -> dict[str, Any]:
    """``{"hardware": ...}`` for the replayed profiles that have a chip (:mod:`harness.stages.hardware`), else {}."""
    entries = hardware_entries(art)
    return {"hardware": {p: Hardware.build(jsonable(e), f"{art.run.root} hardware {p}") for p, e in entries.items()}} \
        if entries else {}


def write_results(art: RunArtifacts, budgets=DEFAULT_BUDGETS, evaluation: str | None = None) -> dict[str, Any]:
    """Build, validate and write ``RUN_DIR/results.json`` and ``RUN_DIR/results.csv`` (its long
    form, :func:`long_rows`), each atomically and left untouched when unchanged; the dict."""
    results = build_results(art, budgets, evaluation)
    validate_results(results, art.run.results)
    write_json(art.run.results, results, if_changed=True)
    write_if_changed(art.run.results.with_suffix(".csv"),
                     csv_text(long_rows(Results.build(results, str(art.run.results)), art.name)).encode("utf-8"))
    return results


# ---------------------------------------------------------------- results.csv (long format)
#: Columns of results.csv: one row per run x attack x profile x metric.
CSV_COLUMNS = ("run", "attack", "profile", "metric", "value", "k", "n", "low", "high")
#: ``profile`` of offline figures (SLAYER) in the long format.
OFFLINE = "offline"


def long_rows(results: Results, run: str | None = None) -> list[dict[str, Any]]:
    """results.json as rows of :data:`CSV_COLUMNS` (``run`` defaults to the file's own ``run``).

    ``attack`` is empty for the clean figures; ``profile`` is ``offline`` or a device profile.
    A rate gives value, k, n and its Wilson bounds; a median L0 its successful rows as n and
    the bootstrap bounds; any other number (mean L0, ratios, totals) only its value. Maps give
    one row per key, ``metric:key`` (``success_by_budget:100``, ``success_by_class:3``). Rates
    come from their ``*_ci`` records where the file has them, else value only.
    """
    run = results.run if run is None else run
    rows = _record_rows(results.clean.offline, run, "", OFFLINE)
    for profile, clean in results.clean.device.items():
        rows += _record_rows(clean, run, "", profile)
    for attack in results.attacks:
        rows += _record_rows(attack.offline, run, attack.id, OFFLINE)
        for profile, device in attack.device.items():
            rows += _record_rows(device, run, attack.id, profile)
    if results.robustness is not None:
        for profile, verdict in results.robustness.verdicts().items():
            rows += _record_rows(verdict, run, f"ensemble:{results.robustness.evaluation}", profile)
    return rows


def _record_rows(record, run: str, attack: str, profile: str) -> list[dict[str, Any]]:
    """The long rows of one stats record: its numbers, rates and maps of rates, in field order.

    A number with an interval (``x`` beside ``x_ci``) gives one row, from the interval record,
    where the number stands.
    """
    values = record.to_dict()
    rows = []
    for name, value in values.items():
        if name.endswith("_ci") and name[:-3] in values:
            continue
        source = values.get(f"{name}_ci", value)
        metric = name[:-3] if name.endswith("_ci") else name
        rows += [{"run": run, "attack": attack, "profile": profile, "metric": key, **cells}
                 for key, cells in _cells(metric, source)]
    return rows


def _cells(metric: str, value) -> list[tuple[str, dict[str, Any]]]:
    """(metric, {value, k, n, low, high}) for a JSON value: a number, a rate, a median or a map of them.

    Undefined numbers (null: not tracked, empty set) and descriptive objects (budget_curve) give
    no row; a rate over an empty set does (k = n = 0).
    """
    if value is None or isinstance(value, bool):
        return []
    if isinstance(value, (int, float)):
        return [(metric, {"value": value})]
    if isinstance(value, dict) and "value" in value:
        return [(metric, {k: value.get(k) for k in ("value", "k", "n", "low", "high")})]
    if isinstance(value, dict) and metric.startswith(("success_by", "accuracy_by", "robust_accuracy")):
        return [(f"{metric}:{key}", cells) for key, item in value.items() for _, cells in _cells(metric, item)]
    return []


def csv_text(rows: list[dict[str, Any]]) -> str:
    """Rows of :data:`CSV_COLUMNS` as CSV (header first; null as an empty cell; floats in full precision)."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, CSV_COLUMNS, lineterminator="\n", extrasaction="raise")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: "" if row.get(k) is None else repr(row[k]) if isinstance(row[k], float) else row[k]
                         for k in CSV_COLUMNS})
    return buffer.getvalue()
