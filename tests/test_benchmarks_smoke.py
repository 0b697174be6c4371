"""Smoke test of ``make bench``: every benchmark runs on a tiny size (``--plan smoke``, digits
only, no N-MNIST needed) and produces well-formed rows, in the printed table and in the JSON.
Benchmarks are not tests: nothing here looks at a timing's value."""
from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
RUN = REPO / "benchmarks" / "run.py"
SPEED_LABEL = "x faster"


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    """Model cache shared by the tests of this module (each smoke model is trained once)."""
    return tmp_path_factory.mktemp("bench-models")


def run_bench(only: str, cache: Path, results: Path) -> subprocess.CompletedProcess:
    """``benchmarks/run.py`` on the smoke plan."""
    return subprocess.run([sys.executable, str(RUN), "--plan", "smoke", "--only", only, "--cache", str(cache),
                           "--results", str(results), "--no-progress"], capture_output=True, text=True, timeout=600)


def check_rows(only: str, cache: Path, tmp_path: Path) -> list[dict]:
    """Run the benchmarks in ``only``; check the exit status, the JSON rows and the table."""
    results = tmp_path / "latest.json"
    done = run_bench(only, cache, results)
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads(results.read_text())
    assert report["plan"] == "smoke" and report["errors"] == {}
    assert report["machine"]["nproc"] >= 1 and report["machine"]["memory_gb"] > 0
    rows = report["rows"]
    assert {row["benchmark"] for row in rows} == set(only.split(","))
    for row in rows:
        assert isinstance(row["ours"], (int, float)) and math.isfinite(row["ours"]), row
        assert (row["goal"] is None) == (row["met"] is None), row
        if row["ratio_label"] == SPEED_LABEL:
            assert row["ratio"] == pytest.approx(row["baseline"] / row["ours"]), row
        assert f"| {row['figure']}" in done.stdout, f"{row['figure']} missing from the printed table"
    return rows


def test_attack_and_training_benchmarks_give_rows(cache, tmp_path):
    rows = check_rows("attack,training", cache, tmp_path)
    figures = [row["figure"] for row in rows]
    assert sum("time per sample" in f for f in figures) == 4 and sum("success rate" in f for f in figures) == 2
    assert sum("time per sample" in row["figure"] and row["goal"] is not None for row in rows) == 2
    for row in rows:
        if row["unit"] == "%":  # same code path and seeds: the batch size does not change results
            assert row["ratio"] == 0
    assert rows[-1]["unit"] == "samples/s" and rows[-1]["baseline"] is None
    (floor,) = [row for row in rows if "row-pass" in row["figure"]]
    assert floor["ratio"] == pytest.approx(floor["ours"] / floor["baseline"])
    assert floor["info"]["row_passes"] >= floor["info"]["samples"]  # every row is judged at least once


@pytest.mark.slow
def test_replay_and_scaling_benchmarks_give_rows(cache, tmp_path):
    rows = check_rows("replay,scaling", cache, tmp_path)
    replay = [row for row in rows if row["benchmark"] == "replay"]
    assert replay[0]["ratio_label"] == SPEED_LABEL and replay[0]["info"]["rasters_identical_to_naive"] == "2/2"
    memory = [row for row in rows if row["unit"] == "MB"]
    assert len(memory) == 2 and all(row["ours"] > 0 for row in memory)


@pytest.mark.slow
def test_query_benchmark_gives_rows(cache, tmp_path):
    rows = check_rows("query", cache, tmp_path)
    assert [row["ratio_label"] for row in rows] == ["x slower"] * 4 + [SPEED_LABEL] * 3
    device = rows[:4]  # batch 1 then 16, each before (stock synapses) and after (active columns)
    assert [(row["info"]["samples"], row["info"]["synapse"]) for row in device] == \
        [(1, "stock"), (1, "active"), (16, "stock"), (16, "active")]
    assert [row["goal"] is not None for row in device] == [False, False, False, True]


def test_unknown_benchmark_is_refused(tmp_path):
    done = run_bench("attack,nonsense", tmp_path, tmp_path / "r.json")
    assert done.returncode != 0
    assert "unknown benchmark(s) nonsense" in done.stderr and "available: attack" in done.stderr
