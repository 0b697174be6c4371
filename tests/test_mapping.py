"""Neurocore mapping (partition, placement, links), per-core activity and NeuroBench metrics:
hand-computed toy cases (no Lava), then a replay against SLAYER (slow)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from harness.device.chip import Chip
from harness.device.energy import EnergyModel
from harness.device.mapping import connectivity, format_mapping, map_network, mapping_summary
from harness.device.netx_reader import Layer, NetworkDescription
from harness.device.workload import (busiest_core, core_activity, core_energy, inference_figures, latency_proxy,
                                     neurobench_metrics, total_energy)
from harness.errors import DataError, DeviceError

NEURON = {"vThMant": 80, "iDecay": 1024, "vDecay": 128}


def chip(**changes) -> Chip:
    values = dict(neurocores_per_chip=6, neurons_per_core=4, synaptic_memory_bits=200, weight_bits=8, index_bits=0,
                  input_axons_per_core=10, output_axons_per_core=10, mesh_shape=(2, 3), chips_per_system=1,
                  hop_energy_j=(1e-12, 1e-12), sources={})
    values.update(changes)
    return Chip(**values)


def dense(index: int, weight: np.ndarray) -> Layer:
    return Layer(index, "dense", (weight.shape[0],), NEURON, weight=weight)


def mlp(n_in=10, hidden=6, out=3) -> NetworkDescription:
    return NetworkDescription(Path("toy.net"), (n_in,), (dense(0, np.ones((hidden, n_in))), dense(1, np.ones((out, hidden)))))


def conv_net(out_channels=2) -> NetworkDescription:
    conv = Layer(0, "conv", (out_channels, 4, 4), NEURON, weight=np.ones((out_channels, 1, 3, 3)),
                 conv={"stride": (1, 1), "padding": (1, 1), "dilation": (1, 1), "groups": 1})
    return NetworkDescription(Path("conv.net"), (1, 4, 4), (conv,))


def ranges(mapping):
    return [(c.layer, c.start, c.stop) for c in mapping.cores]


def test_dense_layers_split_by_synaptic_memory_and_placed_in_layer_order():
    # 25 synapses of 8 bits per core: 10 inputs each -> 2 hidden neurons per core; the output
    # layer's 3 neurons x 6 synapses = 18 fit in one core.
    mapping = map_network(mlp(), chip())
    assert ranges(mapping) == [(0, 0, 2), (0, 2, 4), (0, 4, 6), (1, 0, 3)]
    assert [c.synapses for c in mapping.cores] == [20, 20, 20, 18]
    assert [c.memory_bits for c in mapping.cores] == [160, 160, 160, 144]
    assert [c.fan_in for c in mapping.cores] == [10, 10, 10, 6]
    assert [c.fan_out for c in mapping.cores] == [2, 2, 2, 0]
    assert [c.position for c in mapping.cores] == [(0, 0, 0), (0, 0, 1), (0, 0, 2), (0, 1, 0)]
    # core (0, c) -> core (1, 0): 1 + c hops; each hidden core's 2 neurons route to the output core
    assert [(l.source, l.target, l.hops, l.routes) for l in mapping.links] == [(0, 3, 1, 2), (1, 3, 2, 2), (2, 3, 3, 2)]
    assert mapping.layers[0].synapse_in.shape == (10, 3) and np.all(mapping.layers[0].synapse_in == 2)
    summary = mapping_summary(mapping)
    assert summary["cores"] == 4 and summary["layers"][0]["cores"] == 3 and summary["layers"][1]["synapses"] == 18
    assert summary["layers"][0]["memory_pct"] == pytest.approx(80.0)
    table = format_mapping(mapping, "toy")
    assert "4 of 6 cores" in table and "layer 0 (dense 6)" in table


def test_neuron_limit_splits_when_memory_allows():
    mapping = map_network(mlp(), chip(synaptic_memory_bits=10_000))
    assert ranges(mapping) == [(0, 0, 4), (0, 4, 6), (1, 0, 3)]


def test_conv_layer_split_by_output_channels_then_by_rows():
    # 2 channels of 4x4 = 16 neurons; a 3x3 kernel with padding 1 reaches 2, 3, 3, 2 rows and
    # columns, so one channel has 10 x 10 = 100 synapses and reads all 16 input pixels.
    by_channel = map_network(conv_net(), chip(neurons_per_core=16, synaptic_memory_bits=800, input_axons_per_core=16))
    assert ranges(by_channel) == [(0, 0, 16), (0, 16, 32)]
    assert [c.synapses for c in by_channel.cores] == [100, 100] and [c.fan_in for c in by_channel.cores] == [16, 16]
    # 8 neurons per core: a channel no longer fits, so tiles of 2 rows: rows 0-1 read input
    # rows 0-2 (12 pixels) over (2 + 3) x 10 = 50 synapses
    by_rows = map_network(conv_net(), chip(neurons_per_core=8, synaptic_memory_bits=800, input_axons_per_core=16))
    assert ranges(by_rows) == [(0, 0, 8), (0, 8, 16), (0, 16, 24), (0, 24, 32)]
    assert [c.synapses for c in by_rows.cores] == [50, 50, 50, 50]
    assert [c.fan_in for c in by_rows.cores] == [12, 12, 12, 12]


def test_conv_connectivity_matches_a_direct_convolution():
    rng = np.random.default_rng(0)
    weight = rng.integers(-3, 4, size=(4, 1, 3, 3)) * (rng.random((4, 1, 3, 3)) < 0.7)
    layer = Layer(0, "conv", (4, 3, 3), NEURON, weight=weight,
                  conv={"stride": (2, 2), "padding": (1, 1), "dilation": (1, 1), "groups": 1})
    post, pre = connectivity(layer, (2 // 2, 6, 6))
    x = rng.integers(0, 2, size=(1, 6, 6))
    padded = np.pad(x, ((0, 0), (1, 1), (1, 1)))
    direct = np.array([[[(padded[:, 2 * y:2 * y + 3, 2 * x_:2 * x_ + 3] * weight[c]).sum() for x_ in range(3)]
                        for y in range(3)] for c in range(4)]).ravel()
    flat_w = np.zeros(len(post))  # the weight of each pair, recovered by position
    for i, (o, s) in enumerate(zip(post, pre)):
        c, y, xo = np.unravel_index(o, (4, 3, 3))
        iy, ix = np.unravel_index(s, (6, 6))
        flat_w[i] = weight[c, 0, iy - 2 * y + 1, ix - 2 * xo + 1]
    assert np.all(flat_w != 0)
    via_pairs = np.bincount(post, weights=flat_w * x.ravel()[pre], minlength=36)
    assert np.array_equal(via_pairs, direct)


def test_fan_in_limit_splits_sparse_layers_and_refuses_wide_neurons():
    weight = np.zeros((4, 12))
    weight[:2, :6] = 1  # neurons 0-1 read inputs 0-5, neurons 2-3 inputs 6-11
    weight[2:, 6:] = 1
    net = NetworkDescription(Path("sparse.net"), (12,), (dense(0, weight),))
    mapping = map_network(net, chip(input_axons_per_core=8))
    assert ranges(mapping) == [(0, 0, 2), (0, 2, 4)] and [c.fan_in for c in mapping.cores] == [6, 6]
    wide = NetworkDescription(Path("wide.net"), (12,), (dense(0, np.ones((4, 12))),))
    with pytest.raises(DeviceError, match=r"layer 0 \(dense 4\) does not fit on a core: neurons 0..0 need inputs "
                                          r"from 12 presynaptic neurons, a core takes 10 \(input_axons_per_core\)"):
        map_network(wide, chip(synaptic_memory_bits=10_000))


def test_each_core_takes_the_smaller_synapse_encoding():
    weight = np.zeros((4, 12))
    weight[:, :6] = 1  # 6 non-zero synapses of 12 connections per neuron
    net = NetworkDescription(Path("half.net"), (12,), (dense(0, weight),))
    # 2 neurons per core: 12 synapses, 24 connections
    sparse = map_network(net, chip(neurons_per_core=2, synaptic_memory_bits=10_000, index_bits=4, input_axons_per_core=12))
    assert [(c.synapses, c.connections, c.memory_bits) for c in sparse.cores] == [(12, 24, 12 * 12)] * 2
    dense_ = map_network(net, chip(neurons_per_core=2, synaptic_memory_bits=10_000, index_bits=12, input_axons_per_core=12))
    assert [c.memory_bits for c in dense_.cores] == [24 * 8] * 2
    with pytest.raises(DeviceError, match=r"neurons 0..0 need 96 bits of synaptic memory \(6 synapses, 12 connections\), "
                                          r"a core holds 90 \(synaptic_memory_bits\)"):
        map_network(net, chip(synaptic_memory_bits=90, index_bits=12, input_axons_per_core=12))


def test_network_that_needs_too_many_cores_is_refused_or_spread_over_chips():
    big = mlp(n_in=4, hidden=30, out=3)  # 30 hidden neurons at 4 per core: 8 cores, plus 1
    with pytest.raises(DeviceError, match=r"toy.net: does not fit: layer 0 \(dense 30\) brings the network to 8 cores, "
                                          r"the system has 6 \(neurocores_per_chip 6 x chips_per_system 1\)"):
        map_network(big, chip(synaptic_memory_bits=10_000))
    mapping = map_network(big, chip(synaptic_memory_bits=10_000, chips_per_system=2, input_axons_per_core=30))
    assert mapping.n_cores == 9 and mapping.chips_used == 2
    assert mapping.cores[6].position == (1, 0, 0) and mapping.cores[8].position == (1, 0, 2)
    # core 0 at (chip 0, row 0, col 0) -> output core 8 at (chip 1, row 0, col 2): 3 + 2 columns
    assert mapping.links[0].hops == 5


def test_fan_out_limit_repartitions_the_sending_layer_or_refuses():
    # each hidden core of 2 neurons sends on 2 routes; with 1 output axon per core the hidden
    # layer is partitioned again at 1 neuron per core
    mapping = map_network(mlp(), chip(output_axons_per_core=1, neurocores_per_chip=8, mesh_shape=(2, 4)))
    assert ranges(mapping) == [(0, i, i + 1) for i in range(6)] + [(1, 0, 3)]
    assert all(c.fan_out <= 1 for c in mapping.cores)
    # 8 outputs at 4 per core: one hidden neuron alone reaches 2 cores
    with pytest.raises(DeviceError, match=r"core 0 \(layer 0 \(dense 6\), neurons 0..0\) sends on 2 routes, a core "
                                          r"has 1 \(output_axons_per_core\)"):
        map_network(mlp(out=8), chip(output_axons_per_core=1, neurocores_per_chip=16, mesh_shape=(4, 4)))


def test_core_activity_hops_busiest_core_and_energy_by_hand():
    mapping = map_network(mlp(), chip())  # cores 0-2: hidden pairs, core 3: output
    inputs = np.array([[1] * 10, [0] * 10])           # sample 0: every input spikes once
    hidden = np.array([[3, 0, 1, 1, 0, 2], [0, 0, 0, 0, 0, 5]])
    output = np.array([[1, 0, 0], [0, 0, 2]])
    counts = np.concatenate([inputs, hidden, output], axis=1)
    activity = core_activity(mapping, counts, steps=4)
    assert activity.spikes_out.tolist() == [[3, 2, 2, 1], [0, 0, 5, 2]]
    # hidden cores: 10 input spikes x 2 neurons; output core: hidden spikes x 3 outputs
    assert activity.synops.tolist() == [[20, 20, 20, 7 * 3], [0, 0, 0, 5 * 3]]
    assert activity.spikes_in.tolist() == [[10, 10, 10, 7], [0, 0, 0, 5]]
    assert activity.link_spikes.tolist() == [[3, 2, 2], [0, 0, 5]]
    assert activity.traffic.tolist() == [3 * 1 + 2 * 2 + 2 * 3, 5 * 3]
    assert activity.neuron_updates.tolist() == [8, 8, 8, 12]
    assert activity.synops.sum(1).tolist() == [10 * 6 + hidden[0].sum() * 3, 15]  # spikes x fan-out
    energy = EnergyModel(synaptic_op_j=1.0, neuron_update_j=0.5, spike_j=2.0, source="test")
    per_core = core_energy(activity, energy)
    assert per_core[0].tolist() == [20 + 4 + 6, 20 + 4 + 4, 20 + 4 + 4, 21 + 6 + 2]
    assert total_energy(activity, energy)[0] == pytest.approx(per_core[0].sum() + 13 * 1e-12)
    load = np.array([[[1, 0, 5], [2, 2, 0], [0, 3, 1], [0, 0, 0]]])  # (1 sample, 4 cores, 3 steps)
    index, most = busiest_core(load)
    assert index.tolist() == [[1, 2, 0]] and most.tolist() == [[2, 3, 5]]
    assert latency_proxy(load).tolist() == [10]
    synops_steps = np.zeros((2, 4, 4), np.int64)
    synops_steps[:, :, 0] = activity.synops  # all of a sample's operations in its first step
    figures = inference_figures(mapping, counts, synops_steps, energy, steps=4)
    assert figures["spikes_per_layer"] == [(7 + 5) / 2, (1 + 2) / 2] and figures["synops"] == (81 + 15) / 2
    assert figures["traffic_spike_hops"] == (13 + 15) / 2 and figures["hop_energy_j"] == pytest.approx(14e-12)
    assert figures["busiest_core_load"] == (21 + 15) / 2 == figures["latency_proxy"]
    assert figures["energy_j"] == pytest.approx(total_energy(activity, energy).mean())
    assert figures["per_core"]["spikes_in"] == [5.0, 5.0, 5.0, 6.0]
    with pytest.raises(DataError, match=r"expected \(N, 19\) for populations \[10, 6, 3\]"):
        core_activity(mapping, counts[:, :-1], steps=4)


def test_input_layer_neurons_take_one_axon_each_and_no_synapses():
    net = NetworkDescription(Path("in.net"), (6,), (Layer(0, "input", (6,), NEURON), dense(1, np.ones((2, 6)))))
    mapping = map_network(net, chip())
    assert ranges(mapping) == [(0, 0, 4), (0, 4, 6), (1, 0, 2)]
    assert [(c.synapses, c.fan_in) for c in mapping.cores] == [(0, 4), (0, 2), (12, 6)]
    counts = np.array([[1, 2, 0, 0, 3, 1, 2, 0, 0, 1, 0, 4, 5, 0]])  # input 6, input layer 6, dense 2
    activity = core_activity(mapping, counts, steps=3)
    assert activity.spikes_in.tolist() == [[3, 4, 7]] and activity.synops.tolist() == [[0, 0, 2 * 7]]
    assert activity.link_spikes.tolist() == [[3, 4]]


def test_neurobench_metrics_by_hand():
    weight = np.array([[1.0, 0.0], [2.0, 3.0]])
    net = NetworkDescription(Path("nb.net"), (2,), (dense(0, weight),))
    counts = np.array([[2, 1, 1, 0], [0, 3, 0, 2]])  # inputs (2), then the layer's 2 neurons
    metrics = neurobench_metrics(net, counts, steps=5)
    assert metrics["device_activation_sparsity"] == pytest.approx(1 - 3 / (2 * 5 * 2))
    # input 0 reaches 2 synapses, input 1 one: (2*2 + 1) and (0 + 3) -> mean 4
    assert metrics["synaptic_operations"] == {"effective_acs": 4.0, "dense": 4 * 5}
    assert metrics["connection_sparsity"] == 0.25
    assert metrics["weight_bias_bytes"] == 4 * 4 and neurobench_metrics(net, counts, 5, bytes_per_parameter=1)["weight_bias_bytes"] == 4
    with pytest.raises(DataError, match=r"nb.net: expected \(N, 4\)"):
        neurobench_metrics(net, counts[:, :3], steps=5)


# ---------------------------------------------------------------- replay (Lava)
SMALL_CHIP_PROFILE = """
name = "small-cores"
[backend]
kind = "lava-sim"
select_tag = "fixed_pt"
[energy]
synaptic_op_j = 23.6e-12
neuron_update_j = 81e-12
spike_j = 1.7e-12
source = "Davies et al. 2018 (test copy)"
[chip]
neurocores_per_chip = 128
neurons_per_core = 48
synaptic_memory_bits = 1048576
weight_bits = 8
input_axons_per_core = 4096
output_axons_per_core = 4096
mesh_shape = [8, 16]
chips_per_system = 1
hop_energy_east_west_j = 3.0e-12
hop_energy_north_south_j = 4.0e-12
[chip.sources]
""" + "\n".join(f'{key} = "derived: small cores, so that layers split"' for key in (
    "neurocores_per_chip", "neurons_per_core", "synaptic_memory_bits", "weight_bits", "input_axons_per_core",
    "output_axons_per_core", "mesh_shape", "chips_per_system", "hop_energy_east_west_j", "hop_energy_north_south_j"))


def _slayer_counts(net, spikes: np.ndarray) -> np.ndarray:
    """(N, P) per-neuron spike counts of SLAYER's forward pass: input, then every layer, flat order."""
    from harness.train import forward_batches

    layers = [np.concatenate([out.reshape(len(out), -1, out.shape[-1]).sum(-1).numpy() for out in batch], axis=1)
              for batch in forward_batches(net, spikes)]
    return np.concatenate([spikes.reshape(len(spikes), -1, spikes.shape[-1]).sum(-1), np.concatenate(layers)], axis=1)


def _check_records(out, expected: np.ndarray, steps: int) -> None:
    """Per-neuron counts equal SLAYER's; per-core records add up to the per-layer totals."""
    mapping = out.mapping
    assert out.mapping_error is None and out.core_spikes.shape == (len(expected), mapping.n_cores, steps)
    assert np.array_equal(out.neuron_counts, expected)
    for l, layer in enumerate(mapping.layers):
        assert np.array_equal(out.core_spikes[:, list(layer.cores)].sum(axis=(1, 2)), out.layer_counts[:, l])
    assert np.array_equal(out.core_synops.sum(axis=(1, 2)), out.synops)
    activity = core_activity(mapping, out.neuron_counts, steps)
    assert np.array_equal(activity.synops, out.core_synops.sum(-1))
    assert np.array_equal(activity.spikes_out, out.core_spikes.sum(-1))
    assert np.all(activity.traffic > 0)
    assert np.allclose(core_energy(activity, out.profile.energy).sum(axis=1), out.energy_j)
    figures = inference_figures(mapping, out.neuron_counts, out.core_synops, out.profile.energy, steps)
    assert figures["synops"] == pytest.approx(out.synops.mean())
    assert figures["energy_j"] == pytest.approx(out.energy_j.mean() + figures["hop_energy_j"]) and figures["hop_energy_j"] > 0
    assert 0 < figures["busiest_core_load"] <= figures["latency_proxy"] <= out.synops.mean()
    sub = out.subset(slice(0, 3))
    assert sub.core_synops.shape[0] == 3 and "neuron_counts" in sub.arrays()


@pytest.mark.slow
def test_replay_records_per_neuron_and_per_core_activity_of_a_trained_mlp(tmp_path):
    from harness.device import replay
    from harness.models import load_checkpoint
    from harness.train import load_split, train_run

    train_run("digits-mlp", tmp_path / "run", seed=0, epochs=1, progress=False)
    net = load_checkpoint(tmp_path / "run" / "model" / "checkpoint.pt")
    data = load_split(net.spec, "test", seed=0, limit=40)
    profile = tmp_path / "small.toml"
    profile.write_text(SMALL_CHIP_PROFILE)
    out = replay(tmp_path / "run" / "model" / "network.net", data.spikes, profile, lanes=15)  # 3 windows
    assert [len(layer.cores) for layer in out.mapping.layers] == [3, 1]  # 128 hidden neurons at 48 per core
    expected = _slayer_counts(net, data.spikes)
    assert expected[:, 64:].sum() > 0
    _check_records(out, expected, steps=16)


@pytest.mark.slow
def test_replay_records_per_core_activity_of_a_conv_network(tmp_path):
    import torch

    from harness.device import replay
    from harness.models import build_network, spec_from_dict
    from harness.train import load_split

    spec = spec_from_dict({
        "name": "conv", "data": {"dataset": "digits", "steps": 16, "input_shape": [1, 8, 8]},
        "neuron": {"threshold": 1.25, "current_decay": 0.25, "voltage_decay": 0.03},
        "layers": [{"type": "conv", "out": 6, "kernel": 3, "stride": 2, "padding": 1, "weight_scale": 4.0},
                   {"type": "conv", "out": 5, "kernel": 3, "padding": 1, "weight_scale": 4.0},
                   {"type": "flatten"}, {"type": "dense", "out": 10, "weight_scale": 4.0}]}, "test")
    net = build_network(spec, seed=1).eval()
    with torch.no_grad():
        net(torch.zeros(1, *spec.input_shape, spec.steps))
    spikes = load_split(spec, "test", seed=0, limit=30).spikes
    expected = _slayer_counts(net, spikes)
    net.export_hdf5(tmp_path / "conv.net")
    profile = tmp_path / "small.toml"
    profile.write_text(SMALL_CHIP_PROFILE.replace("neurons_per_core = 48", "neurons_per_core = 40"))
    out = replay(tmp_path / "conv.net", spikes, profile, lanes=16)
    # 6 channels of 4x4 (16 neurons): 2 channels per 40-neuron core; 5 channels of 4x4: 2 per core
    assert [len(layer.cores) for layer in out.mapping.layers] == [3, 3, 1]
    assert expected[:, 64:160].sum() > 0 and expected[:, 160:240].sum() > 0  # both conv layers spike
    _check_records(out, expected, steps=16)


# ---------------------------------------------------------------- harness map
@pytest.fixture(scope="module")
def digits_net(tmp_path_factory) -> Path:
    """An untrained digits-mlp (64 -> 128 -> 10) exported to netx."""
    import torch

    from harness.models import build_network, load_spec

    spec = load_spec("digits-mlp")
    net = build_network(spec, seed=0).eval()
    with torch.no_grad():
        net(torch.zeros(1, *spec.input_shape, spec.steps))
    path = tmp_path_factory.mktemp("net") / "digits.net"
    net.export_hdf5(path)
    return path


def test_harness_map_prints_the_table(digits_net, capsys):
    from harness.cli import main

    assert main(["map", "--network", str(digits_net), "--profile", "loihi1"]) == 0
    out = capsys.readouterr().out
    assert "on loihi1: 2 of 128 cores (1.6%), 1 chip(s)" in out
    assert "layer 0 (dense 128)" in out and "layer 1 (dense 10)" in out


def test_harness_map_refuses_clearly(digits_net, tmp_path, capsys):
    from harness.cli import main

    no_chip = tmp_path / "nochip.toml"
    no_chip.write_text(SMALL_CHIP_PROFILE.split("[chip]")[0])
    assert main(["map", "--network", str(digits_net), "--profile", str(no_chip)]) == 2
    assert "has no [chip] table to map onto" in capsys.readouterr().err
    tiny = tmp_path / "tiny.toml"
    tiny.write_text(SMALL_CHIP_PROFILE.replace("neurocores_per_chip = 128", "neurocores_per_chip = 2")
                    .replace("mesh_shape = [8, 16]", "mesh_shape = [1, 2]"))
    assert main(["map", "--network", str(digits_net), "--profile", str(tiny)]) == 2
    assert "does not fit: layer 0 (dense 128) brings the network to 3 cores, the system has 2" in capsys.readouterr().err
    assert main(["map", "--run", str(tmp_path / "norun"), "--profile", "loihi1"]) == 2
    assert "harness train --run" in capsys.readouterr().err


def test_harness_map_conv_network_needs_its_input_shape(tmp_path, capsys):
    import torch

    from harness.cli import main
    from harness.models import build_network, spec_from_dict

    spec = spec_from_dict({
        "name": "conv", "data": {"dataset": "digits", "steps": 16, "input_shape": [1, 8, 8]},
        "neuron": {"threshold": 1.25, "current_decay": 0.25, "voltage_decay": 0.03},
        "layers": [{"type": "conv", "out": 6, "kernel": 3, "stride": 2, "padding": 1},
                   {"type": "flatten"}, {"type": "dense", "out": 10}]}, "test")
    net = build_network(spec, seed=1).eval()
    with torch.no_grad():
        net(torch.zeros(1, *spec.input_shape, spec.steps))
    net.export_hdf5(tmp_path / "conv.net")
    assert main(["map", "--network", str(tmp_path / "conv.net"), "--profile", "loihi1", "--input-shape", "1", "8", "8"]) == 0
    assert "layer 0 (conv 6x4x4)" in capsys.readouterr().out
    assert main(["map", "--network", str(tmp_path / "conv.net"), "--profile", "loihi1"]) == 2
    assert "the input shape must be given" in capsys.readouterr().err
