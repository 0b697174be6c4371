"""Input-stream non-idealities of a hardware profile: event drop and timing jitter.

Each input event (a 1 in the spike tensor) is dropped with probability ``drop_probability``;
each surviving event moves by a whole number of steps drawn uniformly from
[-jitter_steps, +jitter_steps]. Events moved outside [0, T) are lost and events landing on the
same element merge (spikes are binary).

The random field is drawn per *sample key* (default: the sample's row): element (c, h, w, t)
of a sample with key k always gets the same drop decision and shift, whatever the input. A
clean input and its adversarial version (same key) therefore meet the same hardware noise, so
their difference comes from the perturbation alone (common random numbers).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from ..config import check_unknown
from ..errors import ConfigError


@dataclass(frozen=True)
class InputNoise:
    """Event drop probability, timing jitter (steps) and the seed of their random field."""

    drop_probability: float = 0.0
    jitter_steps: int = 0
    seed: int = 0

    @property
    def active(self) -> bool:
        return self.drop_probability > 0 or self.jitter_steps > 0

    def to_dict(self) -> dict:
        return asdict(self)

    def apply(self, spikes: np.ndarray, keys: np.ndarray | None = None) -> np.ndarray:
        """Noisy copy of binary ``spikes`` (N, ..., T); ``keys`` (N,) int select the random fields.

        Raises:
            ConfigError: ``jitter_steps`` >= T (events would mostly, for few events all, be lost).
        """
        if not self.active:
            return spikes
        if self.jitter_steps >= spikes.shape[-1]:
            raise ConfigError(f"profile [noise] jitter_steps = {self.jitter_steps} is not below the input's "
                              f"T = {spikes.shape[-1]} steps: most events would be moved out of the window and "
                              f"lost; give jitter_steps < T")
        keys = np.arange(len(spikes)) if keys is None else np.asarray(keys)
        out = np.zeros_like(spikes)
        for i, (sample, key) in enumerate(zip(spikes, keys)):
            out[i] = self._apply_one(sample, int(key))
        return out

    def _apply_one(self, sample: np.ndarray, key: int) -> np.ndarray:
        rng = np.random.default_rng([self.seed, key])
        keep = rng.random(sample.shape) >= self.drop_probability
        shift = rng.integers(-self.jitter_steps, self.jitter_steps + 1, size=sample.shape)
        where = np.nonzero(sample & keep)
        t = where[-1] + shift[where]
        inside = (t >= 0) & (t < sample.shape[-1])
        out = np.zeros_like(sample)
        out[tuple(axis[inside] for axis in where[:-1]) + (t[inside],)] = 1
        return out


def noise_from_table(table: dict, where: str) -> InputNoise:
    """Validate a profile's optional ``[noise]`` table."""
    check_unknown(table, {"drop_probability", "jitter_steps", "seed"}, where)
    drop = table.get("drop_probability", 0.0)
    jitter = table.get("jitter_steps", 0)
    seed = table.get("seed", 0)
    if isinstance(drop, bool) or not isinstance(drop, (int, float)) or not 0 <= drop < 1:
        raise ConfigError(f"{where}: drop_probability must be a number in [0, 1), got {drop!r}")
    if isinstance(jitter, bool) or not isinstance(jitter, int) or jitter < 0:
        raise ConfigError(f"{where}: jitter_steps must be a non-negative integer, got {jitter!r}")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ConfigError(f"{where}: seed must be a non-negative integer, got {seed!r}")
    return InputNoise(drop_probability=float(drop), jitter_steps=jitter, seed=seed)
