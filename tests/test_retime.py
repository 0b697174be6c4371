"""Spike retiming (issue 24): every channel keeps its spike count, each budget (inf, l1, l0) holds
exactly, results do not depend on the batch, fooled rows are misclassified, bad budgets get one
line. The small digits model of the attack tests; seconds."""
from __future__ import annotations

import numpy as np
import pytest

from harness.attacks.methods.retime import RetimeConfig, retime_record
from harness.attacks.retime import RetimeBudget, Spikes, project
from harness.cli import main
from harness.errors import ConfigError
from harness.metrics import predict
from harness.settings import build, toml_key
from harness.train import output_counts
from test_attack_science import model_and_data  # noqa: F401  (the digits model and 30 test samples)
from test_attacks import digits_run  # noqa: F401  (the digits model of the attack tests, trained per module)

BUDGETS = ["inf:1", "inf:3", "l1:40", "l0:15"]


def _channel_times(row: np.ndarray) -> list[np.ndarray]:
    """Each channel's spike times, sorted (a row (*shape, T))."""
    flat = row.reshape(-1, row.shape[-1])
    return [np.flatnonzero(line) for line in flat]


def _check_budget(clean: np.ndarray, adv: np.ndarray, budget: RetimeBudget, moved: int, shift: int) -> None:
    """Counts per channel kept; the cheapest matching of old to new times (sorted order, which minimises
    both the largest and the total shift) fits the budget, and so do the recorded moves."""
    for old, new in zip(_channel_times(clean), _channel_times(adv)):
        assert len(old) == len(new)
        if budget.kind == "inf" and len(old):
            assert np.abs(new - old).max() <= budget.size
    assert (adv != clean).sum() <= 2 * moved
    if budget.kind == "l1":
        assert sum(np.abs(n - o).sum() for o, n in zip(_channel_times(clean), _channel_times(adv))) <= shift <= budget.size
    if budget.kind == "l0":
        assert moved <= budget.size


@pytest.mark.parametrize("text", BUDGETS)
def test_projection_keeps_every_channel_count_and_honours_the_budget(text):
    budget = RetimeBudget.parse(text)
    rng = np.random.default_rng(1)
    row = (rng.random((6, 12)) < 0.35).astype(np.uint8)
    spikes = Spikes.of(row)
    targets, valid, stay = spikes.options(budget)
    for trial in range(5):
        pi = rng.random(targets.shape)
        times = project(pi, spikes, targets, valid, stay, budget)
        adv = spikes.dense(times).reshape(row.shape).astype(np.uint8)
        shift = np.abs(times - spikes.time)
        _check_budget(row, adv, budget, int((shift > 0).sum()), int(shift.sum()))
        assert int((shift > 0).sum()) > 0
        if budget.kind != "inf":  # B_1 / B_0 spend what they can
            assert (shift.sum() if budget.kind == "l1" else (shift > 0).sum()) > budget.size // 2


@pytest.mark.parametrize("text", BUDGETS)
def test_every_row_keeps_its_channel_counts_and_its_budget(model_and_data, text):
    net, x, y = model_and_data
    record = retime_record(net, x[:12], y[:12], np.arange(12), RetimeConfig(retime_budget=text, iterations=6), 64)
    budget = RetimeBudget.parse(text)
    for row in range(12):
        _check_budget(record.clean[row], record.adversarial[row], budget, int(record.spikes_moved[row]),
                      int(record.total_shift[row]))
    assert (record.l0 == (record.adversarial != record.clean).reshape(12, -1).sum(1)).all()
    assert ((record.spikes_moved > 0) == record.success).all()


def test_fooled_rows_are_misclassified_and_results_do_not_depend_on_the_batch(model_and_data):
    net, x, y = model_and_data
    config = RetimeConfig(retime_budget="inf:3", iterations=10, seed=2)
    full = retime_record(net, x[:16], y[:16], np.arange(16), config, 64)
    part = retime_record(net, x[5:16], y[5:16], np.arange(5, 16), config, 3)
    assert np.array_equal(full.adversarial[5:], part.adversarial)
    assert np.array_equal(full.forward_passes[5:], part.forward_passes)
    won = full.success
    assert won.any()
    assert (predict(output_counts(net, full.adversarial[won])) != y[:16][won]).all()
    assert (full.forward_passes[won] <= config.steps + 1).all() and (full.backward_passes <= config.steps).all()


@pytest.mark.parametrize("value, message", [
    ("inf:0", "--retime-budget inf:0: the budget must be an integer >= 1, got 0"),
    ("l1:-3", "--retime-budget l1:-3: the budget must be an integer >= 1, got -3"),
    ("xyz:2", "--retime-budget xyz:2: expected inf:D (each shift <= D steps), l1:N"),
])
def test_a_bad_budget_is_one_clear_line(tmp_path, capsys, value, message):
    assert main(["attack", "--run", str(tmp_path), "--method", "retime", "--retime-budget", value]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    with pytest.raises(ConfigError, match=f"^'retime_budget' {value}: "):  # a TOML file names the key
        build(RetimeConfig, {"retime_budget": value}, toml_key)


def test_a_shift_as_long_as_the_recording_is_refused_and_the_cli_records_the_moves(digits_run, capsys):
    from harness.runs import open_run
    steps = open_run(digits_run).test(n=1).spikes.shape[-1]
    args = ["attack", "--run", str(digits_run), "--method", "retime", "--n", "4", "--no-progress"]
    assert main([*args, "--retime-budget", f"inf:{steps}"]) == 2
    assert f"--retime-budget inf:{steps}: D must be < the input's {steps} time steps" in capsys.readouterr().err
    assert main([*args, "--retime-budget", "inf:2", "--iterations", "3"]) == 0
    assert "retiming inf:2: median spikes moved" in capsys.readouterr().out
    record = open_run(digits_run).attack("retime_inf2_k3_n4_s0")
    assert record.attrs["method"] == "retime" and record.attrs["threat"] == "retime"
    assert record.spikes_moved.shape == record.total_shift.shape == (4,)
