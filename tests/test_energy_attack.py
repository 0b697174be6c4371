"""The energy ("sponge") attack: its objective, the loop's energy mode, records, the random
baseline and the device measurements (issue 13, item 4), on a small digits model."""
from __future__ import annotations

import re

import numpy as np
import pytest
import torch

from harness.attacks import AttackConfig, AttackRecord, craft, run_attack, run_random_baseline
from harness.attacks.energy import ENERGY_BUDGETS, SynapticOps, activity_ratio, fan_out, populations, random_energy_record
from harness.attacks.invariant import _effective_weight
from harness.cli import main
from harness.errors import ConfigError, DataError
from harness.models import make_loss, spec_from_dict
from harness.runs import open_run
from harness.settings import SettingError
from harness.train import forward_batches
from test_attacks import digits_run  # noqa: F401  (the digits model of the attack tests, trained per module)

ENERGY = dict(loss="energy", iterations=6, eta=0.1)


@pytest.fixture(scope="module")
def model_and_data(digits_run):
    run = open_run(digits_run)
    data = run.test(n=40)
    return run.net, data.spikes, data.labels


def _hidden_synops(net, spikes: np.ndarray) -> np.ndarray:
    """Hidden-layer synops recomputed by hand: hidden spikes x non-zero weights leaving each neuron."""
    weight = _effective_weight(net.spiking_blocks[1].synapse).numpy()
    fan_out = (weight != 0).sum(0)
    hidden = np.concatenate([layers[0].sum(-1).numpy() for layers in forward_batches(net, spikes)])
    return hidden @ fan_out


# ---------------------------------------------------------------- settings
@pytest.mark.parametrize("settings, key", [
    (dict(energy_target=1.5), "energy_target"),                     # needs an energy loss
    (dict(loss="margin", energy_target=1.5), "energy_target"),
    (dict(loss="energy", energy_target=1.0), "energy_target"),      # a ratio <= 1 is met by the clean input
    (dict(loss="energy", reduce=True), "reduce"),
    (dict(loss="energy", energy_objective="spikes"), "energy_objective"),
    (dict(energy_objective="synops"), "energy_objective"),                 # needs an energy loss
])
def test_bad_energy_settings_name_the_field(settings, key):
    with pytest.raises(SettingError) as err:
        AttackConfig(**settings)
    assert err.value.key == key


def test_make_loss_refuses_the_energy_objectives_without_the_network(model_and_data):
    with pytest.raises(ConfigError, match="SynapticOps"):
        make_loss(model_and_data[0].spec, "energy")


def test_a_network_without_hidden_layer_has_no_energy_objective():
    raw = {"name": "flat", "data": {"dataset": "digits", "steps": 8, "input_shape": [16]},
           "neuron": {"threshold": 1.0, "current_decay": 0.5, "voltage_decay": 0.5},
           "layers": [{"type": "dense", "out": 10}]}
    from harness.models import SpikingNetwork
    with pytest.raises(ConfigError, match="hidden layer"):
        fan_out(SpikingNetwork(spec_from_dict(raw, "flat")))


# ---------------------------------------------------------------- objective
def test_objectives_are_spikes_times_fan_out(model_and_data):
    net, x, _ = model_and_data
    first, second = (_effective_weight(block.synapse) for block in net.spiking_blocks)
    into_first, into_second = fan_out(net)
    assert torch.equal(into_second, (second != 0).sum(0).float())
    assert torch.equal(into_first.reshape(-1), (first != 0).sum(0).float())
    with torch.no_grad():
        pops = populations(net, torch.as_tensor(x[:5], dtype=torch.float32))
        hidden, every = SynapticOps(net).per_row(pops), SynapticOps(net, "synops").per_row(pops)
    assert np.array_equal(hidden.numpy(), _hidden_synops(net, x[:5]))
    inputs = x[:5].reshape(5, -1, x.shape[-1]).sum(-1) @ (first != 0).sum(0).numpy()
    assert np.array_equal(every.numpy(), _hidden_synops(net, x[:5]) + inputs)
    with pytest.raises(ConfigError, match="objective"):
        SynapticOps(net, "spikes")


def test_activity_ratio_of_silent_rows():
    assert activity_ratio(np.array([3.0, 0.0, 5.0]), np.array([2.0, 0.0, 0.0])).tolist() == [1.5, 1.0, np.inf]


# ---------------------------------------------------------------- the loop in energy mode
@pytest.mark.parametrize("loss", ["energy", "energy-stealthy"])
def test_energy_attack_is_the_same_for_every_batch_size(model_and_data, loss):
    net, x, y = model_and_data
    config = AttackConfig(**{**ENERGY, "loss": loss})
    records = [craft(net, x, y, config, batch_size=b) for b in (64, 7, 1)]
    for other in records[1:]:
        for name in AttackRecord.array_names():
            a, b = getattr(records[0], name), getattr(other, name)
            assert (a is None and b is None) or np.array_equal(a, b, equal_nan=True), name
    other_seed = craft(net, x, y, AttackConfig(**{**ENERGY, "loss": loss, "seed": 1}), batch_size=64)
    assert not np.array_equal(other_seed.adversarial, records[0].adversarial)


def test_energy_attack_raises_the_hidden_activity_and_records_it(model_and_data):
    net, x, y = model_and_data
    record = craft(net, x, y, AttackConfig(**ENERGY))
    ok = record.correct_before
    # the ratio stored is the objective's ratio on the stored examples, recomputed by hand
    expected = _hidden_synops(net, record.adversarial) / _hidden_synops(net, record.clean)
    assert np.allclose(record.activity_ratio[ok], expected[ok]) and np.isnan(record.activity_ratio[~ok]).all()
    assert record.activity_ratio[ok].mean() > 1.05
    assert (record.iterations[ok] == ENERGY["iterations"]).all()  # no stop at a first success
    by_budget = record.activity_by_budget[ok]
    assert by_budget.shape == (ok.sum(), len(ENERGY_BUDGETS)) and (np.diff(by_budget, axis=1) >= 0).all()
    assert (by_budget >= 1).all() and np.allclose(by_budget[:, -1], record.activity_ratio[ok])
    # at a budget below a row's L0, its best ratio is that of an earlier example, never the final one's
    small = record.l0[ok] > ENERGY_BUDGETS[0]
    assert (by_budget[small, 0] <= record.activity_ratio[ok][small]).all()
    assert np.array_equal(record.success, ok & (record.activity_ratio > 1))
    assert np.array_equal(record.l0_at_success, np.where(record.success, record.l0, -1))
    assert record.attrs["energy"]["budgets"] == list(ENERGY_BUDGETS)
    stats = record.energy_stats()
    assert stats["mean_activity_ratio"] == pytest.approx(record.activity_ratio[ok].mean())


def test_energy_target_stops_rows_that_reach_it(model_and_data):
    net, x, y = model_and_data
    record = craft(net, x, y, AttackConfig(**ENERGY, energy_target=1.05))
    ok = record.correct_before
    reached = record.activity_ratio >= 1.05
    assert reached[ok].any() and np.array_equal(record.success, ok & reached)
    assert (record.iterations[ok & reached] < ENERGY["iterations"]).any()
    assert (record.iterations[ok & ~reached] == ENERGY["iterations"]).all()


def test_budget_truncates_the_energy_attack(model_and_data):
    net, x, y = model_and_data
    record = craft(net, x, y, AttackConfig(**ENERGY, max_flips=20, budget_mode="truncate"))
    assert record.l0.max() <= 20 and record.activity_ratio[record.correct_before].mean() > 1


def test_stealthy_mode_keeps_every_prediction(model_and_data):
    net, x, y = model_and_data
    loud = craft(net, x, y, AttackConfig(**{**ENERGY, "eta": 0.5}))
    quiet = craft(net, x, y, AttackConfig(**{**ENERGY, "eta": 0.5, "loss": "energy-stealthy"}))
    ok = quiet.correct_before
    assert (loud.pred_adv[ok] != loud.pred_clean[ok]).any()  # energy alone does change predictions here
    from harness.attacks.judge import judge
    pred, _ = judge(net, quiet.adversarial, quiet.labels, quiet.targets)
    assert np.array_equal(pred[ok], quiet.pred_clean[ok]) and np.array_equal(quiet.pred_adv, pred)
    assert quiet.attrs["energy"]["rejected_updates"] > 0 and quiet.activity_ratio[ok].mean() > 1


# ---------------------------------------------------------------- records, run stage, baseline, CLI
def test_energy_datasets_round_trip_and_older_files_still_load(model_and_data, tmp_path):
    net, x, y = model_and_data
    record = craft(net, x[:6], y[:6], AttackConfig(**ENERGY))
    back = AttackRecord.load(record.save(tmp_path / "e.h5"))
    assert np.array_equal(back.activity_by_budget, record.activity_by_budget, equal_nan=True)
    assert back.attrs["energy"] == record.attrs["energy"] and back.is_energy
    plain = craft(net, x[:6], y[:6], AttackConfig(iterations=2))
    old = AttackRecord.load(plain.save(tmp_path / "p.h5"))
    assert old.activity_ratio is None and old.activity_by_budget is None and not old.is_energy
    with pytest.raises(ValueError, match="not an energy"):
        old.energy_stats()


def test_run_stage_ids_and_the_random_baseline(digits_run):
    path = run_attack(digits_run, AttackConfig(**ENERGY, energy_target=1.5), n=20, progress=False)
    assert path.stem == "g2s-rsf_u_k6_g0.05_e0.1_et1.5_en_n20_s0"
    stealthy = run_attack(digits_run, AttackConfig(**{**ENERGY, "loss": "energy-stealthy"}), n=20, progress=False)
    assert "_ens_n20" in stealthy.stem
    ref = AttackRecord.load(stealthy)
    rand = AttackRecord.load(run_random_baseline(digits_run, stealthy.stem, progress=False))
    ok = ref.correct_before
    assert rand.is_energy and np.array_equal(rand.l0, np.where(ok, ref.l0, 0))
    assert np.array_equal((rand.adversarial != rand.clean).reshape(len(rand), -1).sum(1), rand.l0)  # all kept
    net = open_run(digits_run).net
    expected = _hidden_synops(net, rand.adversarial) / _hidden_synops(net, rand.clean)
    assert np.allclose(rand.activity_ratio[ok], expected[ok])
    assert ref.activity_ratio[ok].mean() - 1 > 2 * (rand.activity_ratio[ok].mean() - 1)
    again = random_energy_record(net, ref, seed=0, batch_size=3)
    assert np.array_equal(again.adversarial, rand.adversarial)
    with pytest.raises(ConfigError, match="untargeted"):
        run_attack(digits_run, AttackConfig(**ENERGY), targeted="random", n=5, progress=False)


def test_cli_energy_flags(digits_run, capsys):
    assert main(["attack", "--run", str(digits_run), "--loss", "energy-stealthy", "--energy-target", "1.2",
                 "--iterations", "3", "--eta", "0.1", "--n", "8", "--no-progress"]) == 0
    out = capsys.readouterr().out
    kept = re.search(r"prediction kept (\d+)/(\d+)", out)
    assert "activity ratio" in out and kept and kept.group(1) == kept.group(2)
    assert main(["attack", "--run", str(digits_run), "--loss", "margin", "--energy-target", "1.2", "--n", "4",
                 "--no-progress"]) == 2
    assert "--energy-target" in capsys.readouterr().err


# ---------------------------------------------------------------- device measurements
def test_energy_measurements_refuse_replays_without_per_core_records(model_and_data):
    from harness.stages.measure import energy_measurements

    net, x, y = model_and_data
    record = craft(net, x[:4], y[:4], AttackConfig(**ENERGY))
    arrays = {name: getattr(record, name) for name in record.array_names()}
    with pytest.raises(DataError, match="neuron_counts"):
        energy_measurements(arrays, {"predictions": np.zeros(4)}, None, None, 8)


@pytest.mark.slow
def test_energy_attack_on_the_device_matches_slayer(digits_run):
    """Replayed bit-exactly (loihi2-fixed), the device's own synops ratio is SLAYER's objective ratio."""
    from harness.stages.replay import energy_summary, replay_run

    path = run_attack(digits_run, AttackConfig(**ENERGY), n=12, progress=False)
    replay_run(digits_run, "loihi2-fixed", path.stem, progress=False)
    m = energy_summary(digits_run, "loihi2-fixed", path.stem)
    record = AttackRecord.load(path)
    ok = record.correct_before
    assert m["n_rows"] == ok.sum() and m["prediction_kept"] == pytest.approx(np.mean(record.pred_adv[ok] ==
                                                                                    record.pred_clean[ok]))
    assert m["device_activity_ratio"] == pytest.approx(m["offline_activity_ratio"], rel=1e-12)
    assert m["change"]["energy_j"] == pytest.approx(m["adversarial"]["energy_j"] / m["clean"]["energy_j"])
    assert m["energy_rise"] > 0 and m["change"]["own_synops"] > 1
    assert m["clean"]["own_synops"] < m["clean"]["synops"] and m["mean_l0"] == pytest.approx(record.l0[ok].mean())


def test_synops_objective_with_a_budget_beats_random_flips_on_all_synops(digits_run):
    """Ascending every synaptic operation (the input stream's included) under a truncating budget
    picks high-fan-out inputs: all synops rise more than under random flips at the same L0."""
    config = AttackConfig(loss="energy", energy_objective="synops", iterations=4, eta=1.0, max_flips=30,
                          budget_mode="truncate")
    path = run_attack(digits_run, config, n=30, progress=False)
    assert path.stem == "g2s-rsf_u_k4_g0.05_e1_b30_bt_syn_en_n30_s0"
    ref, rand = AttackRecord.load(path), AttackRecord.load(run_random_baseline(digits_run, path.stem, progress=False))
    ok = ref.correct_before
    assert ref.attrs["energy"]["objective"] == rand.attrs["energy"]["objective"] == "synops"
    assert ref.l0[ok].max() <= 30 and np.array_equal(rand.l0[ok], ref.l0[ok])
    assert ref.activity_ratio[ok].mean() - 1 > 1.2 * (rand.activity_ratio[ok].mean() - 1) > 0
