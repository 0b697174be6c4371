"""The robustness report: ``report.html`` (self-contained), ``report.md`` and ``figures/*.png``.

- :func:`write_run_report`: one run directory (made by the stage commands or an experiment);
  also writes its ``results.json``.
- :func:`write_experiment_report`: several runs of one experiment side by side, plus the
  study's own table and figure (:mod:`harness.report.studies`).

Figures: :mod:`.figures`; what each section shows: :mod:`.sections`; rendering: :mod:`.render`.
"""
from __future__ import annotations

from pathlib import Path
from typing import Mapping

import tomli_w
from tqdm.auto import tqdm

from ..errors import ConfigError
from ..results import DEFAULT_BUDGETS, RunArtifacts, load_run, write_results
from ..results_model import Results, as_results
from ..store import RunDir
from ..versions import package_versions
from .render import Section, Table, write_report
from .robustness import robustness_sections
from .sections import Labels, clean_section, run_sections, seeds_section
from .studies import study_section, typed_runs


def config_section(config: Mapping, versions: Mapping[str, str]) -> Section:
    """The resolved configuration (TOML) and the package versions behind the numbers."""
    table = Table(["package", "version"], [[k, v] for k, v in versions.items()])
    return Section("Configuration and versions", [
        "The resolved configuration of this report (seeds included); rerunning it with the same versions "
        "reproduces every number."], [table], [], preformatted=[tomli_w.dumps(dict(config))])


def write_run_report(run_dir: str | Path, budgets=DEFAULT_BUDGETS, evaluation: str | None = None) -> Path:
    """Summarise one run directory into results.json and write its report; the report's path.

    Every attack in ``attacks/``, every profile with a clean replay in ``device/`` and every
    ANN comparison in ``ann/`` is included; the report opens with the robust accuracy of the
    evaluation ``evaluation`` (an id in ``evaluations/``; default the newest). Unchanged files are
    not rewritten.

    Raises:
        ConfigError: ``run_dir`` is an experiment directory (the message names its runs).
        StageMissing: the run has no model yet.
    """
    _refuse_experiment_dir(Path(run_dir))
    art = load_run(run_dir)
    results = as_results(write_results(art, budgets, evaluation), art.run.results)
    sections = [*robustness_sections(results), clean_section({art.name: results}), *run_sections(art, results, Labels()),
                config_section({"run": str(art.run.root), "budgets": list(budgets), "model": art.card["spec"],
                                "seed": art.card["seed"], "epochs": art.card.get("epochs", 0)}, results.versions)]
    return write_report(art.run.root, f"Robustness report: {art.name}", sections)


def _refuse_experiment_dir(root: Path) -> None:
    """An experiment directory holds runs, not a model: point at them and at ``harness run``."""
    if (root / "config.toml").exists() and not RunDir(root).card_file.exists():
        runs = sorted(p.parent.parent.name for p in root.glob("*/model/card.json"))
        raise ConfigError(f"{root} is an experiment directory: its report comes from `harness run EXPERIMENT.toml`; "
                          f"`harness report` takes one of its runs: {', '.join(str(root / r) for r in runs) or 'none yet'}")


def write_experiment_report(root: str | Path, title: str, description: str,
                            runs: Mapping[str, tuple[RunArtifacts, Results | Mapping]], labels: Labels,
                            study: str | None, config: Mapping, progress: bool = True) -> Path:
    """The report of a whole experiment in ``root``; the path of report.html.

    Args:
        runs: run id -> (its artifacts, its results: typed, or the results.json dict, which is
            parsed and checked here), in the experiment's order.
        labels: attack id -> display label.
        study: a study kind of :mod:`harness.report.studies` (None: no study section).
        config: the resolved experiment (config.toml content without the versions).
    """
    runs = typed_runs(runs)
    summaries = {name: results for name, (_, results) in runs.items()}
    sections: list[Section] = [section for _, results in runs.values() for section in robustness_sections(results)]
    sections += [Section("About this experiment", [description])] if description else []
    if study is not None:
        sections.append(study_section(study, runs, labels))
    sections.append(clean_section(summaries))
    seeds = seeds_section(summaries, labels)
    sections += [seeds] if seeds else []
    for art, results in tqdm(runs.values(), desc="report", unit="run", disable=not progress):
        sections += run_sections(art, results, labels)
    sections.append(config_section(config, package_versions()))
    return write_report(root, title, sections)
