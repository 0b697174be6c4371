"""The active-column Sparse models (harness/device/lava_procs/synapse.py) against Lava's own.

Fast: each model driven step by step outside a Lava runtime, against Lava's model on the same
weights and spikes. Slow: whole device sessions with ``synapse="active"`` and ``"stock"`` give
byte-identical outputs and recordings on every shipped profile, with several lanes and windows,
on random dense and sparse inputs and on real N-MNIST rows.
"""
from __future__ import annotations

import numpy as np
import pytest
from lava.proc.sparse.models import PySparseModelBitAcc, PySparseModelFloat
from scipy import sparse

import netx_families as families
from harness.data import load_dataset
from harness.device import DeviceSession, load_profile
from harness.device.lava_procs.synapse import ActiveColumnsSparseFixed, ActiveColumnsSparseFloat
from harness.device.lava_sim import ACTIVE, STOCK
from harness.errors import DataError
from test_device_session import _assert_same

PROFILES = ("loihi2-fixed", "loihi1", "loihi2-noisy", "loihi2-float")


class _Port:
    """Stands in for a Lava port: ``recv`` hands out the given spike vectors, ``send`` keeps copies."""

    def __init__(self, inputs=()) -> None:
        self.inputs, self.sent = list(inputs), []

    def recv(self) -> np.ndarray:
        return self.inputs.pop(0)

    def send(self, data: np.ndarray) -> None:
        self.sent.append(np.array(data, copy=True))


def _drive(model_class, weights: sparse.csr_matrix, spikes: np.ndarray, **params) -> list[np.ndarray]:
    """Run ``model_class`` for ``len(spikes)`` steps on ``weights``; the vectors it sent."""
    model = model_class({"num_weight_bits": 8, **params})
    model.weights, model.num_message_bits = weights.copy(), np.array(0)
    model.a_buff = np.zeros(weights.shape[0], dtype=weights.dtype)
    model.s_in, model.a_out = _Port(list(spikes)), _Port()
    for _ in spikes:
        model.run_spk()
    return model.a_out.sent


def _weights(rng: np.random.Generator, floating: bool) -> sparse.csr_matrix:
    """(40, 300) signed weights, 30% stored, 8-bit integers or floats of many magnitudes."""
    matrix = sparse.random(40, 300, density=0.3, format="csr", random_state=rng,
                           data_rvs=lambda n: rng.integers(-255, 256, n).astype(np.float64))
    if floating:
        matrix.data *= rng.lognormal(0.0, 3.0, matrix.nnz)
        return matrix
    return matrix.astype(np.int32)


@pytest.mark.parametrize("rate", [0.0, 0.02, 0.5, 1.0])
@pytest.mark.parametrize("weight_exp", [-3, 0, 2])
def test_fixed_point_model_sends_what_lavas_sends(rate, weight_exp):
    rng = np.random.default_rng(int(rate * 100) + 10 * (weight_exp + 3))
    weights = _weights(rng, floating=False)
    spikes = (rng.random((6, 300)) < rate).astype(np.int32)
    stock = _drive(PySparseModelBitAcc, weights, spikes, weight_exp=weight_exp, num_weight_bits=6)
    ours = _drive(ActiveColumnsSparseFixed, weights, spikes, weight_exp=weight_exp, num_weight_bits=6)
    assert len(ours) == len(stock) == 6 and any(np.any(s) for s in stock) == (rate > 0)
    for mine, theirs in zip(ours, stock):
        assert mine.dtype == theirs.dtype and mine.tobytes() == theirs.tobytes()


@pytest.mark.parametrize("rate", [0.0, 0.02, 0.5, 1.0])
def test_floating_point_model_adds_the_same_floats_in_the_same_order(rate):
    rng = np.random.default_rng(int(rate * 100))
    weights = _weights(rng, floating=True)
    spikes = (rng.random((6, 300)) < rate).astype(bool)
    stock, ours = _drive(PySparseModelFloat, weights, spikes), _drive(ActiveColumnsSparseFloat, weights, spikes)
    for mine, theirs in zip(ours, stock):
        assert mine.dtype == theirs.dtype and mine.tobytes() == theirs.tobytes()


def test_an_unknown_synapse_model_is_refused(tmp_path):
    with pytest.raises(DataError, match="synapse must be one of active, stock, got 'fast'"):
        DeviceSession(tmp_path / "net.net", load_profile("loihi2-fixed"), synapse="fast")


def _both(path, sets: list[np.ndarray], profile: str, lanes: int) -> dict[str, list]:
    """Every set through one session per synapse model: {synapse: [DeviceOutput per set]}."""
    outs = {}
    for synapse in (STOCK, ACTIVE):
        with DeviceSession(path, load_profile(profile), lanes=lanes, synapse=synapse) as dev:
            outs[synapse] = [dev.replay(spikes) for spikes in sets]
    return outs


def _assert_all_same(outs: dict[str, list]) -> None:
    for active, stock in zip(outs[ACTIVE], outs[STOCK]):
        _assert_same(active, stock)


@pytest.mark.slow
@pytest.mark.parametrize("profile", PROFILES)
def test_sessions_with_active_synapses_equal_lavas_on_dense_and_sparse_inputs(tmp_path, profile):
    """conv + dense layers with bias; dense (rate 0.5), sparse (0.02) and silent sets through 3
    lanes (the first set 3 windows, the last one partial), per-core recordings included."""
    path = tmp_path / "conv_bias.net"
    _, shape = families.build("conv_bias", path)
    sets = [families.random_spikes(shape, 8, 20, seed=1, rate=0.5),
            families.random_spikes(shape, 5, 20, seed=2, rate=0.02), np.zeros((2, *shape, 20), dtype=np.uint8)]
    outs = _both(path, sets, profile, lanes=3)
    assert outs[STOCK][0].layer_counts.sum() > 0 and outs[STOCK][1].input_spikes.sum() > 0
    _assert_all_same(outs)


@pytest.mark.slow
@pytest.mark.parametrize("profile", ["loihi2-fixed", "loihi2-float"])
def test_sessions_with_active_synapses_equal_lavas_on_nmnist_rows(tmp_path, nmnist_dir, profile):
    """Real N-MNIST rows (T = 30 bins of 10 ms) through a conv + dense network, 4 lanes, 2 windows."""
    path = tmp_path / "nmnist_conv.net"
    families.build("nmnist_conv", path, steps=30)
    rows = load_dataset("nmnist", "test", 30, 10.0, path=nmnist_dir, limit=6).spikes
    outs = _both(path, [rows], profile, lanes=4)
    assert outs[STOCK][0].layer_counts.sum() > 0
    _assert_all_same(outs)
