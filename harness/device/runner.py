"""The replay stage: ``harness replay`` on a run directory or on stand-alone files.

- :func:`replay_run`: the run's clean test split, or one attack set, on a hardware profile,
  written to ``RUN_DIR/device/<profile>/<id>.h5`` (docs/artifacts.md). An attack's file also
  holds the replay of the attack's own clean rows (group ``clean/``), so on-device success
  and transfer need nothing else. An existing output made from the same network, profile and
  inputs is kept, not recomputed.
- :func:`replay_file`: any netx network on spikes from a .npy or .h5 file (the form for
  hardware-in-the-loop scripts), written to an .h5 file that documents its own layout.
"""
from __future__ import annotations

import hashlib
import json
import zlib
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from ..errors import DataError, HarnessError
from ..store import RunDir, check_schema, read_h5, read_json, write_h5
from .backend import DeviceOutput, replay
from .profiles import Profile, load_profile

KIND = "device"
LAYOUT = ("output_rasters (R, K, T) uint8: output spikes, channels in SLAYER's order, step t = SLAYER's "
          "output step t; output_counts (R, K) int64; predictions (R,) int64, -1 = tie or silence; "
          "layer_counts (R, L) int64 spikes per layer (names in attr layer_names); input_spikes, synops, "
          "neuron_updates (R,) int64; energy_j (R,) float64 joules; input_crc32 (R,) uint32 CRC-32 of each "
          "input sample as given (before the profile's non-idealities)")


def input_crc32(spikes: np.ndarray) -> np.ndarray:
    """(N,) uint32 CRC-32 of each sample's bytes (uint8 spikes), to match inputs across files."""
    spikes = np.ascontiguousarray(spikes, dtype=np.uint8)
    return np.array([zlib.crc32(sample.tobytes()) for sample in spikes], dtype=np.uint32)


def _digest(*arrays: np.ndarray) -> str:
    sha = hashlib.sha256()
    for array in arrays:
        array = np.ascontiguousarray(array)
        sha.update(str((array.shape, array.dtype.str)).encode())
        sha.update(array.tobytes())
    return sha.hexdigest()


def _file_digest(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _identity(network: Path, profile: Profile, inputs_digest: str) -> dict[str, str]:
    """What an output depends on: network file, profile settings and inputs."""
    return {"network_sha256": _file_digest(network), "profile_config": json.dumps(profile.to_dict(), sort_keys=True),
            "input_sha256": inputs_digest}


def _up_to_date(path: Path, identity: dict[str, str]) -> bool:
    """True when ``path`` is a complete device artifact made from the same network, profile and inputs."""
    if not path.exists():
        return False
    try:
        with h5py.File(path, "r") as f:
            attrs = {k: v.decode() if isinstance(v, bytes) else v for k, v in f.attrs.items()}
            check_schema(path, attrs, KIND)
    except (OSError, HarnessError):
        return False
    return all(str(attrs.get(key)) == value for key, value in identity.items())


def _attrs(output: DeviceOutput, network: Path, input_name: str, identity: dict[str, str]) -> dict[str, Any]:
    return {"profile": output.profile.name, "network": str(network), "input": input_name,
            "wall_seconds": round(output.wall_seconds, 3), "n_samples": len(output), "lanes": output.lanes,
            "steps": int(output.rasters.shape[-1]), "layer_names": output.layer_names, "layout": LAYOUT, **identity}


def _test_split(run: RunDir, data_path) -> tuple[np.ndarray, np.ndarray]:
    """The run's test split (spikes, labels), coded as in training (the card's seed and data path)."""
    from ..data import load_dataset

    card = read_json(run.require(run.card, f"harness train --run {run.root} --model MODEL"))
    data = card["spec"]["data"]
    path = data_path or card.get("dataset", {}).get("path")
    test = load_dataset(data["dataset"], "test", int(data["steps"]), float(data.get("dt_ms", 1.0)),
                        path=path, seed=int(card.get("seed", 0)))
    return test.spikes, test.labels


def _load_attack(run: RunDir, attack_id: str) -> dict[str, np.ndarray]:
    available = ", ".join(run.attack_ids()) or "none yet"
    run.require(run.attack(attack_id), f"harness attack --run {run.root} (attacks in this run: {available})")
    arrays, _ = read_h5(run.attack(attack_id), kind="attack")
    return arrays


def replay_run(run_dir: str | Path, profile: str | Path, attack_id: str | None = None, *, data_path=None,
               lanes: int | None = None, timeout: float | None = None, force: bool = False,
               progress: bool = True) -> Path:
    """Replay the run's clean test split (``attack_id`` None) or an attack set on ``profile``.

    Writes ``RUN_DIR/device/<profile>/<clean | attack_id>.h5`` and returns its path.

    Args:
        data_path: the N-MNIST folder, if it moved since training.
        lanes, timeout, progress: as for :func:`harness.device.backend.replay`.
        force: replay even when the output exists and was made from the same network file,
            profile settings and inputs (otherwise it is kept).
    Raises:
        StageMissing: the run has no model yet, or no such attack (the message names the
            command that makes it).
    """
    prof = load_profile(profile)
    run = RunDir(run_dir)
    network = run.require(run.network, f"harness train --run {run.root} --model MODEL")
    options = {"lanes": lanes, "timeout": timeout, "progress": progress}
    if attack_id is None:
        return _replay_clean(run, network, prof, data_path, force, options)
    return _replay_attack(run, network, prof, attack_id, force, options)


def _replay_clean(run: RunDir, network: Path, profile: Profile, data_path, force: bool, options: dict) -> Path:
    spikes, labels = _test_split(run, data_path)
    path = run.device(profile.name, "clean")
    identity = _identity(network, profile, _digest(spikes))
    if not force and _up_to_date(path, identity):
        return path
    keys = np.arange(len(spikes))
    output = replay(network, spikes, profile, sample_keys=keys, **options)
    extra = {"labels": labels, "sample_index": keys, "input_crc32": input_crc32(spikes)}
    write_h5(path, {**output.arrays(), **extra}, _attrs(output, network, "clean", identity), kind=KIND)
    return path


def _replay_attack(run: RunDir, network: Path, profile: Profile, attack_id: str, force: bool,
                   options: dict) -> Path:
    """The attack's adversarial rows and, in the same Lava run, its distinct clean rows."""
    attack = _load_attack(run, attack_id)
    path = run.device(profile.name, attack_id)
    clean, adversarial, keys = attack["clean"], attack["adversarial"], attack["sample_index"]
    identity = _identity(network, profile, _digest(clean, adversarial, keys))
    if not force and _up_to_date(path, identity):
        return path
    crc = input_crc32(clean)
    _, first, rows = np.unique(np.stack([keys, crc.astype(np.int64)], axis=1), axis=0,
                               return_index=True, return_inverse=True)
    both = replay(network, np.concatenate([clean[first], adversarial]), profile,
                  sample_keys=np.concatenate([keys[first], keys]), **options)
    distinct_clean, adv = both.subset(slice(0, len(first))), both.subset(slice(len(first), None))
    clean_arrays = {f"clean/{name}": array[rows.ravel()] for name, array in distinct_clean.arrays().items()}
    arrays = {**adv.arrays(), **clean_arrays, "labels": attack["labels"], "targets": attack["targets"],
              "sample_index": keys, "input_crc32": input_crc32(adversarial), "clean/input_crc32": crc}
    write_h5(path, arrays, _attrs(adv, network, attack_id, identity), kind=KIND)
    return path


def load_spikes(path: str | Path, dataset: str = "spikes") -> np.ndarray:
    """Spikes from a .npy file, or dataset ``dataset`` of an .h5 file.

    Raises:
        DataError: missing or unreadable file, unknown extension, or no such dataset (the
            message lists the datasets there are).
    """
    path = Path(path)
    if not path.exists():
        raise DataError(f"--input {path}: file not found")
    if path.suffix == ".npy":
        try:
            return np.load(path, allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise DataError(f"--input {path}: not a readable .npy array ({exc})") from None
    if path.suffix in (".h5", ".hdf5"):
        try:
            with h5py.File(path, "r") as f:
                names = []
                f.visititems(lambda name, obj: names.append(name) if isinstance(obj, h5py.Dataset) else None)
                if dataset not in names:
                    raise DataError(f"--input {path}: no dataset '{dataset}'; datasets: {', '.join(names) or 'none'}")
                return f[dataset][()]
        except OSError as exc:
            raise DataError(f"--input {path}: not a readable HDF5 file ({exc})") from None
    raise DataError(f"--input {path}: expected a .npy or .h5 file")


def replay_file(network: str | Path, input_path: str | Path, profile: str | Path, out: str | Path, *,
                dataset: str = "spikes", lanes: int | None = None, timeout: float | None = None,
                force: bool = False, progress: bool = True) -> tuple[Path, DeviceOutput | None]:
    """Replay spikes from a file through any netx network; write ``out`` (.h5, kind ``device``).

    Returns:
        The output path, and the replay's output (None when an up-to-date ``out`` was kept).
    """
    network, out = Path(network), Path(out)
    prof = load_profile(profile)
    spikes = load_spikes(input_path, dataset)
    identity = _identity(network, prof, _digest(spikes)) if network.exists() else {}
    if not force and identity and _up_to_date(out, identity):
        return out, None
    output = replay(network, spikes, prof, lanes=lanes, timeout=timeout, progress=progress)
    write_h5(out, {**output.arrays(), "input_crc32": input_crc32(spikes)},
             _attrs(output, network, str(input_path), identity), kind=KIND)
    return out, output


def replay_summary(run_dir: str | Path, profile: str | Path, attack_id: str | None = None, *,
                   data_path=None) -> dict[str, Any]:
    """Measurements of a finished replay (:mod:`harness.device.measure`).

    Clean: device accuracy, agreement and identical rasters vs the run's SLAYER model on the
    same test split. Attack: device accuracy, on-device success, transfer, activity and energy.
    """
    from .measure import attack_measurements, clean_measurements, offline_outputs

    run = RunDir(run_dir)
    name = load_profile(profile).name
    arrays, _ = read_h5(run.require(run.device(name, attack_id or "clean"),
                                    f"harness replay --run {run.root} --profile {name}"
                                    + (f" --attack {attack_id}" if attack_id else " --clean")), kind=KIND)
    if attack_id is not None:
        return attack_measurements(_load_attack(run, attack_id), arrays)
    from ..models import load_checkpoint

    net = load_checkpoint(run.require(run.checkpoint, f"harness train --run {run.root} --model MODEL"))
    spikes, labels = _test_split(run, data_path)
    return clean_measurements(arrays, offline_outputs(net, spikes), labels)


def format_summary(summary: dict[str, Any], profile: str, attack_id: str | None = None) -> str:
    """One line of :func:`replay_summary`'s measurements, for the command line."""
    if attack_id is None:
        return (f"clean test split on {profile}: accuracy {summary['accuracy']:.2%} (SLAYER "
                f"{summary['offline_accuracy']:.2%}), agreement {summary['agreement']:.2%}, identical rasters "
                f"{summary['raster_exact']:.2%} of {summary['n_samples']}")
    return (f"{attack_id} on {profile}: device accuracy clean {summary['clean_accuracy']:.2%} / adversarial "
            f"{summary['adversarial_accuracy']:.2%}; success {summary['success_rate']:.2%} of "
            f"{summary['n_correct_clean']} correct; transfer {summary['transfer_rate']:.2%} of "
            f"{summary['n_offline_success']} offline successes; activity x{summary['activity_change']:.2f}, "
            f"energy x{summary['energy_change']:.2f}")
