"""The replay stage: ``harness replay`` on a run directory or on stand-alone files.

- :func:`replay_run`: the run's clean test split, or one attack set, on a hardware profile,
  written to ``RUN_DIR/device/<profile>/<id>.h5`` (docs/artifacts.md). An attack's file also
  holds the replay of the attack's own clean rows (group ``clean/``), so on-device success
  and transfer need nothing else. An output is kept, not recomputed, when its identity (the
  network file's bytes, the profile's settings, the input spikes, the package versions) matches
  (:func:`harness.store.cached`).
- :func:`replay_sets`: the clean split and several attack sets of one run through one device
  session (one compiled network; the same files as :func:`replay_run`, up-to-date ones skipped);
- :func:`replay_file`: any netx network on spikes from a .npy or .h5 file (the form for
  hardware-in-the-loop scripts), written to an .h5 file that documents its own layout.
"""
from __future__ import annotations

import json
import zlib
from pathlib import Path
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from ..data.inputs import Binning, load_input, load_labels
from ..device.backend import replay
from ..device.output import DeviceOutput
from ..device.profiles import Profile, as_profile
from ..device.session import FRESH, DeviceSession, check_sample_mode
from ..errors import DataError
from ..runs import Run, open_run
from ..store import cached, digest_arrays, digest_file, identity, read_h5, write_h5
from ..versions import numeric_versions

KIND = "device"
CLEAN = "clean"  # the id of the clean test split
LAYOUT = ("output_rasters (R, K, T) uint8: output spikes, channels in SLAYER's order, step t = SLAYER's "
          "output step t; output_counts (R, K) int64; predictions (R,) int64, -1 = tie or silence; "
          "layer_counts (R, L) int64 spikes per layer (names in attr layer_names); input_spikes, synops, "
          "neuron_updates (R,) int64; energy_j (R,) float64 joules; input_crc32 (R,) uint32 CRC-32 of each "
          "input sample as given (before the profile's non-idealities)")


def input_crc32(spikes: np.ndarray) -> np.ndarray:
    """(N,) uint32 CRC-32 of each sample's bytes (uint8 spikes), to match inputs across files."""
    spikes = np.ascontiguousarray(spikes, dtype=np.uint8)
    return np.array([zlib.crc32(sample.tobytes()) for sample in spikes], dtype=np.uint32)


def _identity(network: Path, profile: Profile, inputs_digest: str, sample_mode: str) -> dict[str, str]:
    """What an output depends on: network file, profile settings, inputs, the sample mode and
    package versions.

    Returns the root attributes that record it: ``network_sha256``, ``profile_config``,
    ``input_sha256``, ``sample_mode`` and ``identity`` (the digest of all of them and the versions).
    """
    parts = {"network_sha256": digest_file(network), "profile_config": json.dumps(profile.to_dict(), sort_keys=True),
             "input_sha256": inputs_digest, "sample_mode": check_sample_mode(sample_mode)}
    return {**parts, "identity": identity(stage="replay", versions=numeric_versions(), **parts)}


def _attrs(output: DeviceOutput, network: Path, input_name: str, ident: dict[str, str]) -> dict[str, Any]:
    return {"profile": output.profile.name, "network": str(network), "input": input_name,
            "wall_seconds": round(output.wall_seconds, 3), "n_samples": len(output), "lanes": output.lanes,
            "steps": int(output.rasters.shape[-1]), "layer_names": output.layer_names, "layout": LAYOUT, **ident}


@dataclass
class _SetReplay:
    """One set to replay into one device file: what goes in, and how its output is written.

    Attributes:
        path: ``RUN_DIR/device/<profile>/<id>.h5``.
        identity: the file's identity attributes (:func:`_identity`).
        spikes: (R, ...) the spikes replayed (for an attack: its distinct clean rows, then its
            adversarial rows); keys: (R,) their noise keys (test-split indices).
        write: writes the file from the replay's DeviceOutput of ``spikes``.
    """

    path: Path
    identity: dict[str, str]
    spikes: np.ndarray
    keys: np.ndarray
    write: Callable[[DeviceOutput], None]

    def replay_with(self, replay_fn: Callable[..., DeviceOutput], force: bool) -> Path:
        """Replay through ``replay_fn(spikes, sample_keys=...)`` unless an up-to-date file exists."""
        cached(self.path, self.identity["identity"],
               lambda: self.write(replay_fn(self.spikes, sample_keys=self.keys)), force=force)
        return self.path


def replay_run(run_dir: str | Path, profile: Profile | str, attack_id: str | None = None, *, data_path=None,
               lanes: int | None = None, timeout: float | None = None, force: bool = False,
               progress: bool = True, sample_mode: str = FRESH) -> Path:
    """Replay the run's clean test split (``attack_id`` None) or an attack set on ``profile``.

    Writes ``RUN_DIR/device/<profile name>/<clean | attack_id>.h5`` and returns its path.

    Args:
        profile: the hardware profile (a Profile, or a name or path loaded once here).
        data_path: the N-MNIST folder, if it moved since training.
        lanes, timeout, progress, sample_mode: as for :func:`harness.device.backend.replay`.
        force: replay even when an output with the same identity exists (otherwise it is kept).
    Raises:
        StageMissing: the run has no model yet, or no such attack (the message names the
            command that makes it).
    """
    run, profile = open_run(run_dir), as_profile(profile)
    one = _set_replay(run, profile, attack_id or CLEAN, data_path, sample_mode)

    def replay_fn(spikes, sample_keys):
        return replay(run.network_file, spikes, profile, sample_keys=sample_keys, lanes=lanes, timeout=timeout,
                      progress=progress, sample_mode=sample_mode)

    return one.replay_with(replay_fn, force)


def replay_sets(run_dir: str | Path, profile: Profile | str, input_ids: list[str | None], *, data_path=None,
                lanes: int | None = None, timeout: float | None = None, force: bool = False,
                progress: bool = True, sample_mode: str = FRESH) -> list[Path]:
    """Replay several sets of one run on ``profile`` through one device session.

    The same files and identities as :func:`replay_run` of each id; sets whose file is up to
    date are skipped, and no network is built when all are. The session's lanes fit the largest
    set in one window when memory allows (``lanes`` overrides).

    Args:
        input_ids: ``"clean"`` (or None) for the clean test split, else attack ids.
        timeout: watchdog seconds per set (default: from each set's work).
    Returns:
        The device files, in the order of ``input_ids``.
    """
    run, profile = open_run(run_dir), as_profile(profile)
    sets = [_set_replay(run, profile, input_id or CLEAN, data_path, sample_mode) for input_id in input_ids]
    largest = max((len(one.spikes) for one in sets), default=1)
    with DeviceSession(run.network_file, profile, lanes=lanes, timeout=timeout, expected_samples=largest,
                       sample_mode=sample_mode) as dev:
        def replay_fn(spikes, sample_keys):
            return dev.replay(spikes, sample_keys=sample_keys, progress=progress)

        return [one.replay_with(replay_fn, force) for one in sets]


def _set_replay(run: Run, profile: Profile, input_id: str, data_path, sample_mode: str) -> _SetReplay:
    if input_id == CLEAN:
        return _clean_set(run, profile, data_path, sample_mode)
    return _attack_set(run, profile, input_id, sample_mode)


def _clean_set(run: Run, profile: Profile, data_path, sample_mode: str) -> _SetReplay:
    network, test = run.network_file, run.test(data_path=data_path)
    spikes, labels = test.spikes, test.labels
    path = run.device(profile.name, CLEAN)
    ident = _identity(network, profile, digest_arrays(spikes), sample_mode)
    keys = np.arange(len(spikes))

    def write(output: DeviceOutput) -> None:
        extra = {"labels": labels, "sample_index": keys, "input_crc32": input_crc32(spikes)}
        write_h5(path, {**output.arrays(), **extra}, _attrs(output, network, CLEAN, ident), kind=KIND)

    return _SetReplay(path, ident, spikes, keys, write)


def _attack_set(run: Run, profile: Profile, attack_id: str, sample_mode: str) -> _SetReplay:
    """The attack's distinct clean rows and its adversarial rows, replayed together."""
    network, attack = run.network_file, run.attack_arrays(attack_id)
    path = run.device(profile.name, attack_id)
    clean, adversarial, keys = attack["clean"], attack["adversarial"], attack["sample_index"]
    ident = _identity(network, profile, digest_arrays(clean, adversarial, keys), sample_mode)
    crc = input_crc32(clean)
    _, first, rows = np.unique(np.stack([keys, crc.astype(np.int64)], axis=1), axis=0,
                               return_index=True, return_inverse=True)

    def write(both: DeviceOutput) -> None:
        distinct_clean, adv = both.subset(slice(0, len(first))), both.subset(slice(len(first), None))
        clean_arrays = {f"clean/{name}": array[rows.ravel()] for name, array in distinct_clean.arrays().items()}
        arrays = {**adv.arrays(), **clean_arrays, "labels": attack["labels"], "targets": attack["targets"],
                  "sample_index": keys, "input_crc32": input_crc32(adversarial), "clean/input_crc32": crc}
        write_h5(path, arrays, _attrs(adv, network, attack_id, ident), kind=KIND)

    return _SetReplay(path, ident, np.concatenate([clean[first], adversarial]),
                      np.concatenate([keys[first], keys]), write)


def replay_file(network: str | Path, input_path: str | Path, profile: Profile | str, out: str | Path, *,
                dataset: str = "spikes", binning: Binning | None = None, labels: str | Path | None = None,
                lanes: int | None = None, timeout: float | None = None, force: bool = False,
                progress: bool = True, sample_mode: str = FRESH) -> tuple[Path, DeviceOutput | None]:
    """Replay spikes (or events) from a file through any netx network; write ``out`` (.h5, kind ``device``).

    Args:
        input_path, dataset, binning: the input (:func:`harness.data.inputs.load_input`).
        labels: a .npy file of the samples' classes; stored as ``labels`` and counted in ``accuracy``.
        sample_mode: as for :func:`harness.device.backend.replay`.
    Returns:
        The output path, and the replay's output (None when an up-to-date ``out`` was kept).
    """
    network, out, profile = Path(network), Path(out), as_profile(profile)
    spikes = load_input(input_path, dataset, binning)
    truth = {} if labels is None else {"labels": load_labels(labels, len(spikes))}
    if not network.exists():
        raise DataError(f"--network {network}: file not found")
    ident = _identity(network, profile, digest_arrays(spikes, *truth.values()), sample_mode)
    result: list[DeviceOutput] = []

    def compute() -> None:
        output = replay(network, spikes, profile, lanes=lanes, timeout=timeout, progress=progress,
                        sample_mode=sample_mode)
        write_h5(out, {**output.arrays(), "input_crc32": input_crc32(spikes), **truth},
                 _attrs(output, network, str(input_path), ident), kind=KIND)
        result.append(output)

    cached(out, ident["identity"], compute, force=force)
    return out, (result[0] if result else None)


def replay_summary(run_dir: str | Path, profile: Profile | str, attack_id: str | None = None, *,
                   data_path=None) -> dict[str, Any]:
    """Measurements of a finished replay (:mod:`harness.stages.measure`).

    Clean: device accuracy, agreement and identical rasters vs the run's SLAYER model on the
    same test split (behind the profile's event filter, if it has one: docs/defences.md). Attack:
    device accuracy, on-device success, transfer, activity and energy.
    """
    from ..attacks.filtered import through_filter
    from .measure import attack_measurements, clean_measurements, offline_outputs

    run, profile = open_run(run_dir), as_profile(profile)
    device = run.replay(profile.name, attack_id or "clean").arrays
    if attack_id is not None:
        return attack_measurements(run.attack_arrays(attack_id), device)
    test = run.test(data_path=data_path)
    with through_filter(run.net, profile.input_filter):
        offline = offline_outputs(run.net, test.spikes)
    return clean_measurements(device, offline, test.labels)


def energy_summary(run_dir: str | Path, profile: Profile | str, attack_id: str) -> dict[str, Any]:
    """:func:`harness.stages.measure.energy_measurements` of an energy attack (or its random
    baseline) replayed on ``profile``: the run's network mapped onto the profile's chip.

    Raises:
        ConfigError: the profile has no [chip] table; StageMissing: no such attack or replay.
    """
    from ..device.mapping import map_network
    from ..device.netx_reader import read_network
    from ..errors import ConfigError
    from .measure import energy_measurements

    run, profile = open_run(run_dir), as_profile(profile)
    if profile.chip is None:
        raise ConfigError(f"profile '{profile.name}' has no [chip] table: energy per core needs one")
    replayed = run.replay(profile.name, attack_id)
    attack = run.attack(attack_id)
    shape = run.card.get("spec", {}).get("data", {}).get("input_shape")
    mapping = map_network(read_network(run.network_file, tuple(shape) if shape else None), profile.chip)
    return energy_measurements({name: getattr(attack, name) for name in attack.array_names()}, replayed.arrays,
                               mapping, profile.energy, int(replayed.attrs["steps"]), attack.attrs)


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
