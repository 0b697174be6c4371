"""SDA (issue 24): every applied flip lowered the margin when tested alone; the example is binary,
fooled, honours the threat and the passes cap. The small digits model of the attack tests."""
from __future__ import annotations

import numpy as np
import torch

from harness.attacks.sda import _single_flip_fd, fooled, margin, sda_row
from test_attack_science import model_and_data  # noqa: F401  (the digits model and 30 test samples)
from test_attacks import digits_run  # noqa: F401  (the digits model of the attack tests, trained per module)


def test_sda_fools_rows_with_flips_that_each_lowered_the_margin(model_and_data):
    net, x, y = model_and_data
    won = 0
    for row in range(6):
        adv, stats = sda_row(net, x[row], int(y[row]), iterations=30, max_passes=3000)
        assert set(np.unique(adv)) <= {0, 1} and stats["forward_passes"] <= 3000 + 40
        if not stats["success"]:
            assert np.array_equal(adv, x[row])
            continue
        won += 1
        assert fooled(net, torch.from_numpy(adv.astype(np.float32))[None], int(y[row]))
        assert 0 < (adv != x[row]).sum() <= stats["l0_before_reduction"]
    assert won >= 1


def test_single_flip_fd_is_the_margin_change_of_each_flip(model_and_data):
    net, x, y = model_and_data
    row = torch.from_numpy(x[0].astype(np.float32))[None]
    base = float(margin(net, row, int(y[0])))
    chosen = torch.tensor([0, 5, 17])
    fd = _single_flip_fd(net, row, chosen, int(y[0]), base, batch_size=2)
    for i, element in enumerate(chosen.tolist()):
        flipped = row.clone().view(-1)
        flipped[element] = 1 - flipped[element]
        assert fd[i] == float(margin(net, flipped.view(row.shape), int(y[0]))) - base


def test_delete_only_sda_adds_no_spike(model_and_data):
    net, x, y = model_and_data
    for row in range(3):
        adv, _ = sda_row(net, x[row], int(y[row]), iterations=20, max_passes=2000, threat="delete-only")
        assert (adv <= x[row]).all()


def test_cli_sda_writes_a_record_with_its_cap_and_costs(digits_run, capsys):
    from harness.attacks.methods.sda import SdaConfig, sda_attack_id
    from harness.cli import main
    from harness.runs import open_run

    assert main(["attack", "--run", str(digits_run), "--method", "sda", "--n", "4", "--iterations", "20",
                 "--max-passes", "1500", "--no-progress"]) == 0
    record = open_run(digits_run).attack(sda_attack_id(SdaConfig(iterations=20, max_passes=1500), 4))
    assert record.attrs["method"] == "sda" and record.attrs["max_passes"] == 1500
    attacked = record.correct_before
    assert (record.backward_passes[attacked] >= 1).all() and (record.forward_passes[~attacked] == 0).all()
    assert main(["attack", "--run", str(digits_run), "--method", "sda", "--max-passes", "0", "--no-progress"]) == 2
    assert "--max-passes must be >= 1" in capsys.readouterr().err


def test_sda_does_not_depend_on_the_batch(model_and_data):
    net, x, y = model_and_data
    small, stats_small = sda_row(net, x[1], int(y[1]), iterations=8, max_passes=600, batch_size=7)
    large, stats_large = sda_row(net, x[1], int(y[1]), iterations=8, max_passes=600, batch_size=128)
    assert np.array_equal(small, large) and stats_small == stats_large
