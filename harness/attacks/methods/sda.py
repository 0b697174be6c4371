"""SDA (``--method sda``): sparse gradient attack with single-flip tests (:mod:`harness.attacks.sda`)."""
from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ...models import ATTACK_SURROGATES, attack_surrogate
from ...records import AttackRecord
from ...runs import data_digest, open_run
from ...settings import SettingError, build, check_types, cli_flag
from ..interface import Attack, Job
from ..invariant import batch_invariant
from ..runner import _MODE_TAGS, _attrs, _cached_attack, _identity
from ..sda import sda_row
from ..rowwise import rowwise_record
from ..threats import FLIP_THREATS, THREAT_TAGS

@dataclass(frozen=True)
class SdaConfig:
    """Settings of SDA: ``iterations`` N (>= 1, default 500), ``max_passes`` (forward passes per
    row, >= 1, default 20,000; the record states it), ``threat`` (:data:`FLIP_THREATS`),
    ``surrogate`` ("pdsg", the paper's, by default; "model": the network's own), ``seed`` (draws
    the target of ``--targeted random``; SDA itself draws nothing)."""

    iterations: int = 500
    max_passes: int = 20000
    threat: str = "flips"
    surrogate: str = "pdsg"
    seed: int = 0

    def __post_init__(self) -> None:
        check_types(self)
        for key in ("iterations", "max_passes"):
            if getattr(self, key) < 1:
                raise SettingError(key, f"must be >= 1, got {getattr(self, key)}")
        if self.seed < 0:
            raise SettingError("seed", f"must be >= 0, got {self.seed}")
        for key, allowed in (("threat", FLIP_THREATS), ("surrogate", ATTACK_SURROGATES)):
            if getattr(self, key) not in allowed:
                raise SettingError(key, f"unknown {key} '{getattr(self, key)}' ({{key}}); available: "
                                   f"{', '.join(allowed)}")


def sda_attack_id(config: SdaConfig, n: int, targeted: str | None = None) -> str:
    """``sda_u_k500_p20000[_add|_del][_model]_sc_n100_s0`` (``sc``: the class-score margin)."""
    parts = ["sda", _MODE_TAGS[targeted], f"k{config.iterations}", f"p{config.max_passes}"]
    parts += [THREAT_TAGS[config.threat]] if THREAT_TAGS[config.threat] else []
    parts += ["model"] if config.surrogate == "model" else []
    return "_".join(parts + ["sc", f"n{n}", f"s{config.seed}"])


def sda_record(net, spikes: np.ndarray, labels: np.ndarray, config: SdaConfig, batch_size: int,
               targeted: str | None = None) -> AttackRecord:
    """Attack every correctly classified (sample, target) row (:func:`harness.attacks.rowwise.rowwise_record`)."""

    def attack_row(clean: np.ndarray, label: int, target: int) -> tuple[np.ndarray, dict]:
        return sda_row(net, clean, label, config.iterations, config.max_passes, config.threat, batch_size, target)

    attrs = {"method": "sda", "params": asdict(config), "seed": config.seed, "max_passes": config.max_passes}
    with batch_invariant(net), attack_surrogate(net, config.surrogate):
        return rowwise_record(net, spikes, labels, attack_row, attrs, batch_size, targeted, config.seed)


class Sda(Attack):
    name, needs = "sda", "gradients"
    summary = "SDA: top-k gradient flips tested one by one (FD), all that lower the margin applied"
    settings = frozenset({"iterations", "max_passes", "threat", "surrogate", "seed", "targeted", "n"})

    def run(self, job: Job, values: dict[str, Any]) -> Path:
        config = build(SdaConfig, {k: v for k, v in values.items() if k not in ("n", "targeted")}, cli_flag)
        targeted = values.get("targeted")
        run = open_run(job.run_dir)
        data = run.test(values.get("n"), job.data_path)
        path = run.attack_path(sda_attack_id(config, len(data), targeted))
        params = {**asdict(config), "targeted": targeted or "", "n": len(data)}
        ident = _identity(run, params=params, data_sha256=data_digest(data))

        def compute() -> None:
            record = sda_record(run.net, data.spikes, data.labels, config, job.batch_size, targeted)
            _attrs(record, path.stem, params, run, data.metadata(), ident, method=self.name,
                   threat=config.threat).save(path)

        _cached_attack(path, ident, compute, job.force)
        return path
