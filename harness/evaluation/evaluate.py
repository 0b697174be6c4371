"""``harness evaluate``: robust accuracy of a run's network, offline and on device profiles.

Writes ``RUN_DIR/evaluations/<id>.h5`` (kind ``evaluation``, docs/evaluation.md) once, atomically,
through :func:`harness.store.cached`: the file is kept when its identity (the model checkpoint,
the netx network, the test rows, the ensemble, the budgets, the profiles' settings and the
package versions) matches, so rerunning the same evaluation costs nothing.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
from dataclasses import replace
from pathlib import Path

import numpy as np

from ..attacks.oracles import TwinOracle, check_twin_proof, mismatched_rows
from ..attacks.interface import Job
from ..attacks.retime import RetimeBudget
from ..device.backend import device_session
from ..device.profiles import Profile, as_profile
from ..errors import ConfigError
from ..metrics import predict
from ..runs import Run, data_digest, open_run
from ..settings import folder_name
from ..signals import sigterm_as_interrupt
from ..store import cached, check_writable, digest_file, identity, write_h5
from ..train import output_counts
from ..versions import numeric_versions
from .adaptive import with_adaptive
from .cascade import Outcome, QueryOracle, Rows, run_cascade
from .ensemble import STAGE, Ensemble, load_ensemble
from .record import KIND, OFFLINE
from .retiming import parse_retime_budgets, retime_arrays, retime_verdicts

#: The budgets (flipped elements) of ``harness evaluate`` when none are given.
DEFAULT_BUDGETS = (10, 25, 50, 100, 200, 500)
FOLDER = "evaluations"


def parse_budgets(text: str, where: str = "--budgets") -> list[int]:
    """``"10,25,50"`` -> [10, 25, 50]: distinct integers >= 1, any order (returned sorted)."""
    parts = [p.strip() for p in str(text).split(",")]
    return check_budgets(parts, where)


def check_budgets(values, where: str) -> list[int]:
    """Budgets as a sorted list of distinct integers >= 1 (ConfigError naming ``where`` otherwise)."""
    try:
        budgets = [int(v) for v in values if not isinstance(v, bool) and str(v) == str(v).strip() and str(v)]
    except ValueError:
        budgets = []
    if len(budgets) != len(list(values)) or not budgets or min(budgets) < 1:
        raise ConfigError(f"{where}: budgets must be integers >= 1 (flipped elements), e.g. 10,25,50; got "
                          f"{','.join(map(str, values)) or 'nothing'}")
    if len(set(budgets)) != len(budgets):
        raise ConfigError(f"{where}: a budget appears twice ({','.join(map(str, values))})")
    return sorted(budgets)


class OfflineJudge:
    """The run's SLAYER model (tie rule: a tie or silence is -1)."""

    name, bit_exact = OFFLINE, False

    def __init__(self, net, batch_size: int = 256) -> None:
        self.net, self.batch_size = net, batch_size

    def predictions(self, spikes: np.ndarray, rows: np.ndarray) -> np.ndarray:
        return predict(output_counts(self.net, spikes, self.batch_size))


class DeviceJudge:
    """One device profile through one open device session; each input gets its row's noise key.
    The clean rows are replayed once (:meth:`clean`): the twin oracle's proof and the cascade's
    clean verdict share that replay."""

    def __init__(self, session, profile: Profile, progress: bool) -> None:
        self.session, self.name, self.progress = session, profile.name, progress
        self.bit_exact = (profile.select_tag == "fixed_pt" and not profile.noise.active
                          and profile.input_filter is None)  # a filtered profile is compared in .adaptive
        self._clean = None  # (the clean spikes, their DeviceOutput)

    def clean(self, rows: Rows):
        """The DeviceOutput of the evaluated clean rows (replayed on the first call only)."""
        if self._clean is None or self._clean[0] is not rows.clean:
            self._clean = rows.clean, self.session.replay(rows.clean, sample_keys=rows.index, progress=self.progress)
        return self._clean[1]

    def predictions(self, spikes: np.ndarray, rows: np.ndarray) -> np.ndarray:
        if self._clean is not None and spikes is self._clean[0]:
            return self._clean[1].predictions
        return self.session.replay(spikes, sample_keys=rows, progress=self.progress).predictions

    def counts(self, spikes: np.ndarray) -> np.ndarray:
        """(N, classes) int64 output spike counts: the device oracle of the ensemble's query attacks."""
        return self.session.replay(spikes).counts


def evaluation_id(ensemble: Ensemble, n: int, budgets: list[int], profiles: list[Profile],
                  retime_budgets: list[int] = ()) -> str:
    """``<ensemble>_n<N>_<8 hex>``: the hex digests the attacks' settings, budgets, profile names and
    the timing budgets (these only when given, so that earlier ids stay valid)."""
    parts = [ensemble.to_dict()["attacks"], budgets, [p.name for p in profiles]]
    spec = json.dumps(parts + ([list(retime_budgets)] if retime_budgets else []), sort_keys=True)
    return f"{folder_name(ensemble.name, 'ensemble name')}_n{n}_{hashlib.sha256(spec.encode()).hexdigest()[:8]}"


def evaluate(run_dir: str | Path, ensemble: str | Path | Ensemble = "quick", profiles=("loihi2-fixed",),
             budgets=DEFAULT_BUDGETS, n: int | None = None, *, batch_size: int = 128, progress: bool = True,
             device: str = "cpu", data_path=None, force: bool = False, retime_budgets=()) -> Path:
    """Evaluate the run's network and write ``RUN_DIR/evaluations/<id>.h5``; its path.

    Args:
        ensemble: a shipped ensemble name, a TOML path, or an :class:`Ensemble`.
        profiles: device profiles (names, paths or Profiles); each gets one device session.
        budgets: flip budgets (L0), checked by :func:`check_budgets`.
        n: the first ``n`` test rows (default all).
        retime_budgets: timing budgets D of the separate retiming curve (:mod:`.retiming`); () none.
        device: torch device of the gradient passes.
        force: recompute even when an evaluation with the same identity exists.
    """
    run = open_run(run_dir)
    ensemble = ensemble if isinstance(ensemble, Ensemble) else load_ensemble(ensemble)
    budgets = check_budgets(list(budgets), "--budgets")
    profiles = [as_profile(p) for p in profiles]
    if any(p.name == OFFLINE for p in profiles) or len({p.name for p in profiles}) != len(profiles):
        raise ConfigError(f"--profile: profile names must be distinct and not '{OFFLINE}'")
    data = run.test(n, data_path)
    rows = Rows(np.ascontiguousarray(data.spikes, dtype=np.uint8), np.asarray(data.labels, dtype=np.int64),
                np.arange(len(data.labels), dtype=np.int64))
    retime_budgets = parse_retime_budgets(",".join(map(str, retime_budgets))) if len(retime_budgets) else []
    for d in retime_budgets:
        RetimeBudget("inf", d).check_steps(rows.clean.shape[-1], "--retime-budgets")
    path = run.root / FOLDER / f"{evaluation_id(ensemble, len(rows.labels), budgets, profiles, retime_budgets)}.h5"
    ident = identity(stage="evaluation", model_sha256=run.model_digest, network_sha256=digest_file(run.network_file),
                     data_sha256=data_digest(data), ensemble=ensemble.to_dict(), budgets=budgets,
                     profiles=[p.to_dict() for p in profiles], versions=numeric_versions(),
                     **({} if device == "cpu" else {"torch_device": device}),
                     **({"retime_budgets": retime_budgets} if retime_budgets else {}))

    def compute() -> None:
        check_writable(path.parent)
        outcome, retimed = _judged(run, ensemble, rows, profiles, budgets, batch_size, progress, device, data_path,
                                   retime_budgets)
        _write(path, run, ensemble, rows, budgets, outcome, ident, retimed, retime_budgets)

    path.parent.mkdir(parents=True, exist_ok=True)
    with sigterm_as_interrupt():
        cached(path, ident, compute, force=force)
    return path


def _judged(run: Run, ensemble: Ensemble, rows: Rows, profiles: list[Profile], budgets: list[int],
            batch_size: int, progress: bool, device: str, data_path, retime_budgets: list[int]):
    """The cascade with the offline judge and one device session per profile (all stopped at the end),
    and the retiming verdicts ({} without timing budgets) judged through the same sessions."""
    with contextlib.ExitStack() as stack:
        judges = [OfflineJudge(run.net)]
        for profile in profiles:
            session = stack.enter_context(device_session(run.network_file, profile, expected_samples=len(rows.labels)))
            judges.append(DeviceJudge(session, profile, progress))
        oracle = _query_oracle(run, ensemble, judges, rows, batch_size, stack)
        options = dict(batch_size=batch_size, progress=progress, device=device, data_path=data_path)
        outcome = run_cascade(run, ensemble, rows, judges, budgets, query_oracle=oracle, **options)
        outcome = replace(outcome, query_oracle={**oracle.settings, "proof": oracle.proof} if oracle else None)
        for judge, profile in zip(judges[1:], profiles):  # a filtered profile: worst of adaptive, non-adaptive
            if profile.input_filter is not None:
                outcome = with_adaptive(outcome, run, ensemble, rows, OfflineJudge, judge, profile, budgets,
                                        query_oracle=_filtered_oracle(ensemble, judge), **options)
        if not retime_budgets:
            return outcome, {}
        job = Job(run.root, batch_size=batch_size, progress=progress, data_path=data_path, device=device)
        clean = {name: v.clean_correct for name, v in outcome.verdicts.items()}
        return outcome, retime_verdicts(rows, judges, clean, retime_budgets, job)


def _filtered_oracle(ensemble: Ensemble, judge: DeviceJudge) -> QueryOracle | None:
    """The query attacks' oracle in a filtered profile's adaptive cascade: the profile's own device
    session, whose filter is part of what a black-box attacker queries (None without query attacks)."""
    if not any(m.stage == STAGE["scores"] for m in ensemble.members):
        return None
    return QueryOracle(judge, {"oracle": "device", "profile": judge.name}, "the filtered profile's device session")


def _query_oracle(run: Run, ensemble: Ensemble, judges: list, rows: Rows, batch_size: int,
                  stack: contextlib.ExitStack) -> QueryOracle | None:
    """What the ensemble's score- and decision-based attacks query (None without one or without a
    profile): the twin (:class:`harness.attacks.oracles.TwinOracle`) where a proof says it answers
    as the first profile does, else that profile's device session. The proof: the evaluated rows'
    clean replay on the profile equal to the offline network's output rasters on every row (or an
    imported run's import proof on the profile). ``settings`` records which and why."""
    if len(judges) < 2 or not any(m.stage == STAGE["scores"] for m in ensemble.members):
        return None
    judge = judges[1]
    if run.imported:
        try:
            check_twin_proof(run, judge.name)
            proof = f"the import's proof on {judge.name}"
        except ConfigError as exc:
            proof, why = None, str(exc)
    else:
        differ = mismatched_rows(run.net, rows.clean, judge.clean(rows).rasters)
        proof = None if differ.size else f"clean replay raster-exact on all {len(rows.labels)} evaluated rows"
        why = f"clean replay differs from the offline network at {differ.size} of {len(rows.labels)} rows"
    if proof is None:
        return QueryOracle(judge, {"oracle": "device", "profile": judge.name}, why)
    twin = TwinOracle(run.net, batch_size)
    stack.callback(twin.close)
    return QueryOracle(twin, {"oracle": "twin", "profile": judge.name}, proof)


def _write(path: Path, run: Run, ensemble: Ensemble, rows: Rows, budgets: list[int], outcome: Outcome,
           ident: str, retimed: dict[str, np.ndarray], retime_budgets: list[int]) -> None:
    arrays = {"labels": rows.labels, "sample_index": rows.index, "clean": rows.clean, **retime_arrays(retimed)}
    for name, verdict in outcome.verdicts.items():
        arrays.update({f"{name}/{key}": value for key, value in verdict.arrays(budgets).items()})
    attrs = {"evaluation_id": path.stem, "model": run.spec.name, "ensemble": ensemble.to_dict(), "budgets": budgets,
             "verdicts": list(outcome.verdicts), "n": int(len(rows.labels)),
             "cascade": [vars(step) for step in outcome.steps], "flags": outcome.flags, "identity": ident,
             **({"query_oracle": outcome.query_oracle} if outcome.query_oracle else {}),
             **({"retime_budgets": retime_budgets} if retime_budgets else {}),
             **({"adaptive": outcome.adaptive} if outcome.adaptive else {})}
    write_h5(path, arrays, attrs, kind=KIND)
