"""N-MNIST recordings in the original binary format.

Format (Orchard et al. 2015): 5 bytes per event: x (8 bit), y (8 bit), then polarity (1 bit)
and timestamp (23 bit, microseconds). Sensor 34 x 34, 2 polarities. Two directory layouts:

- list-file layout (../shared/data/nmnist_small): ``<id>.bs2`` files plus list files
  ``train*.txt`` / ``test*.txt`` with lines "<id> <class>" (lines starting with # ignored);
- official layout: ``Train/<class>/*.bin`` and ``Test/<class>/*.bin``.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import DataError
from .events import events_to_dense, make_events
from .spikeset import SpikeSet, check_limit

SENSOR_SIZE = (34, 34, 2)  # (W, H, P)
BYTES_PER_EVENT = 5


def read_events(path: str | Path) -> np.ndarray:
    """Decode one recording into a structured event array (t in microseconds).

    Raises:
        DataError: missing file, a size that is not a whole number of events, or coordinates
            outside the 34 x 34 sensor; the message names the file.
    """
    path = Path(path)
    try:
        raw = np.fromfile(path, dtype=np.uint8)
    except FileNotFoundError:
        raise DataError(f"{path}: recording not found") from None
    except OSError as exc:
        raise DataError(f"{path}: cannot read ({exc.strerror or exc})") from None
    if raw.size % BYTES_PER_EVENT:
        raise DataError(f"{path}: size {raw.size} bytes is not a whole number of "
                        f"{BYTES_PER_EVENT}-byte events (truncated or not an N-MNIST file)")
    raw = raw.reshape(-1, BYTES_PER_EVENT).astype(np.int64)
    t = ((raw[:, 2] << 16) | (raw[:, 3] << 8) | raw[:, 4]) & 0x7FFFFF
    events = make_events(raw[:, 0], raw[:, 1], t, raw[:, 2] >> 7)
    w, h, _ = SENSOR_SIZE
    if events.size and (events["x"].max() >= w or events["y"].max() >= h):
        raise DataError(f"{path}: event coordinates up to x={int(events['x'].max())}, "
                        f"y={int(events['y'].max())} lie outside the {w}x{h} N-MNIST sensor")
    return events


def _read_list(list_file: Path, root: Path) -> list[tuple[Path, int]]:
    """(recording, label) pairs named by ``list_file``.

    Raises:
        DataError: unreadable list, a malformed line, a class outside 0-9, no entry at all
            (an empty split: a 0-byte list or one with only its header), or recordings missing
            from ``root``; the message names the list file.
    """
    try:
        text = list_file.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{list_file}: cannot read the list file ({exc})") from None
    entries = []
    for lineno, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split()
        try:
            sample_id, label = parts[0], int(parts[1])
        except (IndexError, ValueError):
            raise DataError(f"{list_file}:{lineno}: expected '<sample id> <class>', got {line!r}") from None
        if not 0 <= label <= 9:
            raise DataError(f"{list_file}:{lineno}: class {label} is not a digit 0-9")
        entries.append((root / f"{sample_id}.bs2", label))
    if not entries:
        raise DataError(f"{list_file}: lists no recording (only a header, comments or nothing); "
                        f"a split needs at least one '<sample id> <class>' line")
    missing = [str(p.name) for p, _ in entries if not p.exists()]
    if missing:
        raise DataError(f"{list_file}: names {len(missing)} recording(s) missing from {root}: "
                        f"{', '.join(missing[:5])}{' ...' if len(missing) > 5 else ''}")
    return entries


def list_recordings(root: str | Path, split: str) -> list[tuple[Path, int]]:
    """(file, label) pairs of ``split`` ("train" or "test") in either layout, sorted."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root}: N-MNIST directory not found")
    if split not in ("train", "test"):
        raise DataError(f"split must be 'train' or 'test', got {split!r}")
    official = root / split.capitalize()
    if official.is_dir():
        entries = [(f, int(d.name)) for d in sorted(official.iterdir()) if d.is_dir() and d.name.isdigit()
                   for f in sorted(d.glob("*.bin"))]
        if not entries:
            raise DataError(f"{official}: no <class>/*.bin recordings found")
        return entries
    lists = sorted(root.glob(f"{split}*.txt"))
    if not lists:
        raise DataError(f"{root}: neither a {split.capitalize()}/<class>/*.bin folder nor a "
                        f"{split}*.txt list file; not an N-MNIST directory")
    return _read_list(lists[0], root)


def load_nmnist(root: str | Path, split: str, steps: int = 30, dt_ms: float = 10.0,
                limit: int | None = None) -> SpikeSet:
    """Load a split as a SpikeSet of shape (N, 2, 34, 34, steps).

    Args:
        root: data directory in either layout.
        split: "train" or "test".
        steps: number of time bins T.
        dt_ms: bin width in milliseconds.
        limit: keep only the first ``limit`` recordings (in listing order), at least 1.
    Raises:
        DataError: an empty split (the message names the list file or folder), or a bad recording.
    """
    check_limit(limit)
    entries = list_recordings(root, split)[:limit]
    spikes = np.stack([events_to_dense(read_events(f), SENSOR_SIZE, steps, dt_ms, source=str(f))
                       for f, _ in entries])
    return SpikeSet(spikes=spikes, labels=np.array([lab for _, lab in entries], dtype=np.int64),
                    dataset="nmnist", encoding="events", dt_ms=dt_ms, sensor_size=SENSOR_SIZE,
                    seed=None, sample_ids=np.array([f.stem for f, _ in entries]))
