"""Attack throughput: the batched attack against the same code path one sample at a time.

The baseline is what the paper's reference code does (one sample per forward/backward pass):
:func:`harness.attacks.craft` with ``batch_size=1``, on the same loaded model, the same rows,
settings, seed and torch thread count. Both modes of the attack are timed:

- dense: the paper's settings (G2S + RSF, K = 25, gamma = 0.05, eta = 1);
- sparse: step scale eta = 0.05, K = 100, then the reduction pass
  (../shared/notes/attack-spec.md, "Measured here").

The attacked set is a study's size: the first ``attack_samples`` recordings (300 in the full
plan, as in studies 2 and 3: the 100 test recordings, then training recordings), batched
(pools of 128, refilled as rows finish). One at a time, the attack costs the same per row
whatever else is attacked, so it is timed on a systematic subsample of
``attack_baseline_samples`` rows (every 3rd in the full plan, with
their own sample indices, hence their own generators): its time per sample estimates that of
the whole set (the mean iterations of both are in the JSON). The batched attack of that
subsample alone (100 rows: one pool, then its serial tail) is timed too, for the record.
A sample's result does not depend on its batch, so the subsample's spikes must be the same
bytes in all three runs, else the benchmark fails.

Goals: the whole set >= 10x faster per sample batched; success rates within 3 percentage
points (equal, as the spikes are).

The floor (dense mode): the batched attack's time per row-pass (its seconds over the rows all
its forward passes carried) against one plain batched SLAYER forward + input-gradient pass of
the same rows, in batches of 128 (PyTorch's default kernels, no batch invariance, no attack
bookkeeping); goal <= 1.5x.
"""
from __future__ import annotations

import inspect

import numpy as np
import torch

from harness.attacks import AttackConfig, craft
from harness.models import make_loss
from harness.runs import open_run

from .common import BenchmarkFailure, Goal, Row, interleaved, rate_row, speedup_row, test_then_train
from .plan import SEED, Setup

NAME = "attack"
MIN_SPEEDUP = 10.0
MAX_RATE_GAP_POINTS = 3.0
MAX_FLOOR_RATIO = 1.5
FLOOR_MODE = "G2S+RSF attack"
MODES = {"G2S+RSF attack": AttackConfig(seed=SEED),
         "sparse attack (eta 0.05, reduction)": AttackConfig(eta=0.05, iterations=100, reduce=True, seed=SEED)}


def run(setup: Setup) -> list[Row]:
    """Per mode: time per sample (whole set; subsample in one pool), success rate; then the floor."""
    plan = setup.plan
    run_dir = setup.model(plan.attack_model)
    net = open_run(run_dir).net
    spikes, labels = test_then_train(run_dir, setup.nmnist, plan.attack_samples, SEED)
    sub = subsample(len(spikes), plan.attack_baseline_samples)
    rows = [row for label, config in MODES.items()
            for row in compare(net, spikes, labels, sub, config, label, setup)]
    return rows + [floor(net, spikes, labels, MODES[FLOOR_MODE], setup)]


def subsample(rows: int, samples: int) -> np.ndarray:
    """Indices of a systematic subsample: every (rows // samples)-th row, ``samples`` of them."""
    return np.arange(0, rows, max(1, rows // samples))[:samples]


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
    batch = inspect.signature(craft).parameters["batch_size"].default

    def plain_pass():
        for start in range(0, len(x), batch):
            xi = x[start:start + batch].clone().requires_grad_(True)
            torch.autograd.grad(loss(net(xi), y[start:start + batch]), xi)

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


def compare(net, spikes: np.ndarray, labels: np.ndarray, sub: np.ndarray, config: AttackConfig, label: str,
            setup: Setup) -> list[Row]:
    """Craft ``config`` on (N, *shape, T) ``spikes`` batched, and on the rows ``sub`` batched
    and with batch size 1, in turns; check that ``sub``'s spikes are the same bytes in all three."""
    n, progress = len(spikes), setup.progress
    timings = interleaved(
        {"batched": lambda: craft(net, spikes, labels, config, progress=progress),
         "subsample batched": lambda: craft(net, spikes[sub], labels[sub], config, sample_index=sub,
                                            progress=progress),
         "one at a time": lambda: craft(net, spikes[sub], labels[sub], config, sample_index=sub, batch_size=1,
                                        progress=progress)},
        setup.plan.repeats, setup.plan.budget_s)
    ours, pool, base = timings["batched"], timings["subsample batched"], timings["one at a time"]
    identical = (np.array_equal(ours.result.adversarial[sub], base.result.adversarial)
                 and np.array_equal(pool.result.adversarial, base.result.adversarial))
    info = {"samples": n, "baseline_samples": len(sub), "batch_size": inspect.signature(craft).parameters["batch_size"].default,
            "torch_threads": torch.get_num_threads(), "config": config.to_dict(),
            "batched": {**ours.info(), **_summary(ours.result.stats())},
            "subsample_batched": {**pool.info(), **_summary(pool.result.stats())},
            "one_at_a_time": {**base.info(), **_summary(base.result.stats())},
            "identical_examples": identical}
    if not identical:
        raise BenchmarkFailure(f"{label}: batched and one-at-a-time adversarial spikes differ "
                               f"(the attack's results must not depend on the batch size)")
    per_sample = base.median / len(sub)
    return [speedup_row(NAME, f"{label}, time per sample ({n} rows)", ours.median / n, per_sample, MIN_SPEEDUP, info),
            Row(NAME, f"{label}, time per sample ({len(sub)} rows, one pool)", "ms/sample",
                pool.median / len(sub) * 1e3, per_sample * 1e3, per_sample / (pool.median / len(sub)), "x faster"),
            rate_row(NAME, f"{label}, success rate ({len(sub)} rows)", _success_rate(ours.result, sub),
                     _success_rate(base.result, np.arange(len(sub))), MAX_RATE_GAP_POINTS)]


def _success_rate(record, rows: np.ndarray) -> float:
    """Success over the correctly classified rows among ``rows`` of an attack record."""
    correct = record.correct_before[rows]
    return float(record.success[rows][correct].mean()) if correct.any() else float("nan")


def _summary(stats: dict) -> dict:
    keys = ("n_correct_before", "n_success", "success_rate", "median_l0", "mean_iterations")
    return {key: stats[key] for key in keys}
