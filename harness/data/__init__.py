"""Data sets as SpikeSets: ``load_dataset(name, path, split, steps, dt_ms, seed)``."""
from __future__ import annotations

from ..errors import ConfigError, DataError
from .digits import load_digits_spikes
from .events import dense_to_events, events_to_dense, load_events, save_events
from .nmnist import load_nmnist, read_events
from .spikeset import SpikeSet, check_binary, check_limit, check_not_empty

DATASETS = ("digits", "nmnist")


def load_dataset(name: str, split: str, steps: int, dt_ms: float = 1.0, path=None,
                 seed: int = 0, limit: int | None = None, holdout: int = 0) -> SpikeSet:
    """Load ``split`` ("train"/"test") of data set ``name``.

    Args:
        name: "digits" (embedded, rate coded with ``seed``) or "nmnist" (needs ``path``).
        steps: time steps T; dt_ms: bin width for event data.
        limit: keep the first ``limit`` samples (at least 1).
        holdout: move the last ``holdout`` samples of the train split to the end of the test
            split (train on a subset, attack more held-out samples; a model spec's
            ``[data] holdout``). 0: the data set's own split.
    Raises:
        ConfigError: unknown data set, a limit below 1, or a holdout below 0.
        DataError: missing or malformed data, a split of zero samples (named by its source),
            or a holdout that leaves no training sample.
    """
    check_limit(limit)
    if isinstance(holdout, bool) or not isinstance(holdout, int) or holdout < 0:
        raise ConfigError(f"[data] holdout must be an integer >= 0, got {holdout!r}")
    if holdout == 0:
        return _load_split(name, split, steps, dt_ms, path, seed, limit)
    train = _load_split(name, "train", steps, dt_ms, path, seed, None)
    if holdout >= len(train):
        raise DataError(f"[data] holdout = {holdout} leaves no training sample: the {name} train split "
                        f"holds {len(train)}")
    keep = len(train) - holdout
    data = train.subset(slice(0, keep)) if split == "train" else \
        _load_split(name, "test", steps, dt_ms, path, seed, None).concat(train.subset(slice(keep, None)))
    return data if limit is None else data.subset(slice(0, limit))


def _load_split(name: str, split: str, steps: int, dt_ms: float, path, seed: int, limit: int | None) -> SpikeSet:
    """The data set's own ``split`` (see :func:`load_dataset`)."""
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
