"""SpikeFool (issue 24): the final input is binary and within its L0 cap, fooled rows are misclassified,
the linear solver makes the authors' moves, the threats hold. The small digits model of the attack tests."""
from __future__ import annotations

import numpy as np
import torch

from harness.attacks.sda import succeeded
from harness.attacks.spikefool import linear_solve, spikefool_row
from test_attack_science import model_and_data  # noqa: F401  (the digits model and 30 test samples)
from test_attacks import digits_run  # noqa: F401  (the digits model of the attack tests, trained per module)


def test_spikefool_examples_are_binary_within_the_cap_and_misclassified(model_and_data):
    net, x, y = model_and_data
    won = 0
    for row in range(5):
        adv, stats = spikefool_row(net, x[row], int(y[row]), loops=5, deepfool_iterations=20, max_l0=60)
        assert adv.dtype == np.uint8 and set(np.unique(adv)) <= {0, 1}
        assert (adv != x[row]).sum() <= 60 and stats["backward_passes"] >= 1
        if stats["success"]:
            won += 1
            assert succeeded(net, torch.from_numpy(adv.astype(np.float32))[None], int(y[row]), -1)
        else:
            assert np.array_equal(adv, x[row])
    assert won >= 1


def test_linear_solver_moves_the_largest_normal_first_until_the_side_flips():
    x = np.zeros(4)
    normal = np.array([0.1, 0.8, -0.5, 0.3])
    point = np.full(4, 1.0)  # f(x) = normal . (x - point) = -0.7 < 0
    # coordinate 1 (0.8) moves 0 -> 1: f = 0.1, the side flipped; nothing else moves
    assert linear_solve(x, normal, point, np.zeros(4), np.ones(4)).tolist() == [0, 1, 0, 0]
    # coordinate 1 held at 0 by its bounds cannot move; 3 and 0 move fully and the side never flips: all moved
    high = np.array([1.0, 0.0, 1.0, 1.0])
    assert linear_solve(x, normal, point, np.zeros(4), high).tolist() == [1, 0, 0, 1]


def test_add_only_spikefool_removes_no_spike(model_and_data):
    net, x, y = model_and_data
    for row in range(2):
        adv, _ = spikefool_row(net, x[row], int(y[row]), loops=3, deepfool_iterations=10, max_l0=500,
                               threat="add-only")
        assert (adv >= x[row]).all()


def test_cli_spikefool_writes_a_record_with_its_cap_and_costs(digits_run):
    from harness.attacks.methods.spikefool import SpikeFoolConfig, spikefool_attack_id
    from harness.cli import main
    from harness.runs import open_run

    assert main(["attack", "--run", str(digits_run), "--method", "spikefool", "--n", "3", "--iterations", "3",
                 "--deepfool-iterations", "10", "--max-flips", "80", "--no-progress"]) == 0
    config = SpikeFoolConfig(iterations=3, deepfool_iterations=10, max_flips=80)
    record = open_run(digits_run).attack(spikefool_attack_id(config, 3))
    assert record.attrs["method"] == "spikefool" and record.attrs["threat"] == "flips"
    assert record.attrs["max_flips"] == 80 and (record.l0 <= 80).all()
    attacked = record.correct_before
    assert (record.forward_passes[attacked] >= 1).all() and (record.backward_passes[~attacked] == 0).all()


def test_an_experiment_table_runs_spikefool_through_the_registry(digits_run):
    from harness.experiment.spec import AttackPlan
    from harness.experiment.tasks import attack

    plan = AttackPlan(label="SpikeFool", method="spikefool", config=None, targeted=None, n=2, runs=["digits"],
                      settings={"iterations": 2, "deepfool_iterations": 5, "max_flips": 50, "seed": 0})
    result = attack(digits_run.parent, plan, digits_run.name, [10, 50], progress=False, inputs={})
    assert result.value == "spikefool_u_k2_d5_b50_sc_n2_s0" and result.output.exists()


def test_out_of_range_settings_are_one_line_each(digits_run, capsys):
    from harness.cli import main

    for flags, message in ((["--deepfool-iterations", "0"], "--deepfool-iterations must be >= 1, got 0"),
                           (["--max-flips", "0"], "--max-flips must be >= 1, got 0")):
        assert main(["attack", "--run", str(digits_run), "--method", "spikefool", *flags, "--no-progress"]) == 2
        assert message in capsys.readouterr().err
