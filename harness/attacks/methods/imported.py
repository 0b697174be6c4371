"""Imported: an adversarial set crafted outside the harness, judged by the run's model.

``harness attack --run R --import-set FILE.npz`` reads the keys ``spikes`` (N, *shape, T) binary,
``indices`` (N,) rows of the run's test split or ``labels`` (N,) when the set is not from the
split, optional ``targets`` (N,) (-1 = untargeted) and ``name`` (the file's id), and writes
``RUN_DIR/attacks/<name or imported-<digest>>.h5`` with ``method = "imported"``.
"""
from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from ...errors import ConfigError, DataError
from ...metrics import predict
from ...records import AttackRecord
from ...runs import open_run
from ...settings import folder_name
from ...store import digest_file
from ...train import output_counts
from ..interface import Attack, Job
from ..judge import check_spikes
from ..runner import _attrs, _cached_attack, _identity

KEYS = ("spikes", "indices", "labels", "targets", "name")


class Imported(Attack):
    name, summary, needs = "imported", "judge an adversarial set made elsewhere (--import-set FILE.npz)", "record"
    settings = frozenset({"import_set"})

    def run(self, job: Job, values: dict[str, Any]) -> Path:
        if not values.get("import_set"):
            raise ConfigError("--method imported needs --import-set FILE.npz")
        return import_set(job.run_dir, values["import_set"], job.batch_size, job.force, job.data_path)


def read_set(path: str | Path) -> dict[str, Any]:
    """The arrays of an ``.npz`` set (no pickled objects), each checked to be (N,) or named in a DataError."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"--import-set {path}: file not found")
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {key: npz[key] for key in npz.files}
    except ValueError as exc:  # an object array needs pickle, which is refused
        raise DataError(f"{path}: holds pickled objects or an unreadable array ({exc}); store plain arrays") from None
    except (OSError, zipfile.BadZipFile) as exc:
        raise DataError(f"{path}: not an .npz file ({exc})") from None
    unknown = sorted(set(arrays) - set(KEYS))
    if unknown:
        raise DataError(f"{path}: key '{unknown[0]}' is not one of {', '.join(KEYS)}")
    if "spikes" not in arrays:
        raise DataError(f"{path}: key 'spikes' missing (the adversarial inputs (N, ..., T))")
    if ("indices" in arrays) == ("labels" in arrays):
        raise DataError(f"{path}: key 'indices' or 'labels' missing: give exactly one (rows of the test split, "
                        "or labels when the set is not from it)")
    rows = len(arrays["spikes"]) if arrays["spikes"].ndim else 0
    for key in ("indices", "labels", "targets"):
        if key in arrays and (arrays[key].shape != (rows,) or arrays[key].dtype.kind not in "iu"):
            raise DataError(f"{path}: key '{key}' must be integers of shape ({rows},) like 'spikes', got "
                            f"{arrays[key].dtype} {arrays[key].shape}")
    if "name" in arrays:
        if arrays["name"].shape != () or arrays["name"].dtype.kind != "U":
            raise DataError(f"{path}: key 'name' must be one string")
        arrays["name"] = folder_name(str(arrays["name"]), f"{path}: key 'name'")
    return arrays


def import_set(run_dir: str | Path, source: str | Path, batch_size: int = 256, force: bool = False,
               data_path=None) -> Path:
    """Judge the set in ``source`` (:func:`read_set`) on the run's model; write and return its record.

    With ``indices`` the clean rows are the run's test split (success counts rows classified
    correctly before, L0 = flips against them); with ``labels`` only, the clean rows are unknown
    (L0 = -1, every row counts, see :meth:`AttackRecord.from_arrays`).
    """
    source = Path(source)
    arrays = read_set(source)
    run = open_run(run_dir)
    net = run.net
    spikes = check_spikes(net, arrays["spikes"], f"{source}: key 'spikes'")
    sha = digest_file(source)
    path = run.attack_path(arrays.get("name", f"imported-{sha[:12]}"))
    ident = _identity(run, source_sha256=sha)

    def compute() -> None:
        clean = pred_clean = indices = None
        if "indices" in arrays:
            test = run.test(data_path=data_path)
            indices = arrays["indices"].astype(np.int64)
            if indices.size and (indices.min() < 0 or indices.max() >= len(test.labels)):
                raise DataError(f"{source}: key 'indices' holds rows outside the test split (0..{len(test.labels) - 1})")
            clean, labels = test.spikes[indices], test.labels[indices]
            pred_clean = predict(output_counts(net, clean, batch_size))
        else:
            labels = arrays["labels"]
        if labels.size and (labels.min() < 0 or labels.max() >= net.spec.n_classes):
            raise DataError(f"{source}: key 'labels' holds classes outside 0..{net.spec.n_classes - 1}")
        targets = arrays.get("targets")
        if targets is not None and targets.size and (targets.min() < -1 or targets.max() >= net.spec.n_classes):
            raise DataError(f"{source}: key 'targets' holds classes outside -1..{net.spec.n_classes - 1}")
        record = AttackRecord.from_arrays(spikes, labels, predict(output_counts(net, spikes, batch_size)),
                                          clean=clean, pred_clean=pred_clean, targets=targets, sample_index=indices,
                                          attrs={"method": "imported"})
        params = {"import_set": str(source.resolve()), "clean_known": clean is not None}
        _attrs(record, path.stem, params, run, run.card.get("dataset", {}), ident, targeted="",
               crafted_on=f"imported from {source.resolve()}", method="imported").save(path)

    _cached_attack(path, ident, compute, force)
    return path
