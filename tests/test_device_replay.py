"""Replay on Lava's Loihi 2 simulation against SLAYER and against stock netx.

The slow tests run Lava (a few seconds each); the input checks fail before any Lava run.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from harness.device import load_profile, replay
from harness.device.lowering import fanout, lava_order, lower
from harness.stages.measure import offline_outputs
from harness.device.netx_reader import read_network
from harness.errors import DataError
from harness.models import build_network, load_checkpoint, spec_from_dict
from harness.train import load_split, train_run


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    """A run directory with digits-mlp trained for one epoch: (run dir, SLAYER net, 100 test samples)."""
    run = tmp_path_factory.mktemp("digits")
    train_run("digits-mlp", run, seed=0, epochs=1, progress=False)
    net = load_checkpoint(run / "model" / "checkpoint.pt")
    return run, net, load_split(net.spec, "test", seed=0, limit=100)


def _untrained(tmp_path: Path, raw_spec: dict, seed: int = 1):
    """An untrained network (weights scaled up for activity), exported to tmp_path/net.net."""
    spec = spec_from_dict(raw_spec, "test")
    net = build_network(spec, seed=seed).eval()
    with torch.no_grad():
        net(torch.zeros(1, *spec.input_shape, spec.steps))  # SLAYER sizes neurons and delays on a first pass
    return net, tmp_path / "net.net"


def _expected_synops(network_file: Path, spikes: np.ndarray, net) -> np.ndarray:
    """Synaptic operations from SLAYER's per-neuron spike counts and the stored weights."""
    network = read_network(network_file, spikes.shape[1:-1])
    layers = lower(network)
    with torch.no_grad():
        outs = [spikes] + [out.numpy() for out in net.forward_layers(torch.as_tensor(spikes, dtype=torch.float32))]
    total = 0
    for population, layer in zip(outs, layers):  # each population feeds the next layer's synapses
        counts = population.reshape(len(spikes), -1, spikes.shape[-1]).sum(-1)
        shape = population.shape[1:-1]
        if layer.layer.kind == "conv" or (len(shape) == 3 and layer.layer.flattened_input):
            counts = counts[:, lava_order(shape)]  # the matrices use Lava's (W, H, C) neuron order
        total = total + counts @ fanout(layer.weight, counts.shape[1])
    return total


@pytest.mark.slow
def test_fixed_point_replay_is_bit_exact_with_slayer(digits):
    run, net, data = digits
    network_file = run / "model" / "network.net"
    out = replay(network_file, data.spikes, "loihi2-fixed", lanes=37)  # 3 windows, the last one partial
    offline = offline_outputs(net, data.spikes)
    assert out.lanes == 37 and out.rasters.shape == offline.rasters.shape == (100, 10, 16)
    assert offline.rasters.sum() > 0
    assert np.array_equal(out.rasters, offline.rasters)
    assert np.array_equal(out.predictions, offline.predictions)
    assert np.array_equal(out.counts, offline.rasters.sum(-1))
    assert np.array_equal(out.layer_counts, offline.layer_counts)
    assert np.array_equal(out.input_spikes, data.spikes.reshape(100, -1).sum(1))
    assert np.array_equal(out.synops, _expected_synops(network_file, data.spikes, net))
    assert np.all(out.neuron_updates == 16 * (128 + 10))
    energy = load_profile("loihi2-fixed").energy
    assert np.allclose(out.energy_j, out.synops * energy.synaptic_op_j + out.neuron_updates * energy.neuron_update_j
                       + out.layer_counts.sum(1) * energy.spike_j)
    assert out.layer_names == ["layer 0 (dense 128)", "layer 1 (dense 10)"]


@pytest.mark.slow
def test_floating_point_replay_agrees_on_predictions(digits):
    run, net, data = digits
    out = replay(run / "model" / "network.net", data.spikes, "loihi2-float")
    offline = offline_outputs(net, data.spikes)
    assert np.mean(out.predictions == offline.predictions) >= 0.99
    assert np.mean(out.layer_counts[:, 0]) == pytest.approx(np.mean(offline.layer_counts[:, 0]), rel=0.05)


@pytest.mark.slow
def test_conv_network_replay_is_bit_exact_with_slayer(digits, tmp_path):
    _, _, data = digits
    net, path = _untrained(tmp_path, {
        "name": "conv", "data": {"dataset": "digits", "steps": 16, "input_shape": [1, 8, 8]},
        "neuron": {"threshold": 1.25, "current_decay": 0.25, "voltage_decay": 0.03},
        "layers": [{"type": "conv", "out": 6, "kernel": 3, "stride": 2, "padding": 1, "weight_scale": 4.0},
                   {"type": "conv", "out": 5, "kernel": 3, "padding": 1, "weight_scale": 4.0},
                   {"type": "flatten"}, {"type": "dense", "out": 10, "weight_scale": 4.0}]})
    net.export_hdf5(path)
    spikes = data.spikes[:60]
    out = replay(path, spikes, "loihi2-fixed", lanes=16)
    offline = offline_outputs(net, spikes)
    assert offline.rasters.sum() > 0 and np.all(offline.layer_counts.sum(0) > 0)
    assert np.array_equal(out.rasters, offline.rasters)
    assert np.array_equal(out.layer_counts, offline.layer_counts)
    assert np.array_equal(out.synops, _expected_synops(path, spikes, net))


@pytest.mark.slow
def test_axonal_delays_replay_exactly_across_windows(tmp_path):
    net, path = _untrained(tmp_path, {
        "name": "delayed", "data": {"dataset": "digits", "steps": 16, "input_shape": [40]},
        "neuron": {"threshold": 1.25, "current_decay": 0.25, "voltage_decay": 0.03},
        "layers": [{"type": "dense", "out": 30, "delay": True, "weight_scale": 3.0},
                   {"type": "dense", "out": 8, "weight_scale": 3.0}]})
    delay = net.blocks[0].delay
    delay.delay.data = torch.randint(0, 4, delay.delay.shape, generator=torch.Generator().manual_seed(0)).float()
    spikes = (np.random.default_rng(0).random((24, 40, 16)) < 0.3).astype(np.uint8)
    offline = offline_outputs(net, spikes)
    net.export_hdf5(path)
    out = replay(path, spikes, "loihi2-fixed", lanes=7)  # 4 windows: delayed currents must not leak
    assert read_network(path).layers[0].delay.max() > 0
    assert offline.rasters.sum() > 0
    assert np.array_equal(out.rasters, offline.rasters)
    assert np.array_equal(out.layer_counts, offline.layer_counts)


@pytest.mark.slow
def test_noisy_profile_is_seeded_and_changes_only_the_input(digits):
    run, _, data = digits
    network_file, spikes = run / "model" / "network.net", data.spikes[:40]
    noisy = load_profile("loihi2-noisy")
    first = replay(network_file, spikes, noisy)
    again = replay(network_file, spikes, noisy)
    direct = replay(network_file, noisy.noise.apply(spikes), "loihi2-fixed")
    assert np.array_equal(first.rasters, again.rasters)
    assert np.array_equal(first.rasters, direct.rasters)
    assert first.input_spikes.sum() < spikes.sum()


def test_non_binary_and_misshaped_spikes_are_refused_before_any_run(tmp_path):
    net, path = _untrained(tmp_path, {
        "name": "mlp", "data": {"dataset": "digits", "steps": 16, "input_shape": [1, 8, 8]},
        "neuron": {"threshold": 1.25, "current_decay": 0.25, "voltage_decay": 0.03},
        "layers": [{"type": "dense", "out": 10}]})
    net.export_hdf5(path)
    spikes = np.ones((5, 1, 8, 8, 16), dtype=np.uint8)
    with pytest.raises(DataError, match=r"binary \(0/1\), found values \[2\]"):
        replay(path, spikes * 2, "loihi2-fixed")
    with pytest.raises(DataError, match=r"input spikes of shape \(5, 1, 8, 9, 16\).*takes \(64,\) per time step"):
        replay(path, np.zeros((5, 1, 8, 9, 16), dtype=np.uint8), "loihi2-fixed")
    with pytest.raises(DataError, match=r"must be \(N, C, T\) or \(N, C, H, W, T\), got shape \(64, 16\)"):
        replay(path, spikes[0].reshape(64, 16), "loihi2-fixed")


def _synthetic_attack(run: Path, net, data, flips: int = 60) -> tuple[str, dict]:
    """An attacks/<id>.h5 following docs/artifacts.md: random flips of the first 30 test samples,
    two rows (untargeted, targeted at class 3) per sample, judged offline by SLAYER."""
    from harness.records import is_success
    from harness.store import write_h5

    rng = np.random.default_rng(0)
    clean = np.repeat(data.spikes[:30], 2, axis=0)
    adversarial = clean.copy()
    for row in adversarial:
        idx = rng.choice(row.size, flips, replace=False)
        row.reshape(-1)[idx] ^= 1
    labels, targets = np.repeat(data.labels[:30], 2), np.tile([-1, 3], 30)
    pred_clean, pred_adv = offline_outputs(net, clean).predictions, offline_outputs(net, adversarial).predictions
    arrays = {"clean": clean, "adversarial": adversarial, "labels": labels, "targets": targets,
              "sample_index": np.repeat(np.arange(30), 2), "pred_clean": pred_clean, "pred_adv": pred_adv,
              "correct_before": pred_clean == labels, "success": is_success(pred_adv, labels, targets),
              "l0": np.full(60, flips), "l0_before_reduction": np.full(60, flips),
              "l0_at_success": np.full(60, flips), "iterations": np.ones(60, dtype=np.int64),
              "rsf_iterations": np.zeros(60, dtype=np.int64)}
    write_h5(run / "attacks" / "random-flips.h5", arrays,
             {"attack_id": "random-flips", "method": "random", "targeted": "", "params": {"flips": flips},
              "model": "digits-mlp", "crafted_on": str(run), "seed": 0, "dataset": {}}, kind="attack")
    return "random-flips", arrays


@pytest.mark.slow
def test_replay_stage_on_a_run_directory(digits, monkeypatch, capsys):
    from harness import cli
    from harness.stages import replay_run, replay_summary
    from harness.store import read_h5

    run, net, data = digits
    assert cli.main(["replay", "--run", str(run), "--profile", "loihi2-fixed", "--clean"]) == 0
    printed = capsys.readouterr().out
    assert "agreement 100.00%, identical rasters 100.00% of 360" in printed
    clean, attrs = read_h5(run / "device" / "loihi2-fixed" / "clean.h5", kind="device")
    assert clean["output_rasters"].shape == (360, 10, 16) and attrs["n_samples"] == 360
    assert attrs["layer_names"] == ["layer 0 (dense 128)", "layer 1 (dense 10)"]

    attack_id, attack = _synthetic_attack(run, net, data)
    path = replay_run(run, "loihi2-fixed", attack_id)
    device, _ = read_h5(path, kind="device")
    assert np.array_equal(device["predictions"], attack["pred_adv"])        # bit-exact: same as SLAYER
    assert np.array_equal(device["clean/predictions"], attack["pred_clean"])
    assert np.array_equal(device["clean/predictions"], clean["predictions"][attack["sample_index"]])
    summary = replay_summary(run, "loihi2-fixed", attack_id)
    correct = attack["correct_before"]
    assert summary["n_correct_clean"] == correct.sum()
    assert summary["success_rate"] == pytest.approx(attack["success"][correct].mean())
    if summary["n_offline_success"]:
        assert summary["transfer_rate"] == 1.0  # same quantized model on loihi2-fixed: a consistency check

    def no_replay(*args, **kwargs):
        raise AssertionError("an up-to-date output was replayed again")

    monkeypatch.setattr("harness.stages.replay.replay", no_replay)
    assert replay_run(run, "loihi2-fixed", attack_id) == path
    assert replay_run(run, "loihi2-fixed") == run / "device" / "loihi2-fixed" / "clean.h5"


def test_replay_stage_names_the_command_that_makes_what_is_missing(tmp_path):
    from harness.stages import replay_run
    from harness.errors import StageMissing

    with pytest.raises(StageMissing, match=r"network.net does not exist; produce it first with: harness train --run"):
        replay_run(tmp_path, "loihi2-fixed")
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "network.net").write_bytes(b"")  # only its existence is checked before the attack's
    with pytest.raises(StageMissing, match=r"attacks/nope.h5 does not exist; produce it first with: harness attack --run"):
        replay_run(tmp_path, "loihi2-fixed", "nope")
