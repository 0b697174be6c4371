"""Open a run directory: the one entry point for stages and scripts.

``open_run(path)`` returns a :class:`Run`: the run directory's paths (it is a
:class:`~harness.store.RunDir`) plus everything the stages read from it, each loaded once and
only when asked for::

    from harness.runs import open_run
    run = open_run("runs/nmnist")
    run.card["test_accuracy"]          # model/card.json (its path: run.card_file)
    run.net                            # the trained SLAYER network (model/checkpoint.pt)
    test = run.test()                  # the test split as fed to the model: test.spikes, test.labels
    record = run.attack(run.attack_ids()[0])   # attacks/<id>.h5 as an AttackRecord
    replay = run.replay("loihi2-fixed", "clean")   # device/<profile>/<id>.h5: .arrays, .attrs

Nothing else in the harness loads ``checkpoint.pt`` or reads ``card.json`` (a test checks it),
so what a run *is* is defined here alone. Layout: docs/artifacts.md.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .data import SpikeSet, load_dataset
from .errors import ConfigError, StageMissing
from .records import AttackRecord
from .store import RunDir, digest_arrays, digest_file, read_h5, read_json

#: What to run when a run directory has no model yet.
TRAIN_HINT = "harness train --run {root} --model MODEL"


@dataclass
class Replay:
    """One device artifact ``device/<profile>/<id>.h5``: its datasets and root attributes."""

    arrays: dict[str, np.ndarray]
    attrs: dict[str, Any]


class Run(RunDir):
    """A run directory; see the module docstring.

    Every property is loaded on first use and kept: the card, the network, the test split per
    (n, data path). A missing artifact raises StageMissing naming the command that makes it,
    when it is first needed. Writing stays with the stages (train, attack, replay, report).
    """

    # ---------------------------------------------------------------- the model
    @functools.cached_property
    def card(self) -> dict[str, Any]:
        """model/card.json (spec, seed, data set, accuracy, provenance)."""
        return read_json(self.require(self.card_file, TRAIN_HINT.format(root=self.root)))

    @functools.cached_property
    def net(self):
        """The model in eval mode: a :class:`harness.models.SpikingNetwork` trained here, or the
        :class:`harness.netx_twin.NetxTwin` of an imported network (card ``kind`` "imported")."""
        checkpoint = self.require(self.checkpoint, TRAIN_HINT.format(root=self.root))
        if self.card_file.exists() and self.imported:
            from .netx_twin import load_twin

            return load_twin(checkpoint)
        from .models import load_checkpoint

        return load_checkpoint(checkpoint)

    @property
    def spec(self):
        """The model's :class:`harness.models.ModelSpec`."""
        return self.net.spec

    @functools.cached_property
    def model_digest(self) -> str:
        """sha256 of ``model/checkpoint.pt``: the model an attack or a comparison was made with."""
        return digest_file(self.require(self.checkpoint, TRAIN_HINT.format(root=self.root)))

    @property
    def network_file(self) -> Path:
        """``model/network.net`` (netx HDF5), which the device replays."""
        return self.require(self.network, TRAIN_HINT.format(root=self.root))

    @property
    def seed(self) -> int:
        return int(self.card.get("seed", 0))

    @property
    def imported(self) -> bool:
        """The model was imported (``harness import``), not trained here."""
        return self.card.get("kind") == "imported"

    # ---------------------------------------------------------------- data
    def data_path(self, data_path: str | Path | None = None) -> str | None:
        """The data folder the run reads: ``data_path`` when given, else the card's (None: embedded)."""
        return str(data_path) if data_path is not None else self.card.get("dataset", {}).get("path")

    def test(self, n: int | None = None, data_path: str | Path | None = None) -> SpikeSet:
        """The test split, coded exactly as in training (the card's data set, T, dt and seed).

        Args:
            n: the first ``n`` samples (None: all).
            data_path: the N-MNIST folder when it moved since training (default: the card's).
        """
        if n is not None and n < 1:
            raise ConfigError(f"--n must be >= 1, got {n}")
        return self._split("test", n, self.data_path(data_path))

    @functools.lru_cache(maxsize=4)
    def _split(self, split: str, n: int | None, data_path: str | None) -> SpikeSet:
        if self.imported:  # the data the import was proven on, kept in model/test.h5
            return self._imported_test().subset(slice(0, n))
        data = self.card["spec"]["data"]
        return load_dataset(data["dataset"], split, int(data["steps"]), float(data.get("dt_ms", 1.0)),
                            path=data_path, seed=self.seed, limit=n, holdout=int(data.get("holdout", 0)))

    def _imported_test(self) -> SpikeSet:
        arrays, attrs = read_h5(self.require(self.model_dir / "test.h5", f"harness import --run {self.root} ..."),
                                "test-split")
        meta = attrs["dataset"]
        return SpikeSet(arrays["spikes"], arrays["labels"], dataset=meta["dataset"], encoding=meta["encoding"],
                        dt_ms=float(meta["dt_ms"]), sensor_size=tuple(meta["sensor_size"]), seed=meta.get("seed"))

    # ---------------------------------------------------------------- attacks
    def attack(self, attack_id: str) -> AttackRecord:
        """``attacks/<attack_id>.h5`` as an :class:`harness.records.AttackRecord`."""
        return AttackRecord.load(self._attack_file(attack_id))

    def attack_arrays(self, attack_id: str) -> dict[str, np.ndarray]:
        """The datasets of ``attacks/<attack_id>.h5`` as they are: what a replay needs (clean,
        adversarial, labels, targets, sample_index), also from a file another tool wrote."""
        return read_h5(self._attack_file(attack_id), "attack")[0]

    def _attack_file(self, attack_id: str) -> Path:
        available = ", ".join(self.attack_ids()) or "none yet"
        return self.require(self.attack_path(attack_id), f"harness attack --run {self.root} (attacks in this run: "
                                                          f"{available})")

    @functools.cached_property
    def attacks(self) -> dict[str, Any]:
        """Every attack of the run: id -> AttackRecord (read on first use)."""
        return {attack_id: self.attack(attack_id) for attack_id in self.attack_ids()}

    # ---------------------------------------------------------------- device outputs
    def replay(self, profile: str, input_id: str) -> Replay:
        """``device/<profile>/<input_id>.h5`` ("clean" or an attack id)."""
        flag = " --clean" if input_id == "clean" else f" --attack {input_id}"
        path = self.require(self.device(profile, input_id), f"harness replay --run {self.root} --profile {profile}{flag}")
        return Replay(*read_h5(path, "device"))

    def replayed_profiles(self) -> list[str]:
        """Profiles with a clean replay in ``device/``."""
        return sorted(p.parent.name for p in (self.root / "device").glob("*/clean.h5"))

    # ---------------------------------------------------------------- everything, for summaries
    def artifacts(self, attack_ids: list[str] | None = None, profiles: list[str] | None = None,
                  ann: list[str | Path] | None = None) -> "RunArtifacts":
        """The card, attacks, replays and ANN comparisons a summary or report reads.

        Args:
            attack_ids: the attacks to read (default: every ``attacks/*.h5``).
            profiles: the device profiles to read (default: every ``device/<profile>/`` holding a
                clean replay). An attack without a replay on a profile is left out of that profile.
            ann: the comparison files to read (default: every ``ann/comparison_*.json``).
        Raises:
            StageMissing: a requested attack or clean replay is missing (the message names the
                command that makes it).
        """
        ids = self.attack_ids() if attack_ids is None else list(attack_ids)
        attacks = {i: self.attack(i) for i in ids}
        device = {}
        for profile in self.replayed_profiles() if profiles is None else profiles:
            wanted = ["clean"] + [i for i in ids if self.device(profile, i).exists()]
            device[profile] = {i: self.replay(profile, i) for i in wanted}
        files = sorted((self.root / "ann").glob("comparison_*.json")) if ann is None else [Path(p) for p in ann]
        return RunArtifacts(run=self, card=self.card, attacks=attacks, device=device,
                            ann={p.stem: read_json(p) for p in files})


@dataclass
class RunArtifacts:
    """Everything a summary or report reads from one run directory (:meth:`Run.artifacts`).

    Attributes:
        run: the run.
        card: model/card.json.
        attacks: attack id -> ``attacks/<id>.h5``.
        device: profile -> {"clean" or attack id -> ``device/<profile>/<id>.h5``}.
        ann: file stem -> an SNN vs ANN comparison ``ann/comparison_*.json``.
    """

    run: Run
    card: dict[str, Any]
    attacks: dict[str, Any] = field(default_factory=dict)
    device: dict[str, dict[str, Replay]] = field(default_factory=dict)
    ann: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.run.root.name

    @property
    def profiles(self) -> list[str]:
        return list(self.device)


def open_run(path: str | Path) -> Run:
    """The run directory at ``path`` (nothing is read until asked for)."""
    return Run(path)


def data_digest(data: SpikeSet) -> str:
    """sha256 of a split's spikes and labels exactly as fed to the model (a reuse identity part)."""
    return digest_arrays(np.asarray(data.spikes, dtype=np.uint8), np.asarray(data.labels, dtype=np.int64))


__all__ = ["Replay", "Run", "RunArtifacts", "StageMissing", "data_digest", "open_run"]
