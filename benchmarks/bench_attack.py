"""Attack throughput: the batched attack against the same code path one sample at a time.

The baseline is what the paper's reference code does (one sample per forward/backward pass):
:func:`harness.attacks.craft` with ``batch_size=1``, on the same loaded model, the same inputs,
settings, seed and torch thread count. Both modes of the attack are timed:

- dense: the paper's settings (G2S + RSF, K = 25, gamma = 0.05, eta = 1);
- sparse: step scale eta = 0.05, K = 100, then the reduction pass
  (../shared/notes/attack-spec.md, "Measured here").

Goals: >= 10x faster per sample, success rates within 3 percentage points (a sample's result
does not depend on its batch, so they should be equal).

The floor (dense mode): the batched attack's time per row-pass (its seconds over the rows all
its forward passes carried) against one plain batched SLAYER forward + input-gradient pass of
the same rows (PyTorch's default kernels, no batch invariance, no attack bookkeeping); goal
<= 1.5x.
"""
from __future__ import annotations

import inspect

import numpy as np
import torch

from harness.attacks import AttackConfig, craft
from harness.models import make_loss
from harness.runs import open_run

from .common import BenchmarkFailure, Goal, Row, interleaved, rate_row, speedup_row
from .plan import SEED, Setup

NAME = "attack"
MIN_SPEEDUP = 10.0
MAX_RATE_GAP_POINTS = 3.0
MAX_FLOOR_RATIO = 1.5
FLOOR_MODE = "G2S+RSF attack"
MODES = {"G2S+RSF attack": AttackConfig(seed=SEED),
         "sparse attack (eta 0.05, reduction)": AttackConfig(eta=0.05, iterations=100, reduce=True, seed=SEED)}


def run(setup: Setup) -> list[Row]:
    """Time both modes batched and one at a time; two rows each (time per sample, success rate)."""
    run_ = open_run(setup.model(setup.plan.attack_model))
    net, test = run_.net, run_.test(setup.plan.attack_samples, setup.nmnist)
    rows = [row for label, config in MODES.items()
            for row in compare(net, test.spikes, test.labels, config, label, setup)]
    return rows + [floor(net, test.spikes, test.labels, MODES[FLOOR_MODE], setup)]


class _RowCounter:
    """Counts the rows that pass through ``net``'s forward while the context is open."""

    def __init__(self, net):
        self.net, self.rows = net, 0

    def __enter__(self) -> "_RowCounter":
        self._hook = self.net.register_forward_hook(lambda _m, args, _out: self._add(args[0]))
        return self

    def _add(self, x) -> None:
        self.rows += len(x)

    def __exit__(self, *exc) -> None:
        self._hook.remove()


def floor(net, spikes: np.ndarray, labels: np.ndarray, config: AttackConfig, setup: Setup) -> Row:
    """The batched attack's time per row-pass against one plain SLAYER forward+backward per row."""
    x, y = torch.as_tensor(spikes, dtype=torch.float32), torch.as_tensor(labels)
    loss = make_loss(net.spec, config.loss)

    def plain_pass():
        xi = x.clone().requires_grad_(True)
        return torch.autograd.grad(loss(net(xi), y), xi)[0]

    with _RowCounter(net) as counter:
        craft(net, spikes, labels, config)
    row_passes = counter.rows
    timings = interleaved({"attack": lambda: craft(net, spikes, labels, config), "plain": plain_pass},
                          setup.plan.repeats, setup.plan.budget_s)
    ours, base = timings["attack"].median / row_passes, timings["plain"].median / len(x)
    info = {"samples": len(x), "row_passes": row_passes, "attack": timings["attack"].info(),
            "plain_pass": timings["plain"].info(), "config": config.to_dict()}
    return Row(NAME, f"{FLOOR_MODE}, time per row-pass vs plain SLAYER fwd+bwd", "ms/row", ours * 1e3,
               base * 1e3, ours / base, "x slower", Goal("ratio", "<=", MAX_FLOOR_RATIO), info)


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
    if not info["identical_examples"]:
        raise BenchmarkFailure(f"{label}: batched and one-at-a-time adversarial spikes differ "
                               f"(the attack's results must not depend on the batch size)")
    return [speedup_row(NAME, f"{label}, time per sample", ours.median / n, base.median / n, MIN_SPEEDUP, info),
            rate_row(NAME, f"{label}, success rate", ours_stats["success_rate"], base_stats["success_rate"],
                     MAX_RATE_GAP_POINTS)]


def _summary(stats: dict) -> dict:
    keys = ("n_correct_before", "n_success", "success_rate", "median_l0", "mean_iterations")
    return {key: stats[key] for key in keys}
