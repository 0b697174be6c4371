"""Issue 14's attack options: the count-margin loss, stalled rows, the fixed-surrogate threshold
override, the near-zero RSF trigger and budgets enforced inside the update
(../shared/notes/attack-spec.md). A small digits model trained for a few epochs; seconds."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from harness.attacks import AttackConfig, AttackRecord, craft, format_summary, random_flips
from harness.attacks.g2s import apply_update, restrict_to_budget
from harness.attacks.loop import STALL_WINDOW
from harness.attacks.rsf import rsf_priority
from harness.attacks.runner import attack_id
from harness.cli import main
from harness.errors import ConfigError
from harness.models import CountMargin, attack_threshold, build_network, count_margin, load_checkpoint, load_spec, make_loss
from harness.runs import open_run
from harness.store import RunDir
from test_attacks import digits_run  # noqa: F401  (the digits model of the attack tests, trained per module)


@pytest.fixture(scope="module")
def model_and_data(digits_run):
    net = load_checkpoint(RunDir(digits_run).checkpoint)
    data = open_run(digits_run).test(n=30)
    return net, data.spikes, data.labels


# ------------------------------------------------------------------ the margin objective
def test_count_margin_is_best_other_minus_own_and_flows_through_the_spikes():
    counts = torch.tensor([[3.0, 7.0, 7.0, 1.0], [5.0, 0.0, 2.0, 2.0]])
    assert count_margin(counts, torch.tensor([1, 0])).tolist() == [0.0, -3.0]  # a tie counts 0
    out = torch.zeros(2, 4, 5, requires_grad=True)
    with torch.no_grad():
        out[0, 1, :3] = 1
        out[0, 2, :2] = 1
        out[1, 3, :4] = 1
    loss = make_loss(load_spec("digits-mlp"), "margin")
    assert isinstance(loss, CountMargin)
    value = loss(out, torch.tensor([1, 3]))
    assert value.item() == (2 - 3) + (0 - 4)
    (grad,) = torch.autograd.grad(value, out)
    assert torch.equal(grad[0, 1], -torch.ones(5)) and torch.equal(grad[0, 2], torch.ones(5))
    assert torch.equal(grad[0, 0], torch.zeros(5))
    # row 1: classes 0, 1, 2 tie for the best other count (0 spikes) and share its gradient
    assert torch.allclose(grad[1, :3], torch.full((3, 5), 1 / 3)) and torch.equal(grad[1, 3], -torch.ones(5))


def test_margin_attack_succeeds_and_is_in_the_id(model_and_data):
    net, x, y = model_and_data
    record = craft(net, x, y, AttackConfig(loss="margin", iterations=10))
    s = record.stats()
    assert s["n_correct_before"] >= 20 and s["success_rate"] >= 0.9
    assert record.attrs["params"]["loss"] == "margin"
    assert attack_id(AttackConfig(loss="margin"), None, 100, "margin") == "g2s-rsf_u_k25_g0.05_e1_mg_n100_s0"


def test_targeted_margin_descends_towards_the_target(model_and_data):
    net, x, y = model_and_data
    targets = (y + 1) % 10
    record = craft(net, x, y, AttackConfig(loss="margin", iterations=15), targets=targets)
    ok = record.correct_before
    assert record.success[ok].mean() >= 0.8
    assert np.array_equal(record.pred_adv[record.success], targets[record.success])


# ------------------------------------------------------------------ settings and ids
@pytest.mark.parametrize("bad, field", [
    ({"threshold_mode": "wide"}, r"\(--threshold-mode\)"), ({"threshold_mode": "fixed-surrogate"}, "needs --attack-threshold"),
    ({"rsf_trigger_ratio": 1.0}, "^--rsf-trigger-ratio"), ({"rsf_trigger_ratio": 0.1, "method": "g2s"}, "^--rsf-trigger-ratio"),
    ({"budget_mode": "clip"}, r"\(--budget-mode\)"), ({"budget_mode": "truncate"}, "needs a budget \\(--max-flips"),
    ({"loss": "hinge"}, r"\(--loss\).*margin"), ({"attack_threshold": -1.0}, "^--attack-threshold"),
    ({"max_flips": 0}, "^--max-flips"), ({"max_flip_rate": 2.0}, "^--max-flip-rate"), ({"method": "x"}, r"\(--method\)"),
])
def test_every_validation_error_names_the_field(bad, field):
    with pytest.raises(ConfigError, match=field):
        AttackConfig(**bad)


def test_new_settings_are_in_to_dict_and_only_non_defaults_change_the_id():
    base = attack_id(AttackConfig(), None, 100, "spike-rate")
    assert base == "g2s-rsf_u_k25_g0.05_e1_sr_n100_s0"  # ids of existing files stay valid
    config = AttackConfig(max_flips=300, budget_mode="truncate", attack_threshold=2.5,
                          threshold_mode="fixed-surrogate", rsf_trigger_ratio=0.01)
    assert attack_id(config, None, 100, "margin") == "g2s-rsf_u_k25_g0.05_e1_b300_bt_th2.5_fs_rz0.01_mg_n100_s0"
    d = config.to_dict()
    assert (d["budget_mode"], d["threshold_mode"], d["rsf_trigger_ratio"]) == ("truncate", "fixed-surrogate", 0.01)


# ------------------------------------------------------------------ threshold override modes
def test_fixed_surrogate_mode_changes_the_threshold_alone():
    net = build_network(load_spec("digits-mlp"), seed=0)
    neuron = net.spiking_blocks[-2].neuron
    threshold, tau_rho = neuron._threshold, neuron.tau_rho
    with attack_threshold(net, 2 * threshold, "scale-surrogate"):
        assert neuron._threshold == pytest.approx(2 * threshold, rel=1e-2)
        assert neuron.tau_rho == pytest.approx(tau_rho * neuron._threshold / threshold)
    with attack_threshold(net, 2 * threshold, "fixed-surrogate"):
        assert neuron._threshold == pytest.approx(2 * threshold, rel=1e-2) and neuron.tau_rho == tau_rho
    assert (neuron._threshold, neuron.tau_rho) == (threshold, tau_rho)
    with pytest.raises(ConfigError, match="threshold_mode 'both' unknown"):
        with attack_threshold(net, 2.0, "both"):
            pass


def test_the_two_threshold_modes_give_different_gradients(model_and_data):
    net, x, y = model_and_data
    records = [craft(net, x[:12], y[:12], AttackConfig(iterations=3, attack_threshold=3.0, threshold_mode=mode))
               for mode in ("scale-surrogate", "fixed-surrogate")]
    assert not np.array_equal(records[0].adversarial, records[1].adversarial)


# ------------------------------------------------------------------ budgets inside the update
def test_restrict_to_budget_keeps_reverts_and_the_most_useful_new_flips():
    clean = torch.zeros(2, 8)
    spikes = clean.clone()
    spikes[0, :2] = 1                     # row 0: L0 = 2 already
    update = torch.zeros(2, 8)
    update[0, 0] = -1                     # a revert (L0 - 1)
    update[0, 3:7] = 1                    # four new flips
    update[0, 1] = 1                      # overflow: dropped by the update anyway
    update[1, :] = 1                      # row 1: eight new flips
    priority = torch.arange(8.0).repeat(2, 1)
    out = restrict_to_budget(spikes, clean, update, budget=3, priority=priority)
    after = apply_update(spikes.clone(), out)
    l0 = (after != clean).sum(1)
    assert l0.tolist() == [3, 3]
    assert out[0, 0] == -1 and out[0, 5:7].tolist() == [1, 1] and out[0, 3:5].tolist() == [0, 0]
    assert out[1].tolist() == [0, 0, 0, 0, 0, 1, 1, 1]
    assert torch.equal(restrict_to_budget(spikes, clean, update, budget=50, priority=priority), update)


def test_budget_aware_rsf_keeps_the_smallest_draws():
    u = torch.tensor([[0.04, 0.01, 0.5, 0.03]])
    assert restrict_to_budget(torch.zeros(1, 4), torch.zeros(1, 4), torch.tensor([[1.0, 1, 0, 1]]), 2,
                              rsf_priority(u)).tolist() == [[0, 1, 0, 1]]


@pytest.mark.parametrize("method", ["g2s-rsf", "rsf"])
def test_truncate_mode_never_exceeds_the_budget(model_and_data, method):
    net, x, y = model_and_data
    budget = 40
    stop = craft(net, x, y, AttackConfig(method=method, iterations=10, max_flips=budget, gamma=0.01))
    cut = craft(net, x, y, AttackConfig(method=method, iterations=10, max_flips=budget, gamma=0.01,
                                        budget_mode="truncate"))
    ok = cut.correct_before
    assert (cut.l0_before_reduction <= budget).all() and (cut.l0[cut.success] <= budget).all()
    assert (cut.l0_before_reduction[ok & ~cut.success] == budget).any()  # spent rows stopped at the budget
    assert (stop.l0_before_reduction[ok & ~stop.success] > budget).any()  # the spec's rule: over, then stop
    assert cut.stats()["budget_curve"] == {"kind": "final-l0", "enforced_budget": budget, "budget_mode": "truncate"}
    assert stop.stats()["budget_curve"]["budget_mode"] == "stop"


# ------------------------------------------------------------------ RSF trigger
def test_near_zero_trigger_lets_rsf_act_where_the_gradient_never_reaches_zero(model_and_data):
    net, x, y = model_and_data
    exact = craft(net, x, y, AttackConfig(eta=0.02, iterations=6))
    near = craft(net, x, y, AttackConfig(eta=0.02, iterations=6, rsf_trigger_ratio=0.95))
    ok = exact.correct_before
    assert exact.zero_grad_iterations[ok].sum() == 0 and exact.rsf_iterations[ok].sum() == 0
    assert near.rsf_iterations[ok].sum() > 0 and near.zero_grad_iterations[ok].sum() == 0


# ------------------------------------------------------------------ stalled rows
def test_stalled_rows_are_failed_rows_whose_margin_stopped_moving(model_and_data, tmp_path):
    net, x, y = model_and_data
    record = craft(net, x, y, AttackConfig(method="g2s", eta=1e-6, iterations=STALL_WINDOW + 3))
    ok, failed = record.correct_before, record.correct_before & ~record.success
    assert record.stalled.dtype == bool and record.stalled[ok].sum() >= 10  # almost no flips: nothing moves
    assert not (record.stalled & ~failed).any()
    s = record.stats()
    assert s["stalled_rows"] == int(record.stalled.sum()) and s["stall_window"] == STALL_WINDOW
    assert s["stalled_share"] == pytest.approx(record.stalled.sum() / failed.sum())
    assert s["zero_grad_share"] == 0.0
    assert "stalled" in format_summary(record) and "final L0 of this one run" in format_summary(record)
    moving = craft(net, x, y, AttackConfig(loss="margin", iterations=10))
    assert not moving.stalled[moving.success].any()
    path = record.save(tmp_path / "a.h5")
    assert np.array_equal(AttackRecord.load(path).stalled, record.stalled)


def test_records_without_stall_tracking_say_so(model_and_data, tmp_path):
    net, x, y = model_and_data
    baseline = random_flips(net, x, y, np.full(len(y), 5))
    loaded = AttackRecord.load(baseline.save(tmp_path / "random.h5"))
    s = loaded.stats()
    assert loaded.stalled is None and s["stalled_rows"] is None and s["zero_grad_share"] is None
    assert "stalled" not in format_summary(loaded)


# ------------------------------------------------------------------ determinism and the CLI
@pytest.mark.parametrize("config", [
    AttackConfig(loss="margin", eta=0.3, iterations=6),
    AttackConfig(eta=0.3, iterations=6, max_flips=60, budget_mode="truncate"),
    AttackConfig(eta=0.05, iterations=6, rsf_trigger_ratio=0.9),
    AttackConfig(eta=0.3, iterations=6, attack_threshold=2.0, threshold_mode="fixed-surrogate", loss="margin"),
], ids=["margin", "truncate", "near-zero-rsf", "fixed-surrogate"])
def test_new_options_give_the_same_spikes_whatever_the_batch_size(model_and_data, config):
    net, x, y = model_and_data
    records = [craft(net, x, y, config, batch_size=b) for b in (30, 7)]
    assert np.array_equal(records[0].adversarial, records[1].adversarial)
    assert np.array_equal(records[0].stalled, records[1].stalled)
    assert np.array_equal(records[0].rsf_iterations, records[1].rsf_iterations)


def test_cli_attack_with_the_new_flags(digits_run, capsys):
    args = ["attack", "--run", str(digits_run), "--n", "12", "--loss", "margin", "--max-flips", "80",
            "--budget-mode", "truncate", "--iterations", "5", "--no-progress"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "g2s-rsf_u_k5_g0.05_e1_b80_bt_mg_n12_s0" in out and "failed rows" in out
    assert "enforced 80 flips, budget_mode truncate" in out
