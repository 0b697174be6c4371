"""The twin oracle's dense CUBA forward (harness.attacks.cuba_forward) gives SLAYER's spikes bit for bit."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from harness.attacks.cuba_forward import plan, rasters
from harness.attacks.oracles import TwinOracle, _folded
from harness.data import load_digits_spikes, load_nmnist
from harness.models import build_network, load_spec
from harness.train import forward_batches, output_counts


def _network(name: str, seed: int = 0, gain: float = 1.0, **neuron):
    """A freshly built ``name`` (weights times ``gain``, neuron parameters overridden), folded as
    the twin oracle folds it."""
    spec = load_spec(name)
    spec = dataclasses.replace(spec, neuron={**spec.neuron, **neuron})
    net = build_network(spec, seed).eval()
    with torch.no_grad():
        for block in net.spiking_blocks:
            block.synapse.weight_g.mul_(gain)
        net(torch.zeros(1, *spec.input_shape, spec.steps))  # weight-normed weights as leaves (deepcopy)
    return _folded(net)


def _assert_slayer_rasters(net, spikes: np.ndarray) -> None:
    """Every layer's raster of the fast forward equals SLAYER's, and some layer spikes."""
    fast, why = plan(net)
    assert fast is not None, why
    slayer = [torch.cat(layer) for layer in zip(*forward_batches(net, spikes))]
    ours = rasters(fast.layers(spikes))
    assert [a.shape for a in ours] == [b.shape for b in slayer]
    for a, b in zip(ours, slayer):
        assert torch.equal(a, b)
    assert all(0 < float(layer.mean()) < 1 for layer in slayer)
    assert fast.counts(spikes).tolist() == output_counts(net, spikes).astype(np.int64).tolist()


@pytest.mark.parametrize("gain", [2.0, 4.0])
def test_digits_networks_on_real_and_random_inputs(gain):
    net = _network("digits-mlp", gain=gain)
    _assert_slayer_rasters(net, load_digits_spikes("test", 16).spikes[:20])
    rng = np.random.default_rng(1)
    for density in (0.08, 0.3):  # the sparse and the dense product
        _assert_slayer_rasters(net, (rng.random((9, 1, 8, 8, 16)) < density).astype(np.uint8))


@pytest.mark.parametrize("threshold, current_decay, voltage_decay, gain", [(0.5, 0.0, 0.0, 1.0), (2.03, 0.9, 0.5, 8.0)])
def test_other_thresholds_and_decays(threshold, current_decay, voltage_decay, gain):
    net = _network("digits-mlp", gain=gain, threshold=threshold, current_decay=current_decay,
                   voltage_decay=voltage_decay)
    _assert_slayer_rasters(net, load_digits_spikes("test", 16).spikes[:20])


def test_nmnist_mlp_on_real_recordings_and_random_events(nmnist_dir):
    net = _network("nmnist-mlp", gain=2.0)  # float32 weight table: its row sums exceed float16's exact range
    spikes = load_nmnist(nmnist_dir, "test", limit=6).spikes
    _assert_slayer_rasters(net, spikes)
    flipped = spikes.copy()
    flipped.reshape(-1)[np.random.default_rng(2).choice(flipped.size, 3000, replace=False)] ^= 1
    _assert_slayer_rasters(_network("nmnist-mlp"), flipped)


def test_the_oracle_answers_as_the_plain_forward_whatever_the_path():
    net = _network("digits-mlp", gain=2.0)
    spikes = load_digits_spikes("test", 16).spikes[:11]
    plain = output_counts(net, spikes).astype(np.int64).tolist()
    oracle = TwinOracle(net, batch_size=4)
    assert oracle.path == "dense CUBA forward"
    assert oracle.counts(spikes).tolist() == plain
    assert oracle.counts(spikes[:0]).shape == (0, 10) and oracle._fast.counts(spikes[:0]) is None
    doubled = spikes * 2  # not binary: the fast forward declines, SLAYER answers
    assert oracle._fast.counts(doubled) is None
    assert oracle.counts(doubled).tolist() == output_counts(net, doubled).astype(np.int64).tolist()
    oracle.close()


def test_networks_it_does_not_compute_are_named_and_left_to_slayer():
    conv = build_network(load_spec("nmnist-conv"), 0).eval()
    fast, why = plan(conv)
    assert fast is None and why.startswith("block 0: Conv is not a dense CUBA block")
    loud = _network("digits-mlp", gain=1000.0)  # weights at the clamp: the current could pass 2**24
    fast, _ = plan(loud)
    spikes = load_digits_spikes("test", 16).spikes[:3]
    assert fast is not None and fast.counts(spikes) is None
    assert TwinOracle(loud).counts(spikes).tolist() == output_counts(loud, spikes).astype(np.int64).tolist()
