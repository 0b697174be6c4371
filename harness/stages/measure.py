"""On-device measurements against the offline (SLAYER) model on the same inputs.

Inputs are plain arrays by name, as :func:`harness.store.read_h5` returns them from
``device/<profile>/<id>.h5`` and ``attacks/<id>.h5`` (docs/artifacts.md), or as
:meth:`DeviceOutput.arrays` gives them. Counting rules follow ../shared/notes/attack-spec.md:
the tie rule for predictions, and attack rates only over rows the judge classified correctly
on the clean input. An empty denominator gives NaN (null in JSON).

- :func:`offline_outputs`: SLAYER's output rasters, predictions and per-layer spike counts.
- :func:`clean_measurements`: device accuracy, prediction agreement and the fraction of
  identical output rasters vs SLAYER on the clean test split.
- :func:`attack_measurements`: device accuracy on clean and adversarial inputs, on-device
  attack success, transfer rate, and activity / energy under attack as ratios to clean.

Note: an attack crafted on the same quantized model and replayed on ``loihi2-fixed`` succeeds
on the device exactly where it succeeded offline (bit-exact replay): a consistency check, not
a finding. Findings come from the float and noisy profiles and from transfer sets.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import numpy as np

from ..records import is_success
from ..metrics import accuracy, predict, rate

Arrays = Mapping[str, np.ndarray]


@dataclass
class OfflineOutputs:
    """SLAYER's outputs on N inputs: rasters (N, K, T) uint8, predictions (N,), layer_counts (N, L)."""

    rasters: np.ndarray
    predictions: np.ndarray
    layer_counts: np.ndarray


def offline_outputs(net, spikes: np.ndarray, batch_size: int = 256) -> OfflineOutputs:
    """Run the SLAYER network (``harness.models.SpikingNetwork``) on binary spikes (N, *shape, T)."""
    from ..train import forward_batches

    rasters, layer_counts = [], []
    for layers in forward_batches(net, spikes, batch_size):
        rasters.append(layers[-1].numpy().astype(np.uint8))
        layer_counts.append(np.stack([out.reshape(len(out), -1).sum(1).numpy() for out in layers], axis=1))
    rasters_all = np.concatenate(rasters)
    return OfflineOutputs(rasters=rasters_all, predictions=predict(rasters_all.sum(-1)),
                          layer_counts=np.concatenate(layer_counts).astype(np.int64))


def raster_exact(device_rasters: np.ndarray, offline_rasters: np.ndarray) -> np.ndarray:
    """(N,) bool: the device's output raster equals the offline one, every neuron and step."""
    if device_rasters.shape != offline_rasters.shape:
        raise ValueError(f"raster shapes differ: device {device_rasters.shape}, offline {offline_rasters.shape}")
    return (device_rasters == offline_rasters).reshape(len(device_rasters), -1).all(axis=1)


def clean_measurements(device: Arrays, offline: OfflineOutputs, labels: np.ndarray) -> dict[str, float | int]:
    """The clean test split on the device vs SLAYER (same samples, same order).

    Returns:
        accuracy (device), offline_accuracy, agreement (device prediction = offline
        prediction), raster_exact (fraction of identical output rasters), n_samples.
    """
    pred = device["predictions"]
    return {"accuracy": accuracy(pred, labels), "offline_accuracy": accuracy(offline.predictions, labels),
            "agreement": float(np.mean(pred == offline.predictions)) if len(pred) else float("nan"),
            "raster_exact": float(np.mean(raster_exact(device["output_rasters"], offline.rasters)))
            if len(pred) else float("nan"),
            "n_samples": int(len(pred))}


def _change(adversarial: np.ndarray, clean: np.ndarray) -> float:
    """sum(adversarial) / sum(clean), NaN when the clean sum is 0."""
    total = float(np.sum(clean))
    return float(np.sum(adversarial)) / total if total > 0 else float("nan")


def attack_measurements(attack: Arrays, device: Arrays) -> dict[str, float | int | list]:
    """One attack replayed on one profile.

    Args:
        attack: ``attacks/<id>.h5`` arrays (labels, targets, success, correct_before, ...).
        device: ``device/<profile>/<id>.h5`` arrays: the adversarial replay, and the replay of
            the attack's own clean rows under ``clean/`` (same row order).
    Returns:
        clean_accuracy, adversarial_accuracy: device accuracy on the attack's clean and
            adversarial rows; n_correct_clean: rows the device classified correctly when clean;
        success_rate: device success over those rows; transfer_rate: of the offline successes
            among those rows, the share that also succeed on the device; n_offline_success;
        activity_change, layer_activity_change (one per layer), synops_change,
            energy_change: adversarial / clean sums over the rows the device classified
            correctly when clean.
    """
    labels, targets = attack["labels"], attack["targets"]
    clean_pred, adv_pred = device["clean/predictions"], device["predictions"]
    correct = clean_pred == labels
    success = is_success(adv_pred, labels, targets) & correct
    offline_success = attack["success"].astype(bool) & correct
    adv_layers, clean_layers = device["layer_counts"][correct], device["clean/layer_counts"][correct]
    return {
        "clean_accuracy": accuracy(clean_pred, labels), "adversarial_accuracy": accuracy(adv_pred, labels),
        "n_rows": int(len(labels)), "n_correct_clean": int(correct.sum()),
        "success_rate": rate(success, correct), "n_offline_success": int(offline_success.sum()),
        "transfer_rate": rate(success, offline_success),
        "activity_change": _change(adv_layers, clean_layers),
        "layer_activity_change": [_change(adv_layers[:, i], clean_layers[:, i]) for i in range(adv_layers.shape[1])],
        "synops_change": _change(device["synops"][correct], device["clean/synops"][correct]),
        "energy_change": _change(device["energy_j"][correct], device["clean/energy_j"][correct]),
    }
