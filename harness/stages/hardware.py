"""Hardware figures of a run's replays: the neurocore mapping, absolute per-inference figures, NeuroBench.

For every profile with a ``[chip]`` table and a clean replay (``device/<profile>/clean.h5``), from
the replays' per-neuron spike counts and per-core synaptic operations per step
(:mod:`harness.device.workload`):

- ``mapping``: cores, chips, utilisation and per-layer cores (:func:`~harness.device.mapping.mapping_summary`),
  or ``mapping_error`` when the network does not fit the chip;
- ``clean`` and ``attacks[<id>]``: means per inference of spikes per layer, synaptic operations,
  energy in joules (per-core energy plus mesh hops where the chip has a hop energy), mesh traffic,
  the busiest core's load and the latency proxy (every core advances in lock-step: the busiest
  core per step sets the step time), and per-core means;
- ``neurobench``: synaptic operations (effective ACs and dense) and connection sparsity of the
  model on the clean test split (NeuroBench's definitions), with the device's activation sparsity
  and the weights' and biases' bytes (:func:`~harness.device.workload.neurobench_metrics` says how
  they differ from NeuroBench's ActivationSparsity and Footprint).

The profile is rebuilt from the settings stored in the replay itself (``profile_config``), so the
figures describe exactly the hardware the replay ran on.
"""
from __future__ import annotations

import json
from typing import Any

from ..device.mapping import map_network, mapping_summary
from ..device.netx_reader import read_network
from ..device.profiles import Profile, profile_from_dict
from ..device.workload import inference_figures, neurobench_metrics
from ..errors import DeviceError
from ..runs import Replay, RunArtifacts

#: Datasets a replay needs for these figures (written by replays since the neurocore recording).
RECORDED = ("neuron_counts", "core_synops")


def replay_profile(replay: Replay) -> Profile | None:
    """The hardware profile a replay ran on, from its ``profile_config`` attribute (None: a file without it,
    written by another tool)."""
    config = replay.attrs.get("profile_config")  # read_h5 decodes JSON attributes already
    if config is None:
        return None
    return profile_from_dict(json.loads(config) if isinstance(config, str) else config,
                             f"{replay.attrs.get('profile')} (replay)")


def hardware_entries(art: RunArtifacts) -> dict[str, dict[str, Any]]:
    """profile -> hardware figures (module docstring) for every replayed profile that has a chip."""
    out = {}
    for name, replays in art.device.items():
        clean = replays["clean"]
        profile = replay_profile(clean)
        if profile is None or profile.chip is None or not all(key in clean.arrays for key in RECORDED):
            continue
        network = read_network(art.run.network_file, tuple(art.run.spec.input_shape))
        steps = int(clean.attrs["steps"])
        try:
            mapping = map_network(network, profile.chip)
        except DeviceError as exc:
            out[name] = {"mapping": None, "mapping_error": str(exc), "clean": None, "attacks": {}, "neurobench": None}
            continue

        def figures(replay: Replay) -> dict[str, Any]:
            return inference_figures(mapping, replay.arrays["neuron_counts"], replay.arrays["core_synops"],
                                     profile.energy, steps)

        out[name] = {"mapping": mapping_summary(mapping), "mapping_error": None, "clean": figures(clean),
                     "attacks": {i: figures(r) for i, r in replays.items() if i != "clean" and RECORDED[0] in r.arrays},
                     "neurobench": neurobench_metrics(network, clean.arrays["neuron_counts"], steps)}
    return out
