"""SDA (``--method sda``): sparse gradient attack with single-flip tests (:mod:`harness.attacks.sda`)."""
from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ...metrics import predict
from ...records import AttackRecord
from ...runs import data_digest, open_run
from ...settings import SettingError, build, check_types, cli_flag
from ...train import output_counts
from ..interface import Attack, Job
from ..runner import _attrs, _cached_attack, _identity
from ..sda import sda_row
from ..threats import FLIP_THREATS, THREAT_TAGS


@dataclass(frozen=True)
class SdaConfig:
    """Settings of SDA: ``iterations`` N (>= 1, default 500), ``max_passes`` (forward passes per
    row, >= 1, default 20,000; the record states it), ``threat`` (:data:`FLIP_THREATS`), ``seed``
    (SDA draws nothing; kept in the id and record for the common interface)."""

    iterations: int = 500
    max_passes: int = 20000
    threat: str = "flips"
    seed: int = 0

    def __post_init__(self) -> None:
        check_types(self)
        for key in ("iterations", "max_passes"):
            if getattr(self, key) < 1:
                raise SettingError(key, f"must be >= 1, got {getattr(self, key)}")
        if self.seed < 0:
            raise SettingError("seed", f"must be >= 0, got {self.seed}")
        if self.threat not in FLIP_THREATS:
            raise SettingError("threat", f"unknown threat '{self.threat}' ({{key}}); available: "
                               f"{', '.join(FLIP_THREATS)}")


def sda_attack_id(config: SdaConfig, n: int) -> str:
    """``sda_u_k500_p20000[_add|_del]_mg_n100_s0``."""
    parts = ["sda", "u", f"k{config.iterations}", f"p{config.max_passes}"]
    parts += [THREAT_TAGS[config.threat]] if THREAT_TAGS[config.threat] else []
    return "_".join(parts + ["mg", f"n{n}", f"s{config.seed}"])


def sda_record(net, spikes: np.ndarray, labels: np.ndarray, config: SdaConfig, batch_size: int) -> AttackRecord:
    """Attack every row the model classifies correctly (others: 0 passes, clean)."""
    rows = len(spikes)
    pred_clean = predict(output_counts(net, spikes, batch_size))
    correct = pred_clean == labels
    adversarial = spikes.copy()
    keys = ("success", "l0_before_reduction", "l0_at_success", "iterations", "forward_passes", "backward_passes")
    cols = {key: np.zeros(rows, np.int64) for key in keys}
    cols["l0_at_success"][:] = -1
    for row in np.flatnonzero(correct):
        adversarial[row], stats = sda_row(net, spikes[row], int(labels[row]), config.iterations, config.max_passes,
                                          config.threat, batch_size)
        for key in keys:
            cols[key][row] = int(stats[key])
    success = cols["success"].astype(bool)
    pred_adv = np.where(success, predict(output_counts(net, adversarial, batch_size)), pred_clean)
    return AttackRecord(
        clean=spikes, adversarial=adversarial, labels=labels, targets=np.full(rows, -1, np.int64),
        sample_index=np.arange(rows), pred_clean=pred_clean, pred_adv=pred_adv, correct_before=correct,
        success=success, l0=(adversarial != spikes).reshape(rows, -1).sum(1).astype(np.int64),
        l0_before_reduction=cols["l0_before_reduction"], l0_at_success=cols["l0_at_success"],
        iterations=cols["iterations"], rsf_iterations=np.zeros(rows, np.int64),
        zero_grad_iterations=np.zeros(rows, np.int64), forward_passes=cols["forward_passes"],
        backward_passes=cols["backward_passes"], queries=np.zeros(rows, np.int64),
        attrs={"method": "sda", "params": asdict(config), "seed": config.seed, "max_passes": config.max_passes})


class Sda(Attack):
    name, needs = "sda", "gradients"
    summary = "SDA: top-k gradient flips tested one by one (FD), all that lower the margin applied"
    settings = frozenset({"iterations", "max_passes", "threat", "seed", "n"})

    def run(self, job: Job, values: dict[str, Any]) -> Path:
        config = build(SdaConfig, {k: v for k, v in values.items() if k != "n"}, cli_flag)
        run = open_run(job.run_dir)
        data = run.test(values.get("n"), job.data_path)
        path = run.attack_path(sda_attack_id(config, len(data)))
        params = {**asdict(config), "targeted": "", "n": len(data)}
        ident = _identity(run, params=params, data_sha256=data_digest(data))

        def compute() -> None:
            record = sda_record(run.net, data.spikes, data.labels, config, job.batch_size)
            _attrs(record, path.stem, params, run, data.metadata(), ident, method=self.name,
                   threat=config.threat).save(path)

        _cached_attack(path, ident, compute, job.force)
        return path
