"""SDA (issue 24): every applied flip lowered the margin when tested alone; the example is binary,
fooled, honours the threat and the passes cap. The small digits model of the attack tests."""
from __future__ import annotations

import numpy as np
import torch

from harness.attacks.scores import class_scores, margin
from harness.attacks.sda import _single_flip_fd, sda_row, succeeded
from harness.models import attack_surrogate
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
        assert succeeded(net, torch.from_numpy(adv.astype(np.float32))[None], int(y[row]), -1)
        assert 0 < (adv != x[row]).sum() <= stats["l0_before_reduction"]
        assert stats["applied_fd"] and max(stats["applied_fd"]) < 0  # each applied flip lowered L alone
    assert won >= 1


def test_single_flip_fd_is_the_margin_change_of_each_flip(model_and_data):
    net, x, y = model_and_data
    row = torch.from_numpy(x[0].astype(np.float32))[None]
    base = float(margin(class_scores(net, row), int(y[0]), False))
    chosen = torch.tensor([0, 5, 17])
    fd = _single_flip_fd(net, row, chosen, int(y[0]), False, base, batch_size=2)
    for i, element in enumerate(chosen.tolist()):
        flipped = row.clone().view(-1)
        flipped[element] = 1 - flipped[element]
        assert fd[i] == float(margin(class_scores(net, flipped.view(row.shape)), int(y[0]), False)) - base


def test_class_scores_break_count_ties_by_less_than_half_a_spike(model_and_data):
    net, x, _ = model_and_data
    rows = torch.from_numpy(x[:8].astype(np.float32))
    with torch.no_grad():
        counts, scores = net(rows).sum(-1), class_scores(net, rows)
    assert (scores - counts).abs().max() < 0.25 and not torch.equal(scores, counts)
    assert (margin(scores, 0, True) == -margin(scores, 0, False)).all()


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
    assert record.attrs["params"]["surrogate"] == "pdsg" and record.attrs["threat"] == "flips"
    attacked = record.correct_before
    assert (record.backward_passes[attacked] >= 1).all() and (record.forward_passes[~attacked] == 0).all()
    assert main(["attack", "--run", str(digits_run), "--method", "sda", "--max-passes", "0", "--no-progress"]) == 2
    assert "--max-passes must be >= 1" in capsys.readouterr().err


def test_sda_does_not_depend_on_the_batch(model_and_data):
    net, x, y = model_and_data
    small, stats_small = sda_row(net, x[1], int(y[1]), iterations=8, max_passes=600, batch_size=7)
    large, stats_large = sda_row(net, x[1], int(y[1]), iterations=8, max_passes=600, batch_size=128)
    assert np.array_equal(small, large) and stats_small == stats_large


def test_targeted_sda_reaches_its_seeded_target(digits_run):
    from harness.attacks.methods.sda import SdaConfig, sda_attack_id
    from harness.cli import main
    from harness.runs import open_run

    args = ["attack", "--run", str(digits_run), "--method", "sda", "--targeted", "random", "--n", "4",
            "--iterations", "20", "--max-passes", "2000", "--no-progress"]
    assert main(args) == 0
    record = open_run(digits_run).attack(sda_attack_id(SdaConfig(iterations=20, max_passes=2000), 4, "random"))
    assert (record.targets >= 0).all() and (record.targets != record.labels).all()
    assert record.success.any() and (record.pred_adv[record.success] == record.targets[record.success]).all()


def test_pdsg_gradient_of_a_row_does_not_depend_on_its_batch(model_and_data):
    net, x, y = model_and_data

    def grad(rows: np.ndarray) -> torch.Tensor:
        xs = torch.from_numpy(rows.astype(np.float32)).requires_grad_(True)
        with attack_surrogate(net, "pdsg"):
            (g,) = torch.autograd.grad(class_scores(net, xs)[:, 0].sum(), xs)
        return g[0]

    alone, batched, own = grad(x[:1]), grad(x[:5]), None
    assert torch.allclose(alone, batched, atol=1e-6) and alone.abs().sum() > 0
    xs = torch.from_numpy(x[:1].astype(np.float32)).requires_grad_(True)
    (own,) = torch.autograd.grad(class_scores(net, xs)[:, 0].sum(), xs)  # the model's surrogate again after the block
    assert not torch.allclose(own[0], alone)
