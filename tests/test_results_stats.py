"""Intervals and counts in results.json and results.csv, figures across seeds, and their formatting.

Uses the synthetic run directory of tests/test_report.py (hand-made attack and replay files
whose counts are known): rows 0..5, rows 4, 5 wrong before the attack, successes on rows 0, 1, 2
(1, 2, 8 flips), row 3 failed with all-zero gradients (and stalled in the targeted attack);
the device gets row 3 wrong when clean and is fooled on rows 0 and 3.
"""
from __future__ import annotations

import copy
import csv
import io
import shutil
from pathlib import Path

import numpy as np
import pytest

from harness import fmt
from harness.aggregate import across_seeds, cell_key, seed_groups
from harness.report import figures
from harness.results import CSV_COLUMNS, build_results, csv_text, load_run, long_rows, write_results
from harness.results_model import Rate, Results
from harness.stats import bootstrap_median, mean_interval, wilson
from test_report import BUDGETS, PROFILE, _build_run


@pytest.fixture(scope="module")
def built_run(tmp_path_factory) -> Path:
    return _build_run(tmp_path_factory.mktemp("stats"))


@pytest.fixture(scope="module")
def results(built_run) -> dict:
    return build_results(load_run(built_run), BUDGETS)


def _attack(results: dict, attack_id: str) -> dict:
    return next(a for a in results["attacks"] if a["id"] == attack_id)


def _rates(node, path=""):
    """(path, rate dict) of every Rate record in a results.json dict."""
    if isinstance(node, dict) and set(node) == {"value", "k", "n", "low", "high"}:
        yield path, node
    elif isinstance(node, dict):
        for key, value in node.items():
            yield from _rates(value, f"{path}/{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _rates(value, f"{path}/{i}")


def test_every_rate_has_its_counts_and_wilson_interval(results):
    rates = list(_rates(results))
    assert len(rates) > 40
    for path, r in rates:
        if r["n"]:
            assert r["value"] == r["k"] / r["n"], path
            assert (r["low"], r["high"]) == pytest.approx(wilson(r["k"], r["n"])), path
            assert r["low"] <= r["value"] <= r["high"], path
        else:
            assert r["value"] is r["low"] is r["high"] is None, path


def _with_intervals(node):
    """(scalar, its _ci twin) for every figure written both ways."""
    if isinstance(node, dict):
        for key, value in node.items():
            if f"{key}_ci" in node:
                yield key, value, node[f"{key}_ci"]
            yield from _with_intervals(value)
    elif isinstance(node, list):
        for value in node:
            yield from _with_intervals(value)


def test_the_old_scalar_and_its_interval_agree(results):
    pairs = list(_with_intervals(results))
    names = {name for name, _, _ in pairs}
    assert names >= {"accuracy", "agreement", "raster_exact", "success_rate", "transfer_rate", "clean_accuracy",
                     "median_l0", "success_by_budget", "stalled_share", "zero_grad_share"}
    for name, scalar, interval in pairs:
        if name == "accuracy" and "agreement" not in interval and scalar == 0.75:
            continue  # the fixture's card claims 0.75; the untrained model really gets the split wrong
        if name == "success_by_budget":
            assert scalar == {b: r["value"] for b, r in interval.items()}
        else:
            assert scalar == interval["value"], name


def test_counts_by_hand(results):
    offline = _attack(results, "untargeted")["offline"]
    assert offline["success_rate_ci"]["k"] == 3 and offline["success_rate_ci"]["n"] == 4
    assert [(r["k"], r["n"]) for r in offline["success_by_budget_ci"].values()] == [(1, 4), (2, 4), (3, 4)]
    assert offline["n_failed"] == 1
    assert offline["zero_grad_share_ci"]["k"] == 1 and offline["zero_grad_share_ci"]["n"] == 1
    # untargeted: stalls not tracked -> null, written
    assert offline["stalled_rows"] is None and offline["stalled_share"] is None and "stalled_share_ci" not in offline
    assert offline["budget_curve"] == {"kind": "final-l0", "enforced_budget": None, "budget_mode": None}
    targeted = _attack(results, "targeted")["offline"]
    assert targeted["stall_window"] == 5 and targeted["stalled_rows"] == 1
    assert (targeted["stalled_share_ci"]["k"], targeted["stalled_share_ci"]["n"]) == (1, 1)
    device = _attack(results, "untargeted")["device"][PROFILE]
    assert (device["success_rate_ci"]["k"], device["success_rate_ci"]["n"]) == (1, 5)
    assert (device["transfer_rate_ci"]["k"], device["transfer_rate_ci"]["n"]) == (1, 3)
    assert (device["accuracy_ci"]["k"], device["accuracy_ci"]["n"]) == (4, 6)
    assert (device["clean_accuracy_ci"]["k"], device["clean_accuracy_ci"]["n"]) == (5, 6)
    clean = results["clean"]["device"][PROFILE]
    assert (clean["agreement_ci"]["k"], clean["agreement_ci"]["n"]) == (358, 360)
    assert (clean["raster_exact_ci"]["k"], clean["raster_exact_ci"]["n"]) == (357, 360)


def test_per_class_and_per_target(built_run, results):
    record = load_run(built_run).attacks["targeted"]
    ok, won = record.correct_before, record.success & record.correct_before
    for key, by in (("success_by_class", record.labels), ("success_by_target", record.targets)):
        rates = _attack(results, "targeted")["offline"][key]
        assert list(rates) == [str(c) for c in sorted(set(by[ok].tolist()))]
        for c, r in rates.items():
            rows = ok & (by == int(c))
            assert (r["k"], r["n"]) == (int((won & rows).sum()), int(rows.sum()))
    assert "success_by_target" not in _attack(results, "untargeted")["offline"]
    by_class = results["clean"]["offline"]["accuracy_by_class"]
    assert sum(r["n"] for r in by_class.values()) == 360 and list(by_class) == [str(c) for c in range(10)]


def test_median_l0_has_a_seeded_bootstrap_interval(results):
    ci = _attack(results, "untargeted")["offline"]["median_l0_ci"]
    assert ci["value"] == 2 and ci["n"] == 3 and ci["resamples"] == 10_000 and ci["seed"] == 0
    assert (ci["low"], ci["high"]) == bootstrap_median([1, 2, 8], seed=0)
    assert 1 <= ci["low"] <= 2 <= ci["high"] <= 8


def test_results_json_and_csv_are_reproducible_and_agree(built_run, tmp_path):
    run = Path(shutil.copytree(built_run, tmp_path / "tiny"))
    written = write_results(load_run(run), BUDGETS)
    json_bytes, csv_bytes = (run / "results.json").read_bytes(), (run / "results.csv").read_bytes()
    stamp = (run / "results.csv").stat().st_mtime_ns
    write_results(load_run(run), BUDGETS)
    assert (run / "results.json").read_bytes() == json_bytes and (run / "results.csv").read_bytes() == csv_bytes
    assert (run / "results.csv").stat().st_mtime_ns == stamp  # unchanged: not rewritten
    table = list(csv.DictReader(io.StringIO(csv_bytes.decode())))
    assert tuple(table[0]) == CSV_COLUMNS
    assert len(table) == len(long_rows(Results.from_dict(written)))
    row = next(r for r in table if (r["attack"], r["profile"], r["metric"]) == ("untargeted", PROFILE,
                                                                                "transfer_rate"))
    assert (row["run"], row["k"], row["n"]) == ("tiny", "1", "3") and float(row["value"]) == 1 / 3
    assert float(row["low"]) == wilson(1, 3)[0]
    median = next(r for r in table if (r["attack"], r["profile"], r["metric"]) == ("untargeted", "offline",
                                                                                   "median_l0"))
    assert median["k"] == "" and median["n"] == "3" and float(median["value"]) == 2
    budget = next(r for r in table if r["metric"] == "success_by_budget:3" and r["profile"] == "offline")
    assert (budget["k"], budget["n"]) == ("2", "4")
    assert not [r for r in table if r["metric"].endswith("_ci")]  # each figure once, under its old name


def test_a_file_without_intervals_still_gives_value_rows(results):
    old = copy.deepcopy(results)
    for attack in old["attacks"]:
        for key in [k for k in attack["offline"] if k.endswith("_ci")]:
            del attack["offline"][key]
    rows = long_rows(Results.from_dict(old))
    success = next(r for r in rows if r["attack"] == "untargeted" and r["metric"] == "success_rate"
                   and r["profile"] == "offline")
    assert success == {"run": "tiny", "attack": "untargeted", "profile": "offline", "metric": "success_rate",
                       "value": 0.75}
    assert "75.0%" == fmt.rate(None, 0.75)


# ---------------------------------------------------------------- across seeds
def _seed_variant(results: dict, seed: int, k: int) -> Results:
    """``results`` as another seed's cell whose untargeted attack fooled ``k`` of its 4 rows."""
    out = copy.deepcopy(results)
    out["seed"], out["run"] = seed, f"tiny-s{seed}"
    offline = _attack(out, "untargeted")["offline"]
    offline["success_rate"] = k / 4
    offline["success_rate_ci"] = Rate.of(k, 4).to_dict()
    return Results.from_dict(out)


def test_across_seeds_gives_mean_t_interval_and_pooled_wilson(results):
    runs = [_seed_variant(results, 0, 3), _seed_variant(results, 1, 2), _seed_variant(results, 2, 4)]
    figures_ = {(f.attack, f.profile, f.metric): f for f in across_seeds(runs)}
    success = figures_[("untargeted", "offline", "success_rate")]
    assert success.values == (0.75, 0.5, 1.0) and success.seeds == (0, 1, 2)
    mean, low, high = mean_interval([0.75, 0.5, 1.0])
    assert high > 1 and (success.mean, success.low, success.high) == pytest.approx((mean, low, 1.0))  # clipped
    assert (success.pooled.k, success.pooled.n) == (9, 12)
    assert (success.pooled.low, success.pooled.high) == pytest.approx(wilson(9, 12))
    median = figures_[("untargeted", "offline", "median_l0")]
    assert median.pooled is None and median.mean == 2 and median.low == median.high == 2  # no spread
    one = {(f.attack, f.profile, f.metric): f for f in across_seeds(runs[:1])}
    assert one[("untargeted", "offline", "success_rate")].low is None  # one seed: no t-interval


def test_seed_groups_are_found_by_content_not_by_name(results):
    a, b = _seed_variant(results, 0, 3), _seed_variant(results, 1, 2)
    changed = copy.deepcopy(results)
    changed["seed"] = 2
    _attack(changed, "untargeted")["parameters"]["gamma"] = 0.5
    c = Results.from_dict(changed)
    assert cell_key(a) == cell_key(b) != cell_key(c)
    assert seed_groups({"x": a, "y": b, "z": c}) == [["x", "y"]]
    assert seed_groups({"x": a, "y": a}) == []  # the same seed twice is no seed grid
    assert seed_groups({"x": a, "w": a, "y": b}) == [["x", "y"]]  # a replicate of seed 0 is left out


def test_seed_groups_keep_apart_models_that_differ_only_in_their_spec(results):
    """Two variants of one named model (e.g. 2 vs 3 layers, another logit scale) are two grids,
    told apart by the spec digest, not merged as replicates of each other's seeds."""
    def variant(seed: int, digest: str) -> Results:
        out = copy.deepcopy(results)
        out["seed"], out["model"]["spec_digest"] = seed, digest
        return Results.from_dict(out)

    runs = {"two-s0": variant(0, "a" * 64), "two-s1": variant(1, "a" * 64),
            "three-s0": variant(0, "b" * 64), "three-s1": variant(1, "b" * 64)}
    assert seed_groups(runs) == [["two-s0", "two-s1"], ["three-s0", "three-s1"]]


# ---------------------------------------------------------------- formatting and figures
def test_rate_formatting():
    assert fmt.rate(Rate.of(91, 94)) == "96.8% [91.0, 98.9], 91/94"
    assert fmt.rate(Rate.of(0, 0)) == "n/a (0 rows)"
    assert fmt.num_ci(Rate.of(1, 2), digits=2) == "0.50 [0.09, 0.91]"
    assert fmt.num_ci(None, 1649.0) == "1,649"
    assert fmt.mean_ci_pct(0.951, 0.93, 0.972) == "95.1% [93.0, 97.2]" and fmt.mean_ci_pct(0.5, None, None) == "50.0%"


def test_figures_take_values_with_intervals():
    assert figures.point(Rate.of(1, 4)) == pytest.approx((25.0, 100 * wilson(1, 4)[0], 100 * wilson(1, 4)[1]))
    assert np.isnan(figures.point(None)).all() and np.isnan(figures.point(0.5)[1:]).all()
    plain = figures.grouped_bars(["a", "b"], {"s": [0.25, 0.5]}, "t", "y")
    with_bars = figures.grouped_bars(["a", "b"], {"s": [Rate.of(1, 4), Rate.of(2, 4)]}, "t", "y")
    assert plain != with_bars  # the error bars are drawn
    assert with_bars == figures.grouped_bars(["a", "b"], {"s": [Rate.of(1, 4), Rate.of(2, 4)]}, "t", "y")


def test_report_tables_carry_intervals(built_run, tmp_path):
    from harness.report import write_run_report

    run = Path(shutil.copytree(built_run, tmp_path / "tiny"))
    md = (write_run_report(run, budgets=BUDGETS).parent / "report.md").read_text()
    assert f"75.0% [{100 * wilson(3, 4)[0]:.1f}, {100 * wilson(3, 4)[1]:.1f}], 3/4" in md  # offline success
    assert "2 [1, 8]" in md  # median L0 with its bootstrap interval
    assert "stalled (of failed)" in md and "all-zero gradient (of failed)" in md
    assert "stalls not tracked" in md and "100.0% [20.7, 100.0], 1/1 stalled" in md
    assert csv_text([]) == ",".join(CSV_COLUMNS) + "\n"


def test_report_has_an_across_seeds_section_for_seed_grids(results):
    from PIL import Image

    from harness.report.sections import Labels, seeds_section

    runs = {"tiny-s0": _seed_variant(results, 0, 3), "tiny-s1": _seed_variant(results, 1, 2)}
    section = seeds_section(runs, Labels(untargeted="G2S+RSF"))
    (table,) = section.tables
    cells = {(row[0], row[1], row[2]): row[3] for row in table.rows}
    mean, low, high = mean_interval([0.75, 0.5])
    pooled = Rate.of(5, 8)
    assert cells[("G2S+RSF", "offline", "success")] == (
        f"{fmt.mean_ci_pct(mean, max(low, 0), min(high, 1))} over 2 seeds; pooled {fmt.rate(pooled)}")
    assert ("(clean)", "offline", "clean accuracy") in cells and ("G2S+RSF", PROFILE, "transfer") in cells
    Image.open(io.BytesIO(section.figures[0].png)).load()
    assert seeds_section({"tiny-s0": runs["tiny-s0"]}, Labels()) is None


@pytest.mark.parametrize("change, where", [
    (lambda r: r.update(k=-1), "success_rate_ci/k"),
    (lambda r: r.update(low=1.5), "success_rate_ci/low"),
    (lambda r: r.update(extra=1), "success_rate_ci"),  # a closed record
])
def test_schema_checks_rate_records(results, change, where):
    from harness.errors import DataError

    bad = copy.deepcopy(results)
    change(_attack(bad, "untargeted")["offline"]["success_rate_ci"])
    with pytest.raises(DataError, match=where):
        Results.from_dict(bad)
