"""The query loop shared by score- and decision-based attacks (Sparse-RS, pointwise).

Such an attack is a *search* per row: a Python generator that yields one candidate input
(*shape, T) uint8 at a time, receives its output spike counts (K,) int64 from the oracle and
finally returns a :class:`RowResult`. :func:`drive` runs the searches of many rows in lockstep:
every round, the pending candidates of all rows go to the oracle in one call (side by side in a
device session's lanes, or one batched forward pass of the twin). A row's search draws only
from its own generator (:func:`harness.attacks.randomness.row_generators`) and sees only its own
answers, so its queries and result do not depend on which rows were attacked with it.

:func:`run_query_attack` is the attack stage of such a method: the run's test split, the
oracle (:mod:`harness.attacks.oracles`), targets, the record (``queries`` per row, also its
``iterations``; no forward or backward passes of the attack's own) and the cached file ``RUN_DIR/attacks/<id>.h5``.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, ClassVar, Generator

import numpy as np
from tqdm.auto import tqdm

from ..errors import ConfigError
from ..metrics import margin_of_counts, predict
from ..records import DEFAULT_BUDGETS, AttackRecord, is_success
from ..runs import data_digest, open_run
from ..settings import SettingError, build, check_types, cli_flag
from .interface import Attack, Job
from .oracles import ORACLES, open_oracle
from .randomness import row_generators
from .runner import _MODE_TAGS, _attrs, _cached_attack, _identity, _num
from .targets import expand_targets

#: A row's search: yields candidates (*shape, T) uint8, is sent their counts (K,) int64.
Search = Generator[np.ndarray, np.ndarray, "RowResult"]


@dataclass(frozen=True)
class QueryConfig:
    """Settings of a query attack (``harness attack --method sparse-rs|pointwise``).

    Attributes:
        max_flips: sparse-rs: K, the flips of every candidate; pointwise: the largest L0 that
            counts as a success. Default: the largest evaluation budget (2,000).
        queries: the most oracle queries per row (>= 1), the clean prediction not counted.
        p_init: sparse-rs: the initial share of the K flips resampled per query, in (0, 1].
        seed: seeds every row's generator (>= 0).
        oracle: "twin" (proven torch network) or "device" (a warm session on ``profile``).
        profile: the hardware profile whose answers the oracle gives (default loihi2-fixed).
    """

    max_flips: int = max(DEFAULT_BUDGETS)
    queries: int = 1000
    p_init: float = 0.3
    seed: int = 0
    oracle: str = "twin"
    profile: str | None = None

    def __post_init__(self) -> None:
        check_types(self)
        checks = [("max_flips", self.max_flips >= 1, ">= 1"), ("queries", self.queries >= 1, ">= 1"),
                  ("p_init", 0 < self.p_init <= 1, "in (0, 1]"), ("seed", self.seed >= 0, ">= 0")]
        for key, ok, bound in checks:
            if not ok:
                raise SettingError(key, f"must be {bound}, got {getattr(self, key)}")
        if self.oracle not in ORACLES:
            raise SettingError("oracle", f"must be one of {', '.join(ORACLES)}, got {self.oracle!r}")


@dataclass
class RowResult:
    """What a row's search found.

    Attributes:
        adversarial: (*shape, T) uint8, the last accepted candidate.
        counts: (K,) int64 output counts of ``adversarial``.
        queries: oracle queries the search made.
        l0_start: flips of the search's first candidate.
    """

    adversarial: np.ndarray
    counts: np.ndarray
    queries: int
    l0_start: int


def fooled(counts: np.ndarray, label: int, target: int) -> bool:
    """The counts (K,) are a success: the target wins alone, or untargeted another class wins alone."""
    return bool(is_success(predict(counts[None]), np.array([label]), np.array([target]))[0])


def margin(counts: np.ndarray, label: int, target: int) -> int:
    """The count margin the attack drives down (:func:`harness.metrics.margin_of_counts`)."""
    return int(margin_of_counts(counts[None], np.array([label]), np.array([target]))[0])


def drive(oracle, searches: list[Search], progress: bool = False) -> list[RowResult]:
    """Run every search to its end, all pending candidates in one oracle call per round."""
    results: list[RowResult | None] = [None] * len(searches)
    pending: dict[int, np.ndarray] = {}

    def advance(i: int, answer: np.ndarray | None) -> None:
        try:
            pending[i] = next(searches[i]) if answer is None else searches[i].send(answer)
        except StopIteration as stop:
            results[i] = stop.value
            pending.pop(i, None)
            bar.update(1)

    with tqdm(total=len(searches), unit="row", disable=not progress, desc="query attack") as bar:
        for i in range(len(searches)):
            advance(i, None)
        while pending:
            rows = list(pending)
            counts = oracle.counts(np.stack([pending[i] for i in rows]))
            for i, answer in zip(rows, counts):
                advance(i, np.asarray(answer, dtype=np.int64))
    return results


def flip(clean: np.ndarray, elements: np.ndarray) -> np.ndarray:
    """``clean`` (*shape, T) with the flat ``elements`` flipped (0 <-> 1)."""
    out = clean.copy().reshape(-1)
    out[elements] ^= 1
    return out.reshape(clean.shape)


def query_attack_id(method: str, config: QueryConfig, targeted: str | None, n: int) -> str:
    """The file id: ``sparse-rs_u_b100_q1000_p0.3_twin-loihi2-fixed_n100_s0`` (p only for sparse-rs)."""
    from .oracles import DEFAULT_PROFILE

    parts = [method, _MODE_TAGS[targeted], f"b{config.max_flips}", f"q{config.queries}"]
    parts += [f"p{_num(config.p_init)}"] if method == "sparse-rs" else []
    return "_".join(parts + [f"{config.oracle}-{config.profile or DEFAULT_PROFILE}", f"n{n}", f"s{config.seed}"])


def run_query_attack(job: Job, method: str, config: QueryConfig, search: Callable[..., Search],
                     targeted: str | None = None, n: int | None = None, threat: str = "flips") -> Path:
    """Attack the run's test split with one ``search(clean, label, target, config, generator)`` per row.

    Rows the oracle misclassifies when clean are not attacked (0 queries). Writes
    ``RUN_DIR/attacks/<id>.h5`` (:func:`query_attack_id`), kept when it exists for the same model,
    data and settings. ``job.oracle`` answers when given; else the oracle of ``config`` is opened.
    """
    if targeted not in _MODE_TAGS:
        raise ConfigError(f"unknown target mode '{targeted}'; available: every-other, random, least-likely")
    run = open_run(job.run_dir)
    data = run.test(n, job.data_path)
    numel = int(np.prod(data.spikes.shape[1:]))
    if method == "sparse-rs" and config.max_flips >= numel:
        raise ConfigError(f"--max-flips {config.max_flips}: K must be smaller than the input's {numel:,} elements")
    path = run.attack_path(query_attack_id(method, config, targeted, len(data)))
    params = {**asdict(config), "method": method, "targeted": targeted or "", "n": len(data)}
    ident = _identity(run, params=params, data_sha256=data_digest(data))

    def compute() -> None:
        oracle = job.oracle or open_oracle(run, config.oracle, config.profile, batch_size=job.batch_size,
                                           expected_samples=min(job.batch_size, len(data)), data_path=job.data_path)
        try:
            record = _attack(oracle, data, run.net.spec.n_classes, method, config, search, targeted, job)
        finally:
            if job.oracle is None:
                oracle.close()
        _attrs(record, path.stem, params, run, data.metadata(), ident, method=method, threat=threat).save(path)

    _cached_attack(path, ident, compute, job.force)
    return path


def _attack(oracle, data, n_classes: int, method: str, config: QueryConfig, search, targeted, job: Job) -> AttackRecord:
    """The record of ``search`` on every (sample, target) row, ``job.batch_size`` rows per lockstep group."""
    clean_counts = np.concatenate([oracle.counts(data.spikes[i:i + job.batch_size])
                                   for i in range(0, len(data), job.batch_size)])
    index = np.arange(len(data))
    rows, targets = expand_targets(targeted, data.labels, n_classes, index, config.seed, clean_counts)
    clean, labels, counts = data.spikes[rows], data.labels[rows], clean_counts[rows]
    pred_clean = predict(counts)
    correct = pred_clean == labels
    generators = row_generators(config.seed, rows, targets)
    results: dict[int, RowResult] = {}
    attacked = np.flatnonzero(correct)
    for start in range(0, len(attacked), job.batch_size):
        group = attacked[start:start + job.batch_size]
        found = drive(oracle, [search(clean[i], int(labels[i]), int(targets[i]), config, generators[i]) for i in group],
                      progress=job.progress)
        results.update(zip(group.tolist(), found))
    return _record(clean, labels, targets, rows, pred_clean, counts, results, method, config)


def _record(clean, labels, targets, rows, pred_clean, clean_counts, results: dict[int, RowResult], method: str,
            config: QueryConfig) -> AttackRecord:
    """The AttackRecord: a success keeps its example within ``max_flips``; other rows keep ``clean``."""
    adversarial, counts = clean.copy(), clean_counts.copy()
    queries, l0_start = np.zeros(len(clean), np.int64), np.zeros(len(clean), np.int64)
    for i, result in results.items():
        adversarial[i], counts[i], queries[i], l0_start[i] = (result.adversarial, result.counts, result.queries,
                                                              result.l0_start)
    l0 = (adversarial != clean).reshape(len(clean), -1).sum(1).astype(np.int64)
    success = (pred_clean == labels) & is_success(predict(counts), labels, targets) & (l0 <= config.max_flips)
    adversarial[~success], counts[~success] = clean[~success], clean_counts[~success]
    l0 = np.where(success, l0, 0)
    curve = {"kind": "final-l0", "enforced_budget": config.max_flips, "budget_mode": "stop"}
    return AttackRecord(
        clean=clean, adversarial=adversarial, labels=labels, targets=targets, sample_index=rows.astype(np.int64),
        pred_clean=pred_clean, pred_adv=predict(counts), correct_before=pred_clean == labels, success=success,
        l0=l0, l0_before_reduction=l0_start, l0_at_success=np.where(success, l0, -1), iterations=queries,
        rsf_iterations=np.zeros(len(clean), np.int64), zero_grad_iterations=np.full(len(clean), -1, np.int64),
        forward_passes=np.zeros(len(clean), np.int64), backward_passes=np.zeros(len(clean), np.int64),
        queries=queries, attrs={"method": method, "params": asdict(config), "seed": config.seed, "budget_curve": curve})


class QueryAttack(Attack):
    """A registered query attack: ``search`` per row, run by :func:`run_query_attack`."""

    search: ClassVar[Callable[..., Search]]

    def run(self, job: Job, values: dict[str, Any]) -> Path:
        config = build(QueryConfig, {k: v for k, v in values.items() if k not in ("targeted", "n")}, cli_flag)
        return run_query_attack(job, self.name, config, type(self).search, values.get("targeted"), values.get("n"))
