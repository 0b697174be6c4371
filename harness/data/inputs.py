"""Spikes and labels a user hands over in a file (``--input``, ``--labels``).

Accepted inputs, all giving binary spikes (N, C, T) or (N, C, H, W, T) in SLAYER's layout:

- ``.npy`` with a numeric array: dense spikes as they are;
- ``.npy`` with a structured array (fields x, y, t in microseconds, p: one tonic-style
  recording) or ``.npz`` with ``events_<i>`` arrays (several, :func:`~harness.data.events.save_events`):
  events binned into (P, H, W, T) with :class:`Binning` (sensor size, steps, dt);
- ``.npz`` with a ``spikes`` array, or ``.h5``/``.hdf5`` with a dataset (default ``spikes``).

Every error names the file and what is wrong with it.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

from ..errors import ConfigError, DataError
from ..settings import COUNT, POSITIVE, check_size
from .events import events_to_dense, load_events
from .spikeset import check_binary


@dataclass(frozen=True)
class Binning:
    """How events become dense spikes: sensor (W, H, P), T steps of ``dt_ms`` milliseconds."""

    sensor_size: tuple[int, int, int]
    steps: int
    dt_ms: float

    def __post_init__(self) -> None:
        check_binning(self.sensor_size, self.steps, self.dt_ms)


def check_binning(sensor_size: tuple[int, ...] | None, steps: int | None, dt_ms: float | None) -> None:
    """The binning flags, each checked when given (None: not given).

    Raises:
        ConfigError: naming the flag: a sensor size other than three integers >= 1, steps below 1,
            a step that is not a finite number of milliseconds > 0 or that rounds to 0 us (event
            timestamps are whole microseconds: every event would fall in step 0), or one sample
            (P, H, W, T) above the size limit (:func:`harness.settings.check_size`).
    """
    if sensor_size is not None and (len(sensor_size) != 3 or not all(COUNT.admits(s) for s in sensor_size)):
        raise ConfigError(f"--sensor-size must be three positive integers W H P, got {list(sensor_size)}")
    if steps is not None:
        COUNT.check(steps, "--steps")
    if dt_ms is not None:
        POSITIVE.check(dt_ms, "--dt-ms")
        if round(dt_ms * 1000) < 1:
            raise ConfigError(f"--dt-ms {dt_ms:g} is a step of {dt_ms * 1000:g} us, which rounds to 0 us (event "
                              f"timestamps are whole microseconds); give at least 0.001")
    if sensor_size is not None and steps is not None:
        w, h, polarities = sensor_size
        check_size((polarities, h, w, steps), "one binned sample (--sensor-size P H W x --steps)")


def _is_events(path: Path) -> bool:
    """The file holds tonic-style event arrays rather than dense spikes."""
    try:
        loaded = np.load(path, allow_pickle=False, mmap_mode="r" if path.suffix == ".npy" else None)
    except (OSError, ValueError, EOFError) as exc:
        raise DataError(f"--input {path}: not a readable {path.suffix} file ({exc})") from None
    if isinstance(loaded, np.ndarray):
        return loaded.dtype.names is not None
    with loaded:
        return any(k.startswith("events_") for k in loaded.files)


def _binned(path: Path, binning: Binning | None) -> np.ndarray:
    if binning is None:
        raise DataError(f"--input {path}: holds events (x, y, t, p); give --sensor-size W H P, --steps T and "
                        "--dt-ms to bin them")
    recordings, _ = load_events(path)
    w, h, polarities = binning.sensor_size
    try:
        check_size((len(recordings), polarities, h, w, binning.steps), f"--input {path} binned")
    except ConfigError as exc:
        raise DataError(str(exc)) from None
    return np.stack([events_to_dense(ev, binning.sensor_size, binning.steps, binning.dt_ms, f"{path} recording {i}")
                     for i, ev in enumerate(recordings)])


def _dense(path: Path, dataset: str) -> np.ndarray:
    if path.suffix == ".npy":
        return np.load(path, allow_pickle=False)
    if path.suffix == ".npz":
        with np.load(path, allow_pickle=False) as loaded:
            if "spikes" not in loaded.files:
                raise DataError(f"--input {path}: no 'spikes' array and no events_<i> arrays; arrays: "
                                f"{', '.join(loaded.files) or 'none'}")
            return loaded["spikes"]
    try:
        with h5py.File(path, "r") as f:
            names: list[str] = []
            f.visititems(lambda name, obj: names.append(name) if isinstance(obj, h5py.Dataset) else None)
            if dataset not in names:
                raise DataError(f"--input {path}: no dataset '{dataset}'; datasets: {', '.join(names) or 'none'}")
            return f[dataset][()]
    except OSError as exc:
        raise DataError(f"--input {path}: not a readable HDF5 file ({exc})") from None


def load_input(path: str | Path, dataset: str = "spikes", binning: Binning | None = None) -> np.ndarray:
    """Binary spikes (N, ..., T) uint8 from a file (see the module docstring for the formats).

    Raises:
        DataError: missing or unreadable file, unknown extension, events without a binning,
            no such dataset, or values other than 0 and 1 (the message names the file).
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"--input {path}: file not found")
    if path.suffix not in (".npy", ".npz", ".h5", ".hdf5"):
        raise DataError(f"--input {path}: expected a .npy, .npz or .h5 file")
    if path.suffix in (".npy", ".npz") and _is_events(path):
        return _binned(path, binning)
    try:
        spikes = _dense(path, dataset)
    except (OSError, ValueError) as exc:
        raise DataError(f"--input {path}: not a readable {path.suffix} array ({exc})") from None
    return check_binary(spikes, f"--input {path} {tuple(np.shape(spikes))}")


def load_labels(path: str | Path, n: int) -> np.ndarray:
    """(n,) int64 class labels from a .npy file, one per input sample.

    Raises:
        DataError: missing or unreadable file, not integers, or not one label per sample.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"--labels {path}: file not found")
    try:
        labels = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as exc:
        raise DataError(f"--labels {path}: not a readable .npy array ({exc})") from None
    if labels.dtype.kind not in "iu" or labels.shape != (n,) or (labels < 0).any():
        raise DataError(f"--labels {path}: expected {n} non-negative integer labels (one per input sample), got "
                        f"{labels.dtype} array of shape {labels.shape}")
    return labels.astype(np.int64)
