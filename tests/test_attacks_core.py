"""The attack's building blocks against their definitions (../shared/notes/attack-spec.md)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from harness.attacks import AttackConfig, AttackRecord, apply_update, attack_id, expand_targets, g2s, is_success, rsf
from harness.attacks.baselines import random_flip_inputs
from harness.attacks.g2s import g2s_probability
from harness.attacks.randomness import row_generators, row_seed, uniform
from harness.attacks.reduce import MAX_TRIALS, _RowReduction
from harness.errors import ConfigError, DataError


def test_g2s_expected_changes_equal_the_sum_of_probabilities():
    """Without overflow (S=0 where g>0, S=1 where g<0) E[#changes] = sum(|g| / max|g|)."""
    gen = torch.Generator().manual_seed(0)
    grad = torch.randn(1, 2000, generator=gen)
    spikes = (grad < 0).float()
    p = g2s_probability(grad)
    updated = [apply_update(spikes, g2s(grad, gen)) for _ in range(400)]
    assert all(set(u.unique().tolist()) <= {0.0, 1.0} for u in updated)
    changes = torch.stack([(u != spikes).sum() for u in updated]).float()
    expected, sd = p.sum().item(), (p * (1 - p)).sum().sqrt().item()
    assert abs(changes.mean().item() - expected) < 5 * sd / 20  # 5 sigma of the mean of 400 draws
    assert p.max().item() == pytest.approx(1.0)


def test_g2s_step_scale_multiplies_probabilities_and_zero_gradient_changes_nothing():
    gen = torch.Generator().manual_seed(1)
    grad = torch.randn(3, 50, generator=gen)
    grad[1] = 0
    assert torch.allclose(g2s_probability(grad, eta=0.1), 0.1 * g2s_probability(grad))
    d = g2s(grad, row_generators(0, [0, 1, 2]))
    assert set(d.unique().tolist()) <= {-1.0, 0.0, 1.0}
    assert d[1].abs().sum() == 0
    assert torch.equal(torch.sign(d[0]) * torch.sign(grad[0]) >= 0, torch.ones(50, dtype=torch.bool))


def test_overflow_aware_update_keeps_spikes_binary():
    spikes = torch.tensor([[0.0, 0.0, 1.0, 1.0, 0.0, 1.0]])
    d = torch.tensor([[1.0, -1.0, 1.0, -1.0, 0.0, 0.0]])
    assert apply_update(spikes, d).tolist() == [[1.0, 0.0, 1.0, 0.0, 0.0, 1.0]]


def test_rsf_flips_about_gamma_of_the_elements_and_stays_binary():
    gen = torch.Generator().manual_seed(2)
    spikes = (torch.rand(4, 5000, generator=gen) < 0.3).float()
    after = apply_update(spikes, rsf(spikes, 0.05, gen))
    assert set(after.unique().tolist()) <= {0.0, 1.0}
    rate = (after != spikes).float().mean().item()
    assert abs(rate - 0.05) < 5 * np.sqrt(0.05 * 0.95 / 20000)


def test_per_row_draws_do_not_depend_on_the_batch():
    together = uniform(row_generators(7, [0, 1, 2, 3]), (4, 10))
    alone = torch.cat([uniform(row_generators(7, [i]), (1, 10)) for i in range(4)])
    assert torch.equal(together, alone)
    assert not torch.equal(together[0], together[1])


def test_row_seeds_differ_by_target_and_stream():
    seeds = {row_seed(0, 5), row_seed(0, 5, 3), row_seed(0, 5, 4), row_seed(0, 5, stream=1), row_seed(1, 5)}
    assert len(seeds) == 5
    assert row_seed(0, 5, 3) == row_seed(0, 5, 3)
    with pytest.raises(ConfigError, match="seed"):
        row_seed(-1, 0)


def test_random_flip_inputs_flip_exactly_l0():
    clean = (np.random.default_rng(0).random((3, 2, 20)) < 0.5).astype(np.uint8)
    l0 = np.array([0, 7, 40])
    noisy = random_flip_inputs(clean, l0, row_generators(0, [0, 1, 2]))
    assert ((noisy != clean).reshape(3, -1).sum(1) == l0).all()
    assert set(np.unique(noisy)) <= {0, 1}


def test_target_modes():
    labels = np.array([0, 3])
    rows, targets = expand_targets("every-other", labels, 10, np.arange(2))
    assert rows.tolist() == [0] * 9 + [1] * 9
    assert targets[:9].tolist() == list(range(1, 10)) and 3 not in targets[9:]
    _, random_targets = expand_targets("random", labels, 10, np.arange(2), seed=4)
    assert (random_targets != labels).all()
    assert random_targets.tolist() == expand_targets("random", labels, 10, np.arange(2), seed=4)[1].tolist()
    counts = np.array([[0, 5, 1, 0, 9, 9, 9, 9, 9, 9], [3, 3, 3, 0, 2, 9, 9, 9, 9, 9]])
    assert expand_targets("least-likely", labels, 10, np.arange(2), clean_counts=counts)[1].tolist() == [3, 4]
    untargeted = expand_targets(None, labels, 10, np.arange(2))
    assert untargeted[1].tolist() == [-1, -1]
    with pytest.raises(ConfigError, match="available"):
        expand_targets("nearest", labels, 10, np.arange(2))


def test_success_rule_with_ties_and_targets():
    pred = np.array([-1, 2, 1, 4, 4])
    labels = np.array([1, 1, 1, 1, 1])
    targets = np.array([-1, -1, -1, 4, 5])
    assert is_success(pred, labels, targets).tolist() == [False, True, False, True, False]


def test_config_validation_names_the_option():
    for bad, option in [({"iterations": 0}, "^iterations"), ({"gamma": 0}, "^gamma"), ({"eta": 1.5}, "^eta"),
                        ({"max_flips": 3, "max_flip_rate": 0.1}, "at most one"), ({"method": "fgsm"}, "available"),
                        ({"loss": "mse"}, "available"), ({"seed": -2}, "^seed")]:
        with pytest.raises(ConfigError, match=option):
            AttackConfig(**bad)
    assert AttackConfig(max_flip_rate=0.01).budget(1000) == 10


def test_attack_id_encodes_settings_and_is_filesystem_safe():
    base = attack_id(AttackConfig(), None, 100, "spike-rate")
    assert base == "g2s-rsf_u_k25_g0.05_e1_sr_n100_s0"
    sparse = attack_id(AttackConfig(eta=0.05, iterations=100, reduce=True, max_flips=500, attack_threshold=2.5,
                                    seed=3), "every-other", 50, "cross-entropy")
    assert sparse == "g2s-rsf_eo_k100_g0.05_e0.05_red_b500_th2.5_ce_n50_s3"
    ids = {attack_id(AttackConfig(max_flip_rate=r), mode, 10, "spike-rate")
           for r in (1e-5, 0.01) for mode in (None, "random", "least-likely")}
    assert len(ids) == 6 and all(all(c.isalnum() or c in "._-" for c in i) for i in ids)


def test_prefix_search_then_greedy_halving_find_the_needed_flips():
    """Oracle: adversarial iff flips 3 and 11 are both kept; the reduction keeps exactly those."""
    order = np.arange(20)
    state = _RowReduction(order, pred=7)
    while (trial := state.next_trial()) is not None:
        state.result({3, 11} <= set(trial.tolist()), 7)
    assert sorted(state.best.tolist()) == [3, 11]
    assert state.trials <= MAX_TRIALS


def test_record_round_trip_and_stats(tmp_path):
    rows = 4
    clean = np.zeros((rows, 2, 5), np.uint8)
    adv = clean.copy()
    adv[0, 0, :3] = 1
    record = AttackRecord(
        clean=clean, adversarial=adv, labels=np.array([1, 1, 2, 3]), targets=np.full(rows, -1),
        sample_index=np.arange(rows), pred_clean=np.array([1, 1, 2, 0]), pred_adv=np.array([4, 1, 2, 0]),
        correct_before=np.array([True, True, True, False]), success=np.array([True, False, False, False]),
        l0=np.array([3, 0, 0, 0]), l0_before_reduction=np.array([5, 9, 2, 0]),
        l0_at_success=np.array([5, -1, -1, -1]), iterations=np.array([2, 25, 1, 0]),
        rsf_iterations=np.array([1, 0, 0, 0]), zero_grad_iterations=np.array([1, 0, 0, 0]),
        attrs={"attack_id": "x", "params": {"eta": 1.0}})
    loaded = AttackRecord.load(record.save(tmp_path / "x.h5"))
    assert loaded.attrs["params"] == {"eta": 1.0}
    assert all(np.array_equal(getattr(loaded, n), getattr(record, n)) for n in AttackRecord.array_names())
    stats = loaded.stats(budgets=(2, 3))
    assert stats["n_correct_before"] == 3 and stats["success_rate"] == pytest.approx(1 / 3)
    assert stats["median_l0"] == 3 and stats["success_by_budget"] == {2: 0.0, 3: pytest.approx(1 / 3)}
    assert stats["rsf_iterations"] == 1 and "per_target" not in stats


def test_loading_a_non_attack_file_is_a_clear_error(tmp_path):
    from harness.store import write_h5
    write_h5(tmp_path / "d.h5", {"predictions": np.zeros(3)}, {}, kind="device")
    with pytest.raises(DataError, match="expected a 'attack' artifact"):
        AttackRecord.load(tmp_path / "d.h5")
