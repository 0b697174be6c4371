"""The cascade: each attack of an ensemble on the rows no earlier attack broke, every example judged
offline and on each device profile (docs/evaluation.md).

Gradient attacks run first, then score- and decision-based ones, then random flips. An attack
runs on the rows still robust, for some judge, at the smallest budget (a row broken there is
broken at every budget; for a single budget this is AutoAttack's rule). Every example an attack
returns is judged by every judge, whatever the attack thought of it.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from typing import Callable, Iterator, Protocol

import numpy as np

from ..attacks import registry
from ..attacks.baselines import RANDOM_STREAM, random_flip_inputs
from ..attacks.interface import Job
from ..attacks.loop import craft
from ..attacks.methods.iterative import Iterative
from ..attacks.randomness import row_generators
from ..attacks.runner import default_loss
from ..records import AttackRecord
from ..runs import Run
from .ensemble import RANDOM, STAGE, Ensemble, Member
from .verdicts import Verdict, flips

#: Share of a gradient attack's iterations with an all-zero input gradient above which flag (d) warns.
ZERO_GRADIENT_WARNING = 0.5
#: Flag (a): later attacks break more than this share (and at least FLAG_A_ROWS) of the rows the gradient attacks left robust.
FLAG_A_SHARE, FLAG_A_ROWS = 0.05, 2


class Judge(Protocol):
    """Classifies inputs: the offline model or one device profile."""

    name: str
    bit_exact: bool  # a device judge whose arithmetic is the offline model's, bit for bit

    def predictions(self, spikes: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """(R,) int64 predicted classes of ``spikes`` (R, ...) of test rows ``rows`` (-1 = tie or silence)."""


@dataclass
class Rows:
    """The evaluated rows: ``clean`` (N, *shape, T) uint8, ``labels`` (N,) int64, ``index`` (N,)
    int64 test-split indices (seed each row's randomness and device noise)."""

    clean: np.ndarray
    labels: np.ndarray
    index: np.ndarray


@dataclass
class Step:
    """One attack's part in the cascade (stored in the file's ``cascade`` attribute)."""

    label: str
    rows_attacked: int
    rows_saved: int  # rows the cascade spared this attack (broken earlier at every budget, or wrong when clean)
    seconds: float
    zero_gradient_share: float | None  # gradient attacks: iterations with an all-zero gradient / all iterations


@dataclass
class Outcome:
    """What the cascade produced: one verdict per judge, the steps and the flags."""

    verdicts: dict[str, Verdict]
    steps: list[Step]
    flags: list[dict[str, str]]
    query_oracle: dict | None = None  # who answered the query attacks: oracle, profile, proof
    adaptive: dict[str, dict] = field(default_factory=dict)  # filtered profile -> which part was stronger (.adaptive)


@dataclass
class QueryOracle:
    """What answers the ensemble's score- and decision-based attacks: ``oracle`` (output counts of
    inputs, :class:`harness.attacks.interface.Oracle`), ``settings``, the attack settings that
    name it in their records (``{"oracle": "twin" or "device", "profile": name}``), and ``proof``:
    why the twin may answer, or why not."""

    oracle: object
    settings: dict
    proof: str


def run_cascade(run: Run, ensemble: Ensemble, rows: Rows, judges: list[Judge], budgets: list[int], *,
                batch_size: int = 128, progress: bool = True, device: str = "cpu",
                data_path=None, query_oracle: QueryOracle | None = None) -> Outcome:
    """Run ``ensemble`` on ``rows``, judging every example with every judge (``judges[0]`` offline);
    query attacks ask ``query_oracle`` (None: each opens the oracle its own settings name)."""
    all_rows = np.arange(len(rows.labels))
    verdicts, disagree = {}, {j.name: set() for j in judges}
    clean_preds = {j.name: j.predictions(rows.clean, rows.index) for j in judges}
    _note_disagreements(judges, clean_preds, all_rows, disagree)
    for j in judges:
        verdicts[j.name] = Verdict.start(rows.clean, clean_preds[j.name] == rows.labels)
    steps, after_gradients = [], None
    context = _Context(run, rows, batch_size, progress, device, data_path, query_oracle)
    for i, member in enumerate(ensemble.members):
        if member.stage > 0 and after_gradients is None:
            after_gradients = {name: v.robust(budgets) for name, v in verdicts.items()}
        started = time.perf_counter()
        attacked, zero_share = 0, None
        for candidate in _candidates(member, context, lambda b: _alive(verdicts, b), budgets):
            attacked = max(attacked, len(candidate.rows) if candidate.attacked is None else candidate.attacked)
            zero_share = candidate.zero_gradient_share if zero_share is None else zero_share
            l0 = flips(rows.clean[candidate.rows], candidate.spikes)
            preds = {j.name: j.predictions(candidate.spikes, rows.index[candidate.rows]) for j in judges}
            _note_disagreements(judges, preds, candidate.rows, disagree)
            for j in judges:
                verdicts[j.name].record(i, candidate.rows, candidate.spikes, l0,
                                        preds[j.name] != rows.labels[candidate.rows], max(budgets))
        steps.append(Step(member.label, attacked, len(all_rows) - attacked, round(time.perf_counter() - started, 3),
                          zero_share))
    flags = _flags(ensemble, verdicts, after_gradients, budgets, steps, disagree, judges)
    return Outcome(verdicts, steps, flags)


def _alive(verdicts: dict[str, Verdict], budget: int) -> np.ndarray:
    """Row indices still robust at ``budget`` for some judge."""
    return np.flatnonzero(np.any([v.clean_correct & ~v.broken(budget) for v in verdicts.values()], axis=0))


@dataclass
class _Context:
    run: Run
    rows: Rows
    batch_size: int
    progress: bool
    device: str
    data_path: object
    oracle: QueryOracle | None  # answers query attacks; None: each opens the oracle its settings name


@dataclass
class _Candidate:
    rows: np.ndarray  # (R,) indices into the evaluated rows
    spikes: np.ndarray  # (R, *shape, T) uint8
    zero_gradient_share: float | None = None
    attacked: int | None = None  # rows the attack ran on, when more than ``rows`` (an attack on all N rows)


def _candidates(member: Member, ctx: _Context, alive: Callable[[int], np.ndarray],
                budgets: list[int]) -> Iterator[_Candidate]:
    """The examples ``member`` makes on the rows ``alive(budget)`` leaves it (one batch per budget for random flips)."""
    if member.needs == RANDOM:
        yield from _random_flips(member, ctx, alive, budgets)
        return
    rows = alive(min(budgets))
    if not len(rows):
        return
    attack = registry.get(member.method)
    if isinstance(attack, Iterative):
        config = attack.config(member.settings)
        config = replace(config, loss=config.loss or default_loss(ctx.run))
        record = craft(ctx.run.net, ctx.rows.clean[rows], ctx.rows.labels[rows], config,
                       sample_index=ctx.rows.index[rows], batch_size=ctx.batch_size, progress=ctx.progress,
                       device=ctx.device)
        yield _Candidate(rows, record.adversarial, _zero_gradient_share(record))
        return
    # Another registered attack runs through its own interface on the first N rows (cached as its
    # attack file; the cascade saves it no work), query attacks asking the evaluation's oracle
    # unless their settings name one, and its examples of the alive rows are judged.
    asks = ctx.oracle is not None and member.stage == STAGE["scores"] and not {"oracle", "profile"} & set(member.settings)
    job = Job(ctx.run.root, batch_size=ctx.batch_size, progress=ctx.progress, data_path=ctx.data_path,
              device=ctx.device, oracle=ctx.oracle.oracle if asks else None)
    settings = {**member.settings, **(ctx.oracle.settings if asks else {}), "n": len(ctx.rows.labels)}
    record = AttackRecord.load(attack.run(job, settings))
    keep = np.isin(record.sample_index, ctx.rows.index[rows]) & (record.targets < 0)
    position = np.searchsorted(ctx.rows.index, record.sample_index[keep])
    yield _Candidate(position, record.adversarial[keep], attacked=len(record.labels))


def _random_flips(member: Member, ctx: _Context, alive: Callable[[int], np.ndarray],
                  budgets: list[int]) -> Iterator[_Candidate]:
    """Exactly b flipped elements per row still robust at b, for each budget b (independent draws:
    the generator of row i at budget b is seeded from (seed, test index i, b) on its own stream)."""
    seed = int(member.settings.get("seed", 0))
    for budget in budgets:
        rows = alive(budget)
        if not len(rows):
            continue
        generators = row_generators(seed, ctx.rows.index[rows], [budget] * len(rows), stream=RANDOM_STREAM + 1)
        clean = ctx.rows.clean[rows]
        yield _Candidate(rows, random_flip_inputs(clean, np.full(len(rows), budget), generators))


def _zero_gradient_share(record: AttackRecord) -> float | None:
    """Iterations with an all-zero input gradient over all iterations of the rows that computed one."""
    computed = record.zero_grad_iterations >= 0
    total = int(record.iterations[computed].sum())
    return int(record.zero_grad_iterations[computed].sum()) / total if total else None


def _note_disagreements(judges: list[Judge], preds: dict[str, np.ndarray], rows: np.ndarray,
                        disagree: dict[str, set]) -> None:
    """Remember the rows where a bit-exact device judge and the offline judge (``judges[0]``) differ."""
    offline = preds[judges[0].name]
    for j in judges[1:]:
        if j.bit_exact:
            disagree[j.name].update(int(r) for r in rows[preds[j.name] != offline])


def _flags(ensemble: Ensemble, verdicts: dict[str, Verdict], after_gradients, budgets: list[int],
           steps: list[Step], disagree: dict[str, set], judges: list[Judge]) -> list[dict[str, str]]:
    """The trust flags (a), (c) and (d) of docs/evaluation.md; (b) is checked whenever a file is read."""
    flags = []
    has_gradient = any(m.stage == 0 for m in ensemble.members)
    if has_gradient and after_gradients is not None:
        for name, verdict in verdicts.items():
            left = after_gradients[name]
            later = left & ~verdict.robust(budgets)
            for col, budget in enumerate(budgets):
                k, n = int(later[:, col].sum()), int(left[:, col].sum())
                if k >= FLAG_A_ROWS and k > FLAG_A_SHARE * n:
                    flags.append({"level": "warning", "code": "weak-gradient", "verdict": name,
                                  "message": f"gradient attacks may be weak or masked here: at L0 <= {budget} the "
                                             f"later attacks broke {k} of the {n} rows they left robust ({name})"})
                    break
    for j in judges[1:]:
        if disagree[j.name]:
            rows = sorted(disagree[j.name])
            flags.append({"level": "error", "code": "offline-device-disagree", "verdict": j.name,
                          "message": f"offline and device verdicts disagree on the bit-exact profile {j.name} at "
                                     f"rows {', '.join(map(str, rows[:20]))}{' ...' if len(rows) > 20 else ''} "
                                     f"({len(rows)} rows)"})
    for step in steps:
        if step.zero_gradient_share is not None and step.zero_gradient_share > ZERO_GRADIENT_WARNING:
            flags.append({"level": "warning", "code": "zero-gradients", "verdict": "offline",
                          "message": f"{step.label}: {step.zero_gradient_share:.0%} of its iterations saw an all-zero "
                                     "input gradient (the gradient attack is partly blind here)"})
    return flags
