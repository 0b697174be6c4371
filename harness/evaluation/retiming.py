"""The retiming curve of ``harness evaluate --retime-budgets 1,2,3``: robust accuracy per timing budget D.

Kept apart from the flip curve (a retimed example moves spikes, it does not flip a budgeted number
of them). For each D the retiming attack (:mod:`harness.attacks.retime`, budget ``inf:D``) runs
through its registry interface on the evaluated rows (its attack file is cached in the run), and
every example it changed is judged by every judge (offline and each device profile). A row is
*broken at D* when some example with every shift <= D' <= D is misclassified by the judge (an
example within D' is within every larger D), so the curve can only fall as D grows.

Stored in the evaluation file: ``retime/<verdict>/robust`` (N, len(D)) bool and the root
attribute ``retime_budgets``; read by :meth:`harness.evaluation.record.Evaluation.retime_curve`.
"""
from __future__ import annotations

import numpy as np

from ..attacks import registry
from ..attacks.interface import Job
from ..errors import ConfigError
from ..records import AttackRecord

#: Array prefix of the retiming verdicts in an evaluation file.
PREFIX = "retime"


def parse_retime_budgets(text: str, where: str = "--retime-budgets") -> list[int]:
    """``"1,2,3"`` -> [1, 2, 3]: distinct integers >= 1 (shift steps), sorted; ConfigError otherwise."""
    parts = [p.strip() for p in str(text).split(",")]
    if not all(p.isdigit() and int(p) >= 1 for p in parts):
        raise ConfigError(f"{where}: timing budgets must be integers >= 1 (steps a spike may move), e.g. 1,2,3; "
                          f"got {text}")
    if len(set(map(int, parts))) != len(parts):
        raise ConfigError(f"{where}: a timing budget appears twice ({text})")
    return sorted(map(int, parts))


def retime_verdicts(rows, judges, clean_correct: dict[str, np.ndarray], budgets: list[int],
                    job: Job) -> dict[str, np.ndarray]:
    """``{verdict: (N, len(budgets)) bool robust}`` of each judge under retiming at each D.

    Args:
        rows: the evaluated rows (:class:`harness.evaluation.cascade.Rows`, the first N test rows).
        judges: the cascade's judges (offline first).
        clean_correct: each judge's (N,) clean verdict.
        budgets: the timing budgets D, sorted.
        job: where the attack runs (the evaluated run's directory).
    """
    n = len(rows.labels)
    broken = {j.name: np.zeros((n, len(budgets)), bool) for j in judges}
    attack = registry.get("retime")
    for col, d in enumerate(budgets):
        record = AttackRecord.load(attack.run(job, {"retime_budget": f"inf:{d}", "n": n}))
        position = np.searchsorted(rows.index, record.sample_index)
        changed = np.flatnonzero((record.adversarial != record.clean).reshape(len(record), -1).any(1))
        for j in judges:
            if len(changed):
                preds = j.predictions(record.adversarial[changed], rows.index[position[changed]])
                broken[j.name][position[changed], col] = preds != rows.labels[position[changed]]
    return {name: clean_correct[name][:, None] & ~np.logical_or.accumulate(hit, axis=1) for name, hit in broken.items()}


def retime_arrays(robust: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The evaluation file's arrays of :func:`retime_verdicts`' result."""
    return {f"{PREFIX}/{name}/robust": value for name, value in robust.items()}

