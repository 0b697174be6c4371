"""SpikeSet: the one in-memory data type every stage consumes."""
from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from ..errors import ConfigError, DataError


@dataclass
class SpikeSet:
    """Binary spike tensors with labels and metadata.

    Attributes:
        spikes: (N, C, T) or (N, C, H, W, T) uint8 with values in {0, 1}; SLAYER's layout.
        labels: (N,) int64 class indices.
        dataset: data set name ("digits", "nmnist", ...).
        encoding: how spikes were made ("bernoulli-rate", "events", ...).
        dt_ms: duration of one time step in milliseconds.
        sensor_size: (W, H, P) of the source sensor or image (tonic's convention).
        seed: the seed of any random coding (None for recorded events).
        sample_ids: (N,) identifiers of the source samples (file stem or index).
        rates: (N, *sample_shape) float firing probabilities of rate-coded data, else None;
            training re-draws spikes from them every epoch.
    """

    spikes: np.ndarray
    labels: np.ndarray
    dataset: str
    encoding: str
    dt_ms: float
    sensor_size: tuple[int, int, int]
    seed: int | None = None
    sample_ids: np.ndarray = field(default=None)  # type: ignore[assignment]
    rates: np.ndarray | None = None

    def __post_init__(self) -> None:
        self.spikes = np.asarray(self.spikes)
        self.labels = np.asarray(self.labels, dtype=np.int64)
        if self.spikes.ndim not in (3, 5):
            raise DataError(f"spikes must be (N, C, T) or (N, C, H, W, T), got shape {self.spikes.shape}")
        if len(self.labels) != len(self.spikes):
            raise DataError(f"{len(self.spikes)} spike samples but {len(self.labels)} labels")
        self.spikes = check_binary(self.spikes, "spikes")
        if self.sample_ids is None:
            self.sample_ids = np.arange(len(self.spikes))
        self.sensor_size = tuple(int(s) for s in self.sensor_size)

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def steps(self) -> int:
        """Number of time steps T."""
        return int(self.spikes.shape[-1])

    @property
    def sample_shape(self) -> tuple[int, ...]:
        """Shape of one sample without time: (C,) or (C, H, W)."""
        return tuple(self.spikes.shape[1:-1])

    def subset(self, index) -> "SpikeSet":
        """A SpikeSet of the selected samples (index: slice, int array or bool mask)."""
        return replace(self, spikes=self.spikes[index], labels=self.labels[index],
                       sample_ids=np.asarray(self.sample_ids)[index],
                       rates=None if self.rates is None else self.rates[index])

    def concat(self, other: "SpikeSet") -> "SpikeSet":
        """This set followed by ``other`` (same sample shape and T; metadata from this set).

        Raises:
            DataError: the sample shapes or T differ, or only one of the two is rate coded.
        """
        if self.spikes.shape[1:] != other.spikes.shape[1:] or (self.rates is None) != (other.rates is None):
            raise DataError(f"cannot join spike sets of shapes {self.spikes.shape[1:]} and {other.spikes.shape[1:]}"
                            " (or rate coded with not)")
        return replace(self, spikes=np.concatenate([self.spikes, other.spikes]),
                       labels=np.concatenate([self.labels, other.labels]),
                       sample_ids=np.concatenate([np.asarray(self.sample_ids), np.asarray(other.sample_ids)]),
                       rates=None if self.rates is None else np.concatenate([self.rates, other.rates]))

    def flat(self) -> "SpikeSet":
        """The same data with each frame flattened to (N, C*H*W, T) in SLAYER's C, H, W order."""
        n, t = len(self), self.steps
        return replace(self, spikes=self.spikes.reshape(n, -1, t))

    def metadata(self) -> dict:
        """Metadata as a JSON-friendly dict."""
        return {"dataset": self.dataset, "encoding": self.encoding, "dt_ms": self.dt_ms,
                "sensor_size": list(self.sensor_size), "seed": self.seed,
                "shape": list(self.spikes.shape[1:])}


def check_binary(spikes: np.ndarray, what: str) -> np.ndarray:
    """Return ``spikes`` as uint8 after checking every value is 0 or 1.

    Raises:
        DataError: naming ``what`` and the offending values.
    """
    spikes = np.asarray(spikes)
    if spikes.dtype == bool:
        return spikes.astype(np.uint8)
    if spikes.size and not np.isin(spikes, (0, 1)).all():
        bad = np.unique(spikes[~np.isin(spikes, (0, 1))])[:5]
        raise DataError(f"{what}: spikes must be binary (0/1), found values {bad.tolist()}")
    return spikes.astype(np.uint8)


def check_limit(limit: int | None) -> None:
    """ConfigError unless ``limit`` (the number of samples to keep) is None or at least 1."""
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, (int, np.integer)) or limit < 1):
        raise ConfigError(f"limit must be >= 1, got {limit!r}")


def check_not_empty(data: SpikeSet, source: str, split: str) -> SpikeSet:
    """Return ``data``; DataError naming ``source`` when the ``split`` holds no sample."""
    if len(data) == 0:
        raise DataError(f"{source}: the {split} split holds no recording")
    return data
