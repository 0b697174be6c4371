"""``harness compare``: runs of different experiments side by side (table, CSV, figure).

The run directories are tiny and synthetic: the results.json of tests/test_report.py's run,
copied into two experiments (and a third cell with another seed), so no training is needed.
"""
from __future__ import annotations

import copy
import csv
import io
from pathlib import Path

import pytest

from harness.cli import main
from harness.compare import load_comparison, run_labels
from harness.errors import DataError
from harness.results import build_results, load_run, long_rows
from harness.results_model import Rate, Results
from harness.stats import wilson
from harness.store import write_json
from test_report import BUDGETS, _build_run


@pytest.fixture(scope="module")
def results(tmp_path_factory) -> dict:
    return build_results(load_run(_build_run(tmp_path_factory.mktemp("compare"))), BUDGETS)


def _run_dir(root: Path, experiment: str, run: str, results: dict, seed: int, k: int) -> Path:
    """``root/experiment/run`` holding only a results.json whose untargeted attack fooled k of 4 rows."""
    data = copy.deepcopy(results)
    data["seed"], data["run"] = seed, run
    offline = next(a for a in data["attacks"] if a["id"] == "untargeted")["offline"]
    offline["success_rate"], offline["success_rate_ci"] = k / 4, Rate.of(k, 4).to_dict()
    write_json(root / experiment / run / "results.json", data)
    return root / experiment / run


def _csv(path: Path) -> list[dict]:
    return list(csv.DictReader(io.StringIO(path.read_text())))


def test_compare_two_runs_prints_a_table_and_writes_csv_and_figure(results, tmp_path, capsys):
    from PIL import Image

    a = _run_dir(tmp_path, "exp1", "tiny", results, seed=3, k=3)
    b = _run_dir(tmp_path, "exp2", "tiny", results, seed=3, k=1)
    out = tmp_path / "out" / "cmp.csv"
    assert main(["compare", str(a), str(b), "--csv", str(out)]) == 0
    text = capsys.readouterr().out
    header = next(line for line in text.splitlines() if line.startswith("| attack |"))
    assert "exp1/tiny" in header and "exp2/tiny" in header  # same name: labelled by experiment
    line = next(line for line in text.splitlines() if line.startswith("| untargeted | offline | success |"))
    lo, hi = wilson(1, 4)
    assert "75.0% [30.1, 95.4], 3/4" in line and f"25.0% [{100 * lo:.1f}, {100 * hi:.1f}], 1/4" in line
    assert "| (clean) | offline | clean accuracy |" in text and "stalled (of failed)" in text
    assert "across seeds" not in text  # one seed per cell: no seed table
    assert f"csv: {out}" in text and f"figure: {out.with_suffix('.png')}" in text
    rows = _csv(out)
    expected = sum(len(long_rows(Results.from_dict(r), label)) for r, label in ((results, "x"), (results, "y")))
    assert len(rows) == expected
    assert {r["run"] for r in rows} == {"exp1/tiny", "exp2/tiny"}
    success = {r["run"]: r for r in rows if (r["attack"], r["profile"], r["metric"]) == ("untargeted", "offline",
                                                                                          "success_rate")}
    assert (success["exp1/tiny"]["k"], success["exp1/tiny"]["n"]) == ("3", "4")
    assert (success["exp2/tiny"]["k"], float(success["exp2/tiny"]["value"])) == ("1", 0.25)
    Image.open(out.with_suffix(".png")).load()


def test_seeds_of_one_cell_are_pooled(results, tmp_path, capsys):
    runs = [_run_dir(tmp_path, "grid", f"tiny-s{s}", results, seed=s, k=k) for s, k in ((0, 3), (1, 2))]
    other = _run_dir(tmp_path, "other", "tiny", results, seed=0, k=4)
    figure = tmp_path / "fig.png"
    assert main(["compare", *map(str, runs), str(other), "--figure", str(figure)]) == 0
    text = capsys.readouterr().out
    assert "across seeds" in text and "over 2 seeds" in text and f"pooled {'62.5%'}" in text
    assert "5/8" in text and figure.is_file()
    comparison = load_comparison([*runs, other])
    assert comparison.groups == [["tiny-s0", "tiny-s1"]]  # `other` repeats seed 0: a replicate, left out


def test_seed_rows_go_into_the_csv(results, tmp_path, capsys):
    runs = [_run_dir(tmp_path, "grid", f"tiny-s{s}", results, seed=s, k=k) for s, k in ((0, 3), (1, 2))]
    out = tmp_path / "c.csv"
    assert main(["compare", *map(str, runs), "--csv", str(out)]) == 0
    rows = {(r["run"], r["attack"], r["profile"], r["metric"]): r for r in _csv(out)}
    mean = rows[("mean:tiny-s0+tiny-s1", "untargeted", "offline", "success_rate")]
    assert float(mean["value"]) == pytest.approx(0.625) and mean["n"] == "2" and mean["k"] == ""
    pooled = rows[("pooled:tiny-s0+tiny-s1", "untargeted", "offline", "success_rate")]
    assert (pooled["k"], pooled["n"]) == ("5", "8") and float(pooled["low"]) == pytest.approx(wilson(5, 8)[0])


def test_a_run_without_results_is_one_clear_error(results, tmp_path, capsys):
    a = _run_dir(tmp_path, "exp1", "tiny", results, seed=3, k=3)
    (tmp_path / "empty").mkdir()
    assert main(["compare", str(a), str(tmp_path / "empty")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "results.json: file not found" in err and "harness report --run" in err
    with pytest.raises(DataError, match="given twice"):
        run_labels([a, a])
    assert main(["compare", str(tmp_path / "nowhere")]) == 2
    assert "not a run directory" in capsys.readouterr().err


def test_a_results_file_without_intervals_shows_its_numbers(results, tmp_path, capsys):
    old = copy.deepcopy(results)
    for attack in old["attacks"]:
        attack["offline"] = {k: v for k, v in attack["offline"].items() if not k.endswith("_ci")}
    write_json(tmp_path / "old" / "results.json", old)
    new = _run_dir(tmp_path, "exp", "new", results, seed=3, k=3)
    assert main(["compare", str(tmp_path / "old"), str(new)]) == 0
    line = next(line for line in capsys.readouterr().out.splitlines()
                if line.startswith("| untargeted | offline | success |"))
    assert line.split(" | ")[3:] == ["75.0%", "75.0% [30.1, 95.4], 3/4 |"]
