"""``harness compare RUN_DIR...``: runs of different experiments side by side.

Reads each run's ``results.json`` (made by ``harness run`` or ``harness report --run``) and gives

- a table (Markdown, printed): the headline figures (clean accuracy; per attack its offline
  success, median L0, stalled and zero-gradient shares of the failed rows; per device profile
  its success and transfer), one column per run, each rate with its Wilson 95% interval and
  counts ("96.8% [92.5, 98.6], 91/94"), the median L0 with its bootstrap interval;
- for runs that are cells of one seed grid (:func:`harness.aggregate.seed_groups`), a second
  table: mean over seeds with its t-interval, and the pooled Wilson interval;
- a CSV in results.csv's long format (:data:`harness.results.CSV_COLUMNS`) holding every figure
  of every run, plus per seed group the rows ``mean:<runs>`` (mean, t-interval) and
  ``pooled:<runs>`` (summed counts, Wilson interval);
- a figure: offline success per attack, one bar per run, with Wilson error bars; beside it
  (``<figure>-robust.png``) the runs' robust-accuracy curves overlaid, and first in the printed
  text their robust accuracy per judge and budget (runs with an evaluation, docs/evaluation.md).

Runs are labelled by their directory name, or ``<experiment>/<run>`` where names repeat.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from . import fmt
from .aggregate import across_seeds, is_headline, seed_groups
from .errors import DataError
from .report import figures
from .report.robustness import ROBUST_AXIS
from .report.render import Table, markdown_table
from .report.sections import FIGURE_NAMES, Interval, seed_cell
from .results import OFFLINE, csv_text, long_rows
from .results_model import Rate, Results
from .store import write_if_changed


@dataclass
class Comparison:
    """Runs to compare: label -> results (in the order given) and their long rows."""

    runs: dict[str, Results]
    rows: list[dict]

    @property
    def groups(self) -> list[list[str]]:
        """Labels of the runs that are cells of one seed grid (2+ seeds each)."""
        return seed_groups(self.runs)


def load_results(run_dir: str | Path) -> Results:
    """A run directory's typed results.json.

    Raises:
        DataError: the directory has no results.json (the message says how to make one), or it
            does not match the schema.
    """
    path = Path(run_dir) / "results.json"
    if not Path(run_dir).is_dir():
        raise DataError(f"{run_dir}: not a run directory")
    if not path.exists():
        raise DataError(f"{path}: file not found; make it with `harness report --run {run_dir}` "
                        "(or `harness run EXPERIMENT.toml`)")
    return Results.load(path)


def run_labels(run_dirs: Sequence[str | Path]) -> list[str]:
    """A label per run: its directory name, or ``<parent>/<name>`` where names repeat."""
    paths = [Path(p).resolve() for p in run_dirs]
    if len(set(paths)) < len(paths):
        raise DataError("compare: the same run directory is given twice")
    names = [p.name for p in paths]
    return [f"{p.parent.name}/{p.name}" if names.count(p.name) > 1 else p.name for p in paths]


def load_comparison(run_dirs: Sequence[str | Path]) -> Comparison:
    """The runs of ``run_dirs`` (at least one) with their long rows, labelled by :func:`run_labels`."""
    if not run_dirs:
        raise DataError("compare: give at least one run directory")
    runs = dict(zip(run_labels(run_dirs), (load_results(p) for p in run_dirs)))
    rows = [row for label, results in runs.items() for row in long_rows(results, label)]
    return Comparison(runs=runs, rows=rows)


def _shown(row: dict) -> bool:
    """Whether a long row is one of the table's headline figures."""
    return is_headline(row["attack"], row["profile"], row["metric"])


def _cell(row: dict | None) -> str:
    """A headline long row as a table cell: a rate with interval and counts (every headline figure but
    the median L0, which gets its bootstrap interval)."""
    if row is None:
        return "—"
    if row["metric"].endswith("l0"):
        return fmt.num_ci(Interval(row["value"], row.get("low"), row.get("high")))
    if row.get("k") is None:  # a results.json written before the intervals: the rate alone
        return fmt.rate(None, row["value"])
    return fmt.rate(Rate(value=row["value"], k=row["k"], n=row["n"], low=row["low"], high=row["high"]))


def _row_label(attack: str, profile: str, metric: str) -> list[str]:
    return [attack or "(clean)", profile, FIGURE_NAMES.get(metric, metric)]


def comparison_table(comparison: Comparison) -> Table:
    """The headline figures, one row per (attack, profile, metric), one column per run."""
    keys: dict[tuple[str, str, str], dict[str, dict]] = {}
    for row in comparison.rows:
        if _shown(row):
            keys.setdefault((row["attack"], row["profile"], row["metric"]), {})[row["run"]] = row
    rows = [_row_label(*key) + [_cell(by_run.get(run)) for run in comparison.runs] for key, by_run in keys.items()]
    return Table(["attack", "profile", "figure", *comparison.runs], rows,
                 "Rates over correctly classified rows with Wilson 95% intervals and counts; median L0 (flips) with "
                 "its bootstrap 95% interval; stalled and zero-gradient shares of the failed rows. — : not in that run.")


def seed_tables(comparison: Comparison) -> list[Table]:
    """Per seed group among the runs: each headline figure's mean over seeds (t-interval) and pooled rate."""
    tables = []
    for names in comparison.groups:
        shown = [f for f in across_seeds([comparison.runs[n] for n in names])
                 if is_headline(f.attack, f.profile, f.metric)]
        tables.append(Table(["attack", "profile", "figure", "across seeds"],
                            [_row_label(f.attack, f.profile, f.metric) + [seed_cell(f)] for f in shown],
                            f"Seeds {', '.join(str(comparison.runs[n].seed) for n in names)} ({', '.join(names)}): "
                            "mean with Student-t 95% interval over seeds; pooled: all seeds' rows together (Wilson)."))
    return tables


def seed_rows(comparison: Comparison) -> list[dict]:
    """Long rows of every seed group: ``mean:<runs>`` (mean, t bounds) and ``pooled:<runs>`` (rates only)."""
    out = []
    for names in comparison.groups:
        tag = "+".join(names)
        for f in across_seeds([comparison.runs[n] for n in names]):
            where = {"attack": f.attack, "profile": f.profile, "metric": f.metric}
            out.append({"run": f"mean:{tag}", **where, "value": f.mean, "n": len(f.values), "low": f.low,
                        "high": f.high})
            if f.pooled is not None:
                out.append({"run": f"pooled:{tag}", **where, **f.pooled.to_dict()})
    return out


def comparison_figure(comparison: Comparison) -> bytes:
    """PNG: offline success per attack (groups), one bar per run with its Wilson 95% error bar."""
    success = {(row["run"], row["attack"]): row for row in comparison.rows
               if row["attack"] and row["profile"] == OFFLINE and row["metric"] == "success_rate"}
    attacks = list(dict.fromkeys(attack for _, attack in success))
    series = {run: [_point(success.get((run, attack))) for attack in attacks] for run in comparison.runs}
    return figures.grouped_bars(attacks, series, "Offline attack success per run (Wilson 95% intervals)",
                                "attack success (%)", xlabel="attack")


def robustness_table(comparison: Comparison) -> Table | None:
    """Robust accuracy (each run's headline evaluation): one row per judge and budget, one column per run;
    None when no run has an evaluation."""
    verdicts = {run: r.robustness.verdicts() for run, r in comparison.runs.items() if r.robustness is not None}
    if not verdicts:
        return None
    judges = list(dict.fromkeys(judge for by_judge in verdicts.values() for judge in by_judge))
    keys = sorted({(judge, budget) for by_judge in verdicts.values() for judge, v in by_judge.items()
                   for budget in v.robust_accuracy_ci}, key=lambda key: (judges.index(key[0]), int(key[1])))
    rows = [[judge, "clean" if budget == "0" else f"L0 <= {budget}",
             *(_robust_cell(verdicts.get(run, {}).get(judge), budget) for run in comparison.runs)]
            for judge, budget in keys]
    return Table(["judge", "budget", *comparison.runs], rows,
                 caption="robust accuracy, worst case over each run's ensemble (k/n, Wilson 95%)")


def _robust_cell(verdict, budget: str) -> str:
    rate = None if verdict is None else verdict.robust_accuracy_ci.get(budget)
    return "—" if rate is None else fmt.rate(rate)


def robustness_figure(comparison: Comparison) -> bytes | None:
    """PNG: the runs' robust-accuracy curves overlaid (one colour per run, one line style per judge)."""
    curves = {run: {judge: {b: r for b, r in v.robust_accuracy_ci.items() if b != "0"}
                    for judge, v in results.robustness.verdicts().items()}
              for run, results in comparison.runs.items() if results.robustness is not None}
    return figures.budget_curves(curves, "Robust accuracy per run (Wilson 95% bands)", ROBUST_AXIS) if curves else None


def _point(row: dict | None) -> tuple | None:
    return None if row is None else (row["value"], row.get("low"), row.get("high"))


def write_comparison(run_dirs: Sequence[str | Path], csv_path: str | Path | None = None,
                     figure_path: str | Path | None = None) -> tuple[str, Path | None, Path | None]:
    """Compare runs; the printed text (Markdown tables) and the paths written.

    Args:
        csv_path: where the long-format CSV goes (None: no CSV).
        figure_path: the PNG (None: next to the CSV with suffix .png, or no figure without a CSV).
    """
    comparison = load_comparison(run_dirs)
    robust = robustness_table(comparison)
    tables = [*([robust] if robust else []), comparison_table(comparison), *seed_tables(comparison)]
    text = "\n\n".join(markdown_table(t) for t in tables) + "\n"
    if csv_path is not None:
        csv_path = Path(csv_path)
        write_if_changed(csv_path, csv_text(comparison.rows + seed_rows(comparison)).encode("utf-8"))
        figure_path = csv_path.with_suffix(".png") if figure_path is None else figure_path
    if figure_path is not None:
        figure_path = Path(figure_path)
        write_if_changed(figure_path, comparison_figure(comparison))
        robust_png = robustness_figure(comparison)
        if robust_png is not None:  # the robust-accuracy curves beside it
            write_if_changed(figure_path.with_name(f"{figure_path.stem}-robust.png"), robust_png)
    return text, csv_path, figure_path
