"""Events <-> dense spikes, in tonic's convention.

An event array is a structured numpy array with fields ``x``, ``y`` (pixels), ``t``
(microseconds) and ``p`` (polarity 0/1), as tonic uses. Dense spikes are SLAYER's
(C, H, W, T) layout with C = polarity, H = y, W = x.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import DataError

EVENT_DTYPE = np.dtype([("x", np.int16), ("y", np.int16), ("t", np.int64), ("p", np.int8)])


def make_events(x, y, t_us, p) -> np.ndarray:
    """Build a structured event array from coordinate arrays (t in microseconds)."""
    ev = np.empty(len(x), dtype=EVENT_DTYPE)
    ev["x"], ev["y"], ev["t"], ev["p"] = x, y, t_us, p
    return ev


def check_events(events: np.ndarray, sensor_size: tuple[int, int, int], source: str) -> None:
    """Raise DataError naming ``source`` when events fall outside the sensor or have bad fields.

    Args:
        events: structured event array.
        sensor_size: (W, H, P).
        source: file name or description used in the message.
    """
    missing = [f for f in ("x", "y", "t", "p") if events.dtype.names is None or f not in events.dtype.names]
    if missing:
        raise DataError(f"{source}: event array lacks field(s) {', '.join(missing)} (need x, y, t, p)")
    w, h, npol = sensor_size
    for field, limit in (("x", w), ("y", h), ("p", npol)):
        values = events[field]
        if values.size and (values.min() < 0 or values.max() >= limit):
            raise DataError(f"{source}: {field} values span {int(values.min())}..{int(values.max())}, "
                            f"outside the sensor ({field} must be in 0..{limit - 1})")
    if events.size and events["t"].min() < 0:
        raise DataError(f"{source}: negative timestamps")


def events_to_dense(events: np.ndarray, sensor_size: tuple[int, int, int], steps: int,
                    dt_ms: float, source: str = "events") -> np.ndarray:
    """Bin events into a binary (P, H, W, T) uint8 tensor.

    bin = floor(t / dt); events at or beyond steps * dt are dropped; a bin that receives
    several events holds 1 (../shared/notes/lava-replay.md, "N-MNIST timestamps").
    """
    check_events(events, sensor_size, source)
    w, h, npol = sensor_size
    dense = np.zeros((npol, h, w, steps), dtype=np.uint8)
    bins = (events["t"] // int(round(dt_ms * 1000))).astype(np.int64)
    keep = bins < steps
    dense[events["p"][keep], events["y"][keep], events["x"][keep], bins[keep]] = 1
    return dense


def dense_to_events(spikes: np.ndarray, dt_ms: float) -> np.ndarray:
    """One event per spike of a (P, H, W, T) tensor, at the start of its bin, sorted by time."""
    spikes = np.asarray(spikes)
    if spikes.ndim != 4:
        raise DataError(f"dense spikes must be (P, H, W, T), got shape {spikes.shape}")
    p, y, x, t = np.nonzero(spikes)
    order = np.argsort(t, kind="stable")
    return make_events(x[order], y[order], (t[order] * dt_ms * 1000).astype(np.int64), p[order])


def save_events(path: str | Path, events: np.ndarray | list[np.ndarray], labels=None) -> None:
    """Write events to ``.npy`` (one recording) or ``.npz`` (several, keys ``events_<i>``,
    plus ``labels``), atomically."""
    from ..store import atomic_path

    path = Path(path)
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            if path.suffix == ".npy":
                np.save(fh, np.asarray(events))
            elif path.suffix == ".npz":
                arrays = {f"events_{i}": ev for i, ev in enumerate(events)}
                if labels is not None:
                    arrays["labels"] = np.asarray(labels, dtype=np.int64)
                np.savez_compressed(fh, **arrays)
            else:
                raise DataError(f"{path}: event files must end in .npy or .npz")


def load_events(path: str | Path) -> tuple[list[np.ndarray], np.ndarray | None]:
    """Read events written by :func:`save_events` (or by tonic as structured arrays).

    Returns:
        (list of structured event arrays, labels or None).
    """
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: file not found")
    try:
        loaded = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise DataError(f"{path}: not a readable .npy/.npz file ({exc})") from None
    if isinstance(loaded, np.ndarray):
        recordings, labels = [loaded], None
    else:
        with loaded:
            keys = sorted((k for k in loaded.files if k.startswith("events_")), key=lambda k: int(k.split("_")[1]))
            recordings = [loaded[k] for k in keys]
            labels = loaded["labels"] if "labels" in loaded.files else None
    for i, ev in enumerate(recordings):
        if ev.dtype.names is None or not {"x", "y", "t", "p"} <= set(ev.dtype.names):
            raise DataError(f"{path}: recording {i} is not a structured event array with fields x, y, t, p")
    return recordings, labels
