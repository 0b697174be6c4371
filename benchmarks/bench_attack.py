"""Attack throughput: the batched attack against the same code path one sample at a time.

The baseline is what the paper's reference code does (one sample per forward/backward pass):
:func:`harness.attacks.craft` with ``batch_size=1``, on the same loaded model, the same inputs,
settings, seed and torch thread count. Both modes of the attack are timed:

- dense: the paper's settings (G2S + RSF, K = 25, gamma = 0.05, eta = 1);
- sparse: step scale eta = 0.05, K = 100, then the reduction pass
  (../shared/notes/attack-spec.md, "Measured here").

Goals: >= 10x faster per sample, success rates within 3 percentage points (a sample's result
does not depend on its batch, so they should be equal).
"""
from __future__ import annotations

import inspect

import numpy as np
import torch

from harness.attacks import AttackConfig, craft
from harness.runs import open_run

from .common import Row, interleaved, rate_row, speedup_row
from .plan import SEED, Setup

NAME = "attack"
MIN_SPEEDUP = 10.0
MAX_RATE_GAP_POINTS = 3.0
MODES = {"G2S+RSF attack": AttackConfig(seed=SEED),
         "sparse attack (eta 0.05, reduction)": AttackConfig(eta=0.05, iterations=100, reduce=True, seed=SEED)}


def run(setup: Setup) -> list[Row]:
    """Time both modes batched and one at a time; two rows each (time per sample, success rate)."""
    run_ = open_run(setup.model(setup.plan.attack_model))
    net, test = run_.net, run_.test(setup.plan.attack_samples, setup.nmnist)
    return [row for label, config in MODES.items()
            for row in compare(net, test.spikes, test.labels, config, label, setup)]


def compare(net, spikes: np.ndarray, labels: np.ndarray, config: AttackConfig, label: str, setup: Setup) -> list[Row]:
    """Craft ``config`` on (N, *shape, T) ``spikes`` batched and with batch size 1, in turns."""
    n, progress = len(spikes), setup.progress
    timings = interleaved(
        {"batched": lambda: craft(net, spikes, labels, config, progress=progress),
         "one at a time": lambda: craft(net, spikes, labels, config, batch_size=1, progress=progress)},
        setup.plan.repeats, setup.plan.budget_s)
    ours, base = timings["batched"], timings["one at a time"]
    ours_stats, base_stats = ours.result.stats(), base.result.stats()
    info = {"samples": n, "batch_size": inspect.signature(craft).parameters["batch_size"].default,
            "torch_threads": torch.get_num_threads(), "config": config.to_dict(),
            "batched": {**ours.info(), **_summary(ours_stats)},
            "one_at_a_time": {**base.info(), **_summary(base_stats)},
            "identical_examples": bool(np.array_equal(ours.result.adversarial, base.result.adversarial))}
    return [speedup_row(NAME, f"{label}, time per sample", ours.median / n, base.median / n, MIN_SPEEDUP, info),
            rate_row(NAME, f"{label}, success rate", ours_stats["success_rate"], base_stats["success_rate"],
                     MAX_RATE_GAP_POINTS)]


def _summary(stats: dict) -> dict:
    keys = ("n_correct_before", "n_success", "success_rate", "median_l0", "mean_iterations")
    return {key: stats[key] for key in keys}
