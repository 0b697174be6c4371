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

from pathlib import Path
from typing import Any

import numpy as np

from .records import AttackRecord, is_success
from .errors import ConfigError
from .metrics import success_by_budget
from .results_model import (SCHEMA_VERSION, AnnComparison, Attack, Clean, CleanDevice, CleanOffline, Dataset,
                            DeviceStats, Model, OfflineStats, Results, load_schema, validate_results)
from .runs import Replay, RunArtifacts, open_run
from .stages.measure import attack_measurements, clean_measurements, offline_outputs
from .store import jsonable, write_json
from .versions import package_versions

__all__ = ["DEFAULT_BUDGETS", "RESULTS_SCHEMA_VERSION", "Replay", "RunArtifacts", "attack_device_entry",
           "attack_entry", "build_results", "check_budgets", "load_run", "load_schema", "validate_results",
           "write_results"]

RESULTS_SCHEMA_VERSION = SCHEMA_VERSION
#: Flip budgets of ``success_by_budget`` when the experiment gives none.
DEFAULT_BUDGETS = (10, 20, 50, 100, 200, 500, 1000, 2000)
#: Fields of :func:`harness.stages.measure.attack_measurements` kept per profile (renamed).
_DEVICE_FIELDS = {"adversarial_accuracy": "accuracy", "clean_accuracy": "clean_accuracy",
                  "n_correct_clean": "n_correct_clean", "success_rate": "success_rate",
                  "transfer_rate": "transfer_rate", "activity_change": "activity_change",
                  "energy_change": "energy_change"}


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
                 imported=card.get("kind") == "imported")


def _clean_entries(art: RunArtifacts) -> dict[str, CleanDevice]:
    """Per profile: the clean test split on the device vs SLAYER on the same inputs."""
    if not art.device:
        return {}
    net, test = art.run.net, art.run.test()
    offline = offline_outputs(net, test.spikes)
    out = {}
    for profile, replays in art.device.items():
        measured = clean_measurements(replays["clean"].arrays, offline, test.labels)
        out[profile] = CleanDevice(accuracy=measured["accuracy"], agreement=measured["agreement"],
                                   raster_exact=measured["raster_exact"], n_samples=measured["n_samples"])
    return out


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
                       success_by_budget=success_by_budget(record.l0, success, budgets, mask=correct))


def _crafted_elsewhere(record: AttackRecord) -> str | None:
    """The source model of a transfer set (None when crafted on the judging model)."""
    crafted, judged = record.attrs.get("crafted_on"), record.attrs.get("judged_on")
    return None if not crafted or crafted == judged else str(crafted)


def _offline_entry(stats: dict[str, Any]) -> OfflineStats:
    """An attack's offline figures from :meth:`AttackRecord.stats`."""
    return OfflineStats(
        success_rate=stats["success_rate"], mean_l0=stats["mean_l0"], median_l0=stats["median_l0"],
        median_l0_before_reduction=stats["median_l0_before_reduction"], median_flip_rate=stats["median_flip_rate"],
        mean_iterations=stats["mean_iterations"], rsf_iterations=stats["rsf_iterations"],
        zero_grad_iterations=stats["zero_grad_iterations"], success_by_budget=stats["success_by_budget"])


def attack_entry(art: RunArtifacts, attack_id: str, budgets) -> Attack:
    """One element of results.json's ``attacks`` list."""
    record = art.attacks[attack_id]
    stats = record.stats(budgets)
    mode = record.attrs.get("targeted") or None
    return Attack(
        id=attack_id, method=record.attrs["method"], targeted=mode is not None, target_mode=mode,
        crafted_on=_crafted_elsewhere(record), parameters=record.attrs.get("params", {}),
        n_attacked=len(record), n_correct_before=stats["n_correct_before"], offline=_offline_entry(stats),
        device={profile: attack_device_entry(record, replays[attack_id], budgets)
                for profile, replays in art.device.items() if attack_id in replays})


def _ann_entry(name: str, result: dict[str, Any]) -> AnnComparison:
    """An SNN vs ANN comparison file's content without its timing (``seconds``)."""
    return AnnComparison.build({"comparison": name, **{k: v for k, v in result.items() if k != "seconds"}},
                               f"ann/{name}.json")


def build_results(art: RunArtifacts, budgets=DEFAULT_BUDGETS) -> dict[str, Any]:
    """The results.json content of a run (JSON-ready: NaN as None), not yet validated.

    Built as :class:`~harness.results_model.Results`; parse the dict back with
    :meth:`Results.from_dict <harness.results_model.Results.from_dict>` for typed access.
    """
    budgets = check_budgets(budgets, "budgets")
    card = art.card
    results = Results(
        schema_version=RESULTS_SCHEMA_VERSION, run=art.name, seed=int(card["seed"]), versions=package_versions(),
        dataset=Dataset.build(card["dataset"], f"{art.run.card_file} dataset"), model=_model_entry(card), budgets=budgets,
        clean=Clean(offline=CleanOffline(accuracy=card["test_accuracy"]), device=_clean_entries(art)),
        attacks=[attack_entry(art, attack_id, budgets) for attack_id in art.attacks],
        ann=[_ann_entry(name, result) for name, result in art.ann.items()])
    return jsonable(results.to_dict())


def write_results(art: RunArtifacts, budgets=DEFAULT_BUDGETS) -> dict[str, Any]:
    """Build, validate and write ``RUN_DIR/results.json`` (left untouched when unchanged); the dict."""
    results = build_results(art, budgets)
    validate_results(results, art.run.results)
    write_json(art.run.results, results, if_changed=True)
    return results
