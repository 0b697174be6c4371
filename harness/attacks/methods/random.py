"""Random flips at the per-row L0 of another attack in the same run (the baseline)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from ...errors import ConfigError
from ..interface import Attack, Job
from ..runner import run_random_baseline


class RandomFlips(Attack):
    name, summary, needs = "random", "random flips at the per-row L0 of the attack --match ID", "record"
    settings = frozenset({"match", "seed"})

    def run(self, job: Job, values: dict[str, Any]) -> Path:
        if not values.get("match"):
            raise ConfigError("--method random needs --match ID (the attack whose per-sample L0 it copies)")
        return run_random_baseline(job.run_dir, values["match"], seed=values.get("seed", 0), batch_size=job.batch_size,
                                   force=job.force, progress=job.progress, data_path=job.data_path)
