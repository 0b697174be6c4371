"""Transfer: judge the adversarial set of another run's attack file on this run's model."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from ...errors import ConfigError
from ..interface import Attack, Job
from ..runner import run_transfer


class Transfer(Attack):
    name, summary, needs = "transfer", "judge the set of --transfer-from FILE.h5 (another run's attack)", "record"
    settings = frozenset({"transfer_from"})

    def run(self, job: Job, values: dict[str, Any]) -> Path:
        if not values.get("transfer_from"):
            raise ConfigError("--method transfer needs --transfer-from FILE.h5")
        return run_transfer(job.run_dir, values["transfer_from"], force=job.force)
