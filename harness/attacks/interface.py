"""The attack interface: what every attack declares and the one call that runs it.

An attack is one class in one file of :mod:`harness.attacks.methods`, registered by name in
:mod:`harness.attacks.registry`. It declares:

- ``name``: the registry name (``--method NAME``, the record's ``method`` attribute);
- ``summary``: one line for ``harness attack --help``;
- ``needs``: one of :data:`NEEDS`: ``gradients`` (a differentiable network or twin),
  ``scores`` (output spike counts of candidate inputs, through an :class:`Oracle`), ``labels``
  (the predicted label only), ``record`` (another attack's record: baselines, transfer);
- ``threat``: one of :data:`THREATS` (``flips`` today);
- ``settings``: the setting names it takes (CLI flags without ``--``, TOML keys); any other
  given setting is refused ("--eta is not a setting of method 'random'", exit 2);
- ``run(job, values) -> Path``: attack under the job's budget and seed, write
  ``RUN_DIR/attacks/<id>.h5`` (an :class:`harness.records.AttackRecord` with attributes
  ``method`` and ``threat``) and return its path.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Protocol

import numpy as np

from ..errors import ConfigError
from ..settings import cli_flag

#: What an attack needs from the attacked network.
NEEDS = ("gradients", "scores", "labels", "record")
#: Threat models: which changes of the input an attack may make.
THREATS = ("flips", "add-only", "delete-only", "retime")


class Oracle(Protocol):
    """Answers queries of score- and decision-based attacks, from a device session or a proven twin."""

    def counts(self, spikes: np.ndarray) -> np.ndarray:
        """Output spike counts (N, classes) int64 of the inputs ``spikes`` (N, *shape, T) uint8."""


@dataclass(frozen=True)
class Job:
    """Where and how an attack runs (everything that is not one of its settings).

    Attributes:
        run_dir: the run directory whose model judges the examples.
        batch_size: rows per pass (results do not depend on it).
        force: recompute even when the file exists for the same inputs.
        progress: show a progress bar.
        data_path: N-MNIST directory when it moved since training.
        device: torch device of gradient passes ("cpu" or "cuda").
        oracle: answers queries (score- and decision-based attacks); None for the others.
    """

    run_dir: Path
    batch_size: int = 128
    force: bool = False
    progress: bool = True
    data_path: Path | None = None
    device: str = "cpu"
    oracle: Oracle | None = None


class Attack:
    """Base of every registered attack (see the module docstring)."""

    name: ClassVar[str]
    summary: ClassVar[str]
    needs: ClassVar[str]
    threat: ClassVar[str] = "flips"
    settings: ClassVar[frozenset[str]]

    def check(self, values: dict[str, Any], name_of=cli_flag) -> None:
        """Refuse a given setting this attack does not take (ConfigError naming it by ``name_of``)."""
        for key in values:
            if key not in self.settings:
                raise ConfigError(f"{name_of(key)} is not a setting of method '{self.name}'; it takes "
                                  f"{', '.join(sorted(map(name_of, self.settings))) or 'none'}")

    def run(self, job: Job, values: dict[str, Any]) -> Path:
        """Attack with the given settings ``values`` (checked by :meth:`check`); the record's path."""
        raise NotImplementedError
