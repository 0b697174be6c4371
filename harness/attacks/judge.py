"""Checking attack inputs and judging examples on a model (prediction with the tie rule)."""
from __future__ import annotations

import numpy as np

from ..data import check_binary
from ..errors import DataError
from ..metrics import predict
from ..models import SpikingNetwork
from ..train import output_counts
from ..records import is_success


def check_spikes(net: SpikingNetwork, spikes: np.ndarray, what: str = "spikes") -> np.ndarray:
    """``spikes`` as uint8 after checking they are binary and shaped (N, *input_shape, T).

    Raises:
        DataError: naming ``what``, the shape found and the shape the network expects.
    """
    spikes = np.asarray(spikes)
    if not (spikes.dtype == np.uint8 and spikes.size and spikes.max() <= 1):  # fast path for uint8 spikes
        spikes = check_binary(spikes, what)
    expected = (*net.spec.input_shape, net.spec.steps)
    if spikes.ndim < 2 or tuple(spikes.shape[1:]) != expected:
        raise DataError(f"{what}: shape {tuple(spikes.shape)} does not match the network "
                        f"{net.spec.name}, which takes (N, {', '.join(map(str, expected))})")
    return spikes


def judge(net: SpikingNetwork, spikes: np.ndarray, labels: np.ndarray, targets: np.ndarray,
          batch_size: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """Predictions (N,) (-1 = tie or silence) and attack success (N,) of ``net`` on ``spikes``.

    Args:
        spikes: (N, *input_shape, T) binary.
        labels, targets: (N,) true classes and targets (-1 = untargeted).
    """
    pred = predict(output_counts(net, spikes, batch_size))
    return pred, is_success(pred, labels, targets)
