"""SpikeFool (``--method spikefool``): SparseFool for binary inputs (:mod:`harness.attacks.spikefool`)."""
from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ...records import AttackRecord
from ...runs import data_digest, open_run
from ...settings import SettingError, build, check_types, cli_flag
from ..interface import Attack, Job
from ..invariant import batch_invariant
from ..rowwise import rowwise_record
from ..runner import _attrs, _cached_attack, _identity
from ..spikefool import spikefool_row
from ..threats import FLIP_THREATS, THREAT_TAGS


@dataclass(frozen=True)
class SpikeFoolConfig:
    """Settings of SpikeFool: ``iterations`` = outer loops (>= 1, default 20), ``deepfool_iterations``
    (>= 1, default 50), ``max_flips`` = the L0 cap of a success (>= 1, default 1,000, the authors'
    N-MNIST ``max_hamming_distance``), ``threat`` (:data:`FLIP_THREATS`), ``seed`` (SpikeFool draws
    nothing; kept in the id and record for the common interface)."""

    iterations: int = 20
    deepfool_iterations: int = 50
    max_flips: int = 1000
    threat: str = "flips"
    seed: int = 0

    def __post_init__(self) -> None:
        check_types(self)
        for key in ("iterations", "deepfool_iterations", "max_flips"):
            if getattr(self, key) < 1:
                raise SettingError(key, f"must be >= 1, got {getattr(self, key)}")
        if self.seed < 0:
            raise SettingError("seed", f"must be >= 0, got {self.seed}")
        if self.threat not in FLIP_THREATS:
            raise SettingError("threat", f"unknown threat '{self.threat}' ({{key}}); available: "
                               f"{', '.join(FLIP_THREATS)}")


def spikefool_attack_id(config: SpikeFoolConfig, n: int) -> str:
    """``spikefool_u_k20_d50_b1000[_add|_del]_sc_n100_s0``."""
    parts = ["spikefool", "u", f"k{config.iterations}", f"d{config.deepfool_iterations}", f"b{config.max_flips}"]
    parts += [THREAT_TAGS[config.threat]] if THREAT_TAGS[config.threat] else []
    return "_".join(parts + ["sc", f"n{n}", f"s{config.seed}"])


def spikefool_record(net, spikes: np.ndarray, labels: np.ndarray, config: SpikeFoolConfig,
                     batch_size: int) -> AttackRecord:
    """Attack every correctly classified row (:func:`harness.attacks.rowwise.rowwise_record`)."""

    def attack_row(clean: np.ndarray, label: int, _target: int) -> tuple[np.ndarray, dict]:
        return spikefool_row(net, clean, label, config.iterations, config.deepfool_iterations, config.max_flips,
                             config.threat)

    attrs = {"method": "spikefool", "params": asdict(config), "seed": config.seed, "max_flips": config.max_flips}
    with batch_invariant(net):
        return rowwise_record(net, spikes, labels, attack_row, attrs, batch_size)


class SpikeFool(Attack):
    name, needs = "spikefool", "gradients"
    summary = "SpikeFool: SparseFool (DeepFool boundary + linear solver) rounded to binary spikes"
    settings = frozenset({"iterations", "deepfool_iterations", "max_flips", "threat", "seed", "n"})

    def run(self, job: Job, values: dict[str, Any]) -> Path:
        config = build(SpikeFoolConfig, {k: v for k, v in values.items() if k != "n"}, cli_flag)
        run = open_run(job.run_dir)
        data = run.test(values.get("n"), job.data_path)
        path = run.attack_path(spikefool_attack_id(config, len(data)))
        params = {**asdict(config), "targeted": "", "n": len(data)}
        ident = _identity(run, params=params, data_sha256=data_digest(data))

        def compute() -> None:
            record = spikefool_record(run.net, data.spikes, data.labels, config, job.batch_size)
            _attrs(record, path.stem, params, run, data.metadata(), ident, method=self.name,
                   threat=config.threat).save(path)

        _cached_attack(path, ident, compute, job.force)
        return path
