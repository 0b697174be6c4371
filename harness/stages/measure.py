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


# ---------------------------------------------------------------- energy attacks on the device
def _ratio(adversarial: float, clean: float) -> float:
    """adversarial / clean, NaN when clean is 0."""
    return adversarial / clean if clean > 0 else float("nan")


def _synops(mapping, neuron_counts: np.ndarray, steps: int) -> tuple[np.ndarray, np.ndarray]:
    """(all (N,), own (N,)) synaptic operations per sample: all of them, and those driven by the
    network's own spikes (every core's but the first layer's, which the input stream drives)."""
    from ..device.workload import core_activity

    synops = core_activity(mapping, neuron_counts, steps).synops
    first = list(mapping.layers[0].cores)
    return synops.sum(axis=1), synops.sum(axis=1) - synops[:, first].sum(axis=1)


def energy_measurements(attack: Arrays, device: Arrays, mapping, energy, steps: int,
                        attrs: Mapping[str, object] | None = None) -> dict:
    """An energy attack (or its random baseline) replayed on one profile, relative to clean.

    Args:
        attack: ``attacks/<id>.h5`` arrays of an energy record (``activity_ratio``,
            ``correct_before``, ``l0``, ``labels``).
        device: ``device/<profile>/<id>.h5`` arrays with per-neuron and per-core records
            (``neuron_counts``, ``core_synops``, and the same under ``clean/``).
        mapping: the network's :class:`~harness.device.mapping.Mapping` on the profile's chip.
        energy: the profile's :class:`~harness.device.energy.EnergyModel`.
        steps: T, time steps per sample.
        attrs: the attack file's root attributes (for its enforced budget), optional.
    Returns:
        Over the rows the attack attacked (classified correctly before it, offline):
        ``n_rows``; ``budget`` (flips the attack enforced, None: none) and ``mean_l0``,
        ``median_l0`` (flips of the replayed examples); ``clean`` and ``adversarial``: the
        absolute per-inference figures of :func:`harness.device.workload.inference_figures`
        (energy_j in joules, synops, busiest_core_load and latency_proxy in synaptic
        operations, traffic in spike-hops) plus ``own_synops`` (synaptic operations driven by
        the network's own spikes, i.e. outside the first layer's cores); ``change``: adversarial
        / clean of each of energy_j, synops, own_synops, busiest_core_load, latency_proxy,
        traffic_spike_hops, and per layer spikes_per_layer; ``energy_rise`` = change of
        energy_j - 1; ``offline_activity_ratio`` (mean per-row ratio of the attack's objective
        in SLAYER, attrs ``energy.objective``) and ``device_activity_ratio`` (the same per-row
        mean on the device: own_synops for "hidden-synops", all synops for "synops"; equal on
        a bit-exact profile); ``objective``;
        ``prediction_kept`` (device prediction on the adversarial row = on its clean row),
        with ``n_prediction_kept`` and its 95% Wilson interval ``prediction_kept_ci``.
    Raises:
        DataError: the device file has no per-neuron or per-core records (profile without a
            [chip] table, or a network that does not fit it), or the attack is no energy record.
    """
    from ..device.workload import inference_figures
    from ..errors import DataError
    from ..stats import wilson
    from ..attacks.energy import activity_ratio

    missing = [name for name in ("neuron_counts", "core_synops", "clean/neuron_counts", "clean/core_synops")
               if name not in device]
    if missing:
        raise DataError(f"device output lacks {', '.join(missing)}: replay on a profile with a [chip] table "
                        "the network fits, with this harness version")
    if attack.get("activity_ratio") is None:
        raise DataError("not an energy attack record (no activity_ratio dataset)")
    rows = np.asarray(attack["correct_before"], dtype=bool)
    objective = (dict(attrs or {}).get("energy") or {}).get("objective", "hidden-synops")
    figures = {}
    for side, prefix in (("clean", "clean/"), ("adversarial", "")):
        counts, core_synops = device[f"{prefix}neuron_counts"][rows], device[f"{prefix}core_synops"][rows]
        figures[side] = inference_figures(mapping, counts, core_synops, energy, steps)
        figures[side].pop("per_core")
        every, own = _synops(mapping, counts, steps)
        figures[side]["own_synops"] = float(own.mean()) if len(own) else float("nan")
        figures[f"{side}_objective"] = every if objective == "synops" else own
    change = {key: _ratio(figures["adversarial"][key], figures["clean"][key])
              for key in ("energy_j", "synops", "own_synops", "busiest_core_load", "latency_proxy",
                          "traffic_spike_hops")}
    change["spikes_per_layer"] = [_ratio(a, c) for a, c in zip(figures["adversarial"]["spikes_per_layer"],
                                                               figures["clean"]["spikes_per_layer"])]
    kept = device["predictions"][rows] == device["clean/predictions"][rows]
    params = dict(attrs or {}).get("params", {}) or {}
    l0 = np.asarray(attack["l0"])[rows]
    return {"n_rows": int(rows.sum()), "budget": params.get("max_flips"),
            "mean_l0": float(l0.mean()) if len(l0) else float("nan"),
            "median_l0": float(np.median(l0)) if len(l0) else float("nan"),
            "objective": objective, "clean": figures["clean"], "adversarial": figures["adversarial"], "change": change,
            "energy_rise": change["energy_j"] - 1,
            "offline_activity_ratio": float(np.mean(attack["activity_ratio"][rows])) if rows.any() else float("nan"),
            "device_activity_ratio": float(np.mean(activity_ratio(figures["adversarial_objective"], figures["clean_objective"])))
            if rows.any() else float("nan"),
            "prediction_kept": rate(kept), "n_prediction_kept": int(kept.sum()),
            "prediction_kept_ci": list(wilson(int(kept.sum()), int(len(kept))))}
