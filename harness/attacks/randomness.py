"""One random generator per attacked row, so a row's result never depends on its batch.

../shared/notes/attack-spec.md, "The attack loop": "one generator per sample, seeded from
(seed, sample index), so a sample's result does not depend on the batch it ran in or on the
batch size". A targeted (sample, target) pair gets its own stream seeded from
(seed, sample index, target). Each attack iteration draws one uniform tensor of the sample's
shape from the row's generator, whatever batch the row shares. A baseline that must not share the attack's draws (the random
flips compared with it) uses another ``stream`` number.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from ..errors import ConfigError


def row_seed(seed: int, sample_index: int, target: int = -1, stream: int = 0) -> int:
    """A 64-bit seed mixed from (seed, sample index) or (seed, sample index, target).

    Args:
        seed: the attack's seed (>= 0).
        sample_index: index of the sample in the run's test split (>= 0).
        target: the target class of a targeted row, -1 for an untargeted row.
        stream: 0 for the attacks; another number gives independent draws for the same row.
    """
    if seed < 0 or sample_index < 0:
        raise ConfigError(f"seeds and sample indices must be >= 0, got seed={seed}, sample index={sample_index}")
    entropy = [seed, sample_index] if target < 0 else [seed, sample_index, target]
    if stream:
        entropy.append(1 << 32 | stream)  # beyond any target class: never collides with a target
    low, high = np.random.SeedSequence(entropy).generate_state(2, dtype=np.uint32)
    return int(high) << 32 | int(low)


def row_generators(seed: int, sample_index: Sequence[int], targets: Sequence[int] | None = None,
                   stream: int = 0) -> list[torch.Generator]:
    """One seeded CPU ``torch.Generator`` per row (see :func:`row_seed`)."""
    targets = [-1] * len(sample_index) if targets is None else targets
    return [torch.Generator().manual_seed(row_seed(seed, int(i), int(t), stream)) for i, t in zip(sample_index, targets)]


def uniform(generators: torch.Generator | Sequence[torch.Generator], shape: Sequence[int]) -> torch.Tensor:
    """Uniform [0, 1) float32 draws of ``shape`` = (N, ...).

    Args:
        generators: one generator for the whole tensor, or N generators, one per row; row i
            is then drawn from generators[i] alone, as one call producing the whole row.
        shape: (N, *sample_shape).
    """
    shape = tuple(int(s) for s in shape)
    if isinstance(generators, torch.Generator):
        return torch.rand(shape, generator=generators)
    if len(generators) != shape[0]:
        raise ValueError(f"{len(generators)} generators for {shape[0]} rows")
    out = torch.empty(shape)
    for row, generator in zip(out, generators):
        torch.rand(shape[1:], generator=generator, out=row)
    return out
