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
from pathlib import Path

import numpy as np

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
from .cascade import Outcome, Rows, run_cascade
from .ensemble import Ensemble, load_ensemble
from .record import KIND, OFFLINE

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
    """One device profile through one open device session; each input gets its row's noise key."""

    def __init__(self, session, profile: Profile, progress: bool) -> None:
        self.session, self.name, self.progress = session, profile.name, progress
        self.bit_exact = (profile.select_tag == "fixed_pt" and not profile.noise.active
                          and profile.input_filter is None)  # a filtered profile is compared in .adaptive

    def predictions(self, spikes: np.ndarray, rows: np.ndarray) -> np.ndarray:
        return self.session.replay(spikes, sample_keys=rows, progress=self.progress).predictions

    def counts(self, spikes: np.ndarray) -> np.ndarray:
        """(N, classes) int64 output spike counts: the :class:`harness.attacks.interface.Oracle` that
        score- and decision-based attacks of the ensemble query (the first profile's session)."""
        return self.session.replay(spikes).counts


def evaluation_id(ensemble: Ensemble, n: int, budgets: list[int], profiles: list[Profile]) -> str:
    """``<ensemble>_n<N>_<8 hex>``: the hex digests the attacks' settings, budgets and profile names."""
    spec = json.dumps([ensemble.to_dict()["attacks"], budgets, [p.name for p in profiles]], sort_keys=True)
    return f"{folder_name(ensemble.name, 'ensemble name')}_n{n}_{hashlib.sha256(spec.encode()).hexdigest()[:8]}"


def evaluate(run_dir: str | Path, ensemble: str | Path | Ensemble = "quick", profiles=("loihi2-fixed",),
             budgets=DEFAULT_BUDGETS, n: int | None = None, *, batch_size: int = 128, progress: bool = True,
             device: str = "cpu", data_path=None, force: bool = False) -> Path:
    """Evaluate the run's network and write ``RUN_DIR/evaluations/<id>.h5``; its path.

    Args:
        ensemble: a shipped ensemble name, a TOML path, or an :class:`Ensemble`.
        profiles: device profiles (names, paths or Profiles); each gets one device session.
        budgets: flip budgets (L0), checked by :func:`check_budgets`.
        n: the first ``n`` test rows (default all).
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
    path = run.root / FOLDER / f"{evaluation_id(ensemble, len(rows.labels), budgets, profiles)}.h5"
    ident = identity(stage="evaluation", model_sha256=run.model_digest, network_sha256=digest_file(run.network_file),
                     data_sha256=data_digest(data), ensemble=ensemble.to_dict(), budgets=budgets,
                     profiles=[p.to_dict() for p in profiles], versions=numeric_versions(),
                     **({} if device == "cpu" else {"torch_device": device}))

    def compute() -> None:
        check_writable(path.parent)
        outcome = _judged(run, ensemble, rows, profiles, budgets, batch_size, progress, device, data_path)
        _write(path, run, ensemble, rows, budgets, outcome, ident)

    path.parent.mkdir(parents=True, exist_ok=True)
    with sigterm_as_interrupt():
        cached(path, ident, compute, force=force)
    return path


def _judged(run: Run, ensemble: Ensemble, rows: Rows, profiles: list[Profile], budgets: list[int],
            batch_size: int, progress: bool, device: str, data_path) -> Outcome:
    """The cascade with the offline judge and one device session per profile (all stopped at the end)."""
    with contextlib.ExitStack() as stack:
        judges = [OfflineJudge(run.net)]
        for profile in profiles:
            session = stack.enter_context(device_session(run.network_file, profile, expected_samples=len(rows.labels)))
            judges.append(DeviceJudge(session, profile, progress))
        options = dict(batch_size=batch_size, progress=progress, device=device, data_path=data_path)
        outcome = run_cascade(run, ensemble, rows, judges, budgets, **options)
        for judge, profile in zip(judges[1:], profiles):  # a filtered profile: worst of adaptive, non-adaptive
            if profile.input_filter is not None:
                outcome = with_adaptive(outcome, run, ensemble, rows, OfflineJudge, judge, profile, budgets, **options)
        return outcome


def _write(path: Path, run: Run, ensemble: Ensemble, rows: Rows, budgets: list[int], outcome: Outcome,
           ident: str) -> None:
    arrays = {"labels": rows.labels, "sample_index": rows.index, "clean": rows.clean}
    for name, verdict in outcome.verdicts.items():
        arrays.update({f"{name}/{key}": value for key, value in verdict.arrays(budgets).items()})
    attrs = {"evaluation_id": path.stem, "model": run.spec.name, "ensemble": ensemble.to_dict(), "budgets": budgets,
             "verdicts": list(outcome.verdicts), "n": int(len(rows.labels)),
             "cascade": [vars(step) for step in outcome.steps], "flags": outcome.flags, "identity": ident,
             **({"adaptive": outcome.adaptive} if outcome.adaptive else {})}
    write_h5(path, arrays, attrs, kind=KIND)
