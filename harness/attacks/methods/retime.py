"""Spike retiming (``--method retime``): keep every spike, move it in time (:mod:`harness.attacks.retime`)."""
from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ...errors import ConfigError
from ...metrics import predict
from ...records import AttackRecord
from ...runs import data_digest, open_run
from ...settings import SettingError, build, check_types, cli_flag
from ...train import output_counts
from ..interface import Attack, Job
from ..randomness import row_generators
from ..retime import DEFAULT_ITERATIONS, RetimeBudget, retime_row
from ..runner import _attrs, _cached_attack, _identity


@dataclass(frozen=True)
class RetimeConfig:
    """Settings of retiming: ``retime_budget`` (``inf:D``, ``l1:N`` or ``l0:N``, :class:`RetimeBudget`;
    default ``inf:1``), ``iterations`` (phi updates per row, >= 1; default 20 for inf, 40 for l1/l0),
    ``seed`` (the rows' random starts)."""

    retime_budget: str = "inf:1"
    iterations: int | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        check_types(self)
        try:
            RetimeBudget.parse(self.retime_budget, "{key}")
        except ConfigError as exc:
            braces = str(exc).replace("{", "{{").replace("}", "}}").replace("{{key}}", "{key}")
            raise SettingError("retime_budget", braces) from None
        if self.iterations is not None and self.iterations < 1:
            raise SettingError("iterations", f"must be >= 1, got {self.iterations}")
        if self.seed < 0:
            raise SettingError("seed", f"must be >= 0, got {self.seed}")

    @property
    def budget(self) -> RetimeBudget:
        return RetimeBudget.parse(self.retime_budget)

    @property
    def steps(self) -> int:
        """Phi updates per row (the budget kind's default when none was given)."""
        return self.iterations or DEFAULT_ITERATIONS[self.budget.kind]


def retime_attack_id(config: RetimeConfig, n: int) -> str:
    """``retime_inf2_k20_n100_s0``."""
    budget = config.budget
    return f"retime_{budget.kind}{budget.size}_k{config.steps}_n{n}_s{config.seed}"


def retime_record(net, spikes: np.ndarray, labels: np.ndarray, sample_index: np.ndarray, config: RetimeConfig,
                  batch_size: int) -> AttackRecord:
    """Retime every row the model classifies correctly (others: 0 passes, clean); one row at a time
    with its own generator, so a row's result never depends on the batch."""
    rows = len(spikes)
    budget = config.budget
    budget.check_steps(spikes.shape[-1], cli_flag("retime_budget"))
    pred_clean = predict(output_counts(net, spikes, batch_size))
    correct = pred_clean == labels
    adversarial = spikes.copy()
    keys = ("success", "iterations", "forward_passes", "backward_passes", "spikes_moved", "total_shift")
    cols = {key: np.zeros(rows, np.int64) for key in keys}
    generators = row_generators(config.seed, sample_index)
    for row in np.flatnonzero(correct):
        adversarial[row], stats = retime_row(net, spikes[row], int(labels[row]), budget, config.steps,
                                             generators[row])
        for key in keys:
            cols[key][row] = int(stats[key])
    success = cols["success"].astype(bool)
    pred_adv = np.where(success, predict(output_counts(net, adversarial, batch_size)), pred_clean)
    l0 = (adversarial != spikes).reshape(rows, -1).sum(1).astype(np.int64)
    return AttackRecord(
        clean=spikes, adversarial=adversarial, labels=labels, targets=np.full(rows, -1, np.int64),
        sample_index=np.asarray(sample_index, np.int64), pred_clean=pred_clean, pred_adv=pred_adv,
        correct_before=correct, success=success, l0=l0, l0_before_reduction=l0.copy(),
        l0_at_success=np.where(success, l0, -1), iterations=cols["iterations"],
        rsf_iterations=np.zeros(rows, np.int64), zero_grad_iterations=np.zeros(rows, np.int64),
        forward_passes=cols["forward_passes"], backward_passes=cols["backward_passes"],
        queries=np.zeros(rows, np.int64), spikes_moved=cols["spikes_moved"], total_shift=cols["total_shift"],
        attrs={"method": "retime", "params": asdict(config), "seed": config.seed,
               "retime_budget": str(budget)})


class Retime(Attack):
    name, needs, threat = "retime", "gradients", "retime"
    summary = "spike retiming: move spikes in time (inf:D each shift, l1:N total shift, l0:N spikes moved)"
    settings = frozenset({"retime_budget", "iterations", "seed", "n"})

    def run(self, job: Job, values: dict[str, Any]) -> Path:
        config = build(RetimeConfig, {k: v for k, v in values.items() if k != "n"}, cli_flag)
        run = open_run(job.run_dir)
        data = run.test(values.get("n"), job.data_path)
        config.budget.check_steps(data.spikes.shape[-1], cli_flag("retime_budget"))
        path = run.attack_path(retime_attack_id(config, len(data)))
        params = {**asdict(config), "targeted": "", "n": len(data)}
        ident = _identity(run, params=params, data_sha256=data_digest(data))

        def compute() -> None:
            record = retime_record(run.net, data.spikes, data.labels, np.arange(len(data)), config, job.batch_size)
            _attrs(record, path.stem, params, run, data.metadata(), ident, method=self.name,
                   threat=self.threat).save(path)

        _cached_attack(path, ident, compute, job.force)
        return path
