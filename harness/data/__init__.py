"""Data sets as SpikeSets: ``load_dataset(name, path, split, steps, dt_ms, seed)``."""
from __future__ import annotations

from ..errors import ConfigError, DataError
from .digits import load_digits_spikes
from .events import dense_to_events, events_to_dense, load_events, save_events
from .nmnist import load_nmnist, read_events
from .spikeset import SpikeSet, check_binary, check_limit, check_not_empty

DATASETS = ("digits", "nmnist")


def load_dataset(name: str, split: str, steps: int, dt_ms: float = 1.0, path=None,
                 seed: int = 0, limit: int | None = None) -> SpikeSet:
    """Load ``split`` ("train"/"test") of data set ``name``.

    Args:
        name: "digits" (embedded, rate coded with ``seed``) or "nmnist" (needs ``path``).
        steps: time steps T; dt_ms: bin width for event data.
        limit: keep the first ``limit`` samples (at least 1).
    Raises:
        ConfigError: unknown data set or a limit below 1.
        DataError: missing or malformed data, or a split of zero samples (named by its source).
    """
    check_limit(limit)
    if name == "digits":
        data = load_digits_spikes(split, steps=steps, seed=seed)
        return check_not_empty(data if limit is None else data.subset(slice(0, limit)), "digits", split)
    if name == "nmnist":
        if path is None:
            raise DataError("the nmnist data set needs a directory: pass --data PATH")
        return check_not_empty(load_nmnist(path, split, steps=steps, dt_ms=dt_ms, limit=limit), str(path), split)
    raise ConfigError(f"unknown data set '{name}'; available: {', '.join(DATASETS)}")


__all__ = ["SpikeSet", "check_binary", "load_dataset", "load_nmnist", "read_events",
           "load_digits_spikes", "events_to_dense", "dense_to_events", "save_events", "load_events"]
