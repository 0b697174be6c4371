"""Reading netx files and lowering layers to sparse matrices (no Lava run)."""
from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from harness.device.lowering import fanout, input_order, lava_order, lower
from harness.device.netx_reader import check_input, read_network
from harness.errors import DataError, DeviceError
from harness.models import build_network, spec_from_dict

NETX_TESTS = Path(__file__).resolve().parent.parent / ".venv/lib/python3.10/site-packages/tests/lava/lib/dl/netx"
CONV_SPEC = {
    "name": "tiny-conv", "data": {"dataset": "digits", "steps": 8, "input_shape": [2, 9, 7]},
    "neuron": {"threshold": 1.25, "current_decay": 0.25, "voltage_decay": 0.03},
    "layers": [{"type": "conv", "out": 4, "kernel": 3, "stride": 2, "padding": 1},
               {"type": "conv", "out": 3, "kernel": 3, "stride": 1, "padding": 0},
               {"type": "flatten"}, {"type": "dense", "out": 5}],
}


@pytest.fixture(scope="module")
def conv_net(tmp_path_factory):
    """An untrained conv network on a non-square (2, 9, 7) input, exported to netx."""
    net = build_network(spec_from_dict(CONV_SPEC, "test"), seed=0)
    with torch.no_grad():
        net(torch.zeros(1, 2, 9, 7, 8))  # SLAYER sets the neuron shapes on the first forward pass
    path = tmp_path_factory.mktemp("conv") / "conv.net"
    net.export_hdf5(path)
    return net, path


def test_reader_finds_layers_shapes_and_depth(conv_net):
    _, path = conv_net
    network = read_network(path, (2, 9, 7))
    assert [layer.kind for layer in network.layers] == ["conv", "conv", "dense"]
    assert [layer.shape for layer in network.layers] == [(4, 5, 4), (3, 3, 2), (5,)]
    assert network.layers[2].flattened_input and network.synaptic_depth == 3 and network.n_outputs == 5


def test_lowered_layers_compute_what_slayer_computes(conv_net):
    """Each lowered matrix, applied in Lava's neuron order, gives SLAYER's integer synaptic sums
    (PyTorch's correlation with the exported weights) for conv, and for dense after a flatten."""
    _, path = conv_net
    network = read_network(path, (2, 9, 7))
    layers = lower(network)
    with h5py.File(path) as f:
        weights = [f[f"layer/{i}/weight"][()] for i in (0, 1, 3)]
    x = (np.random.default_rng(0).random((2, 9, 7)) < 0.5).astype(np.float64)
    for layer, weight in zip(layers, weights):
        if layer.layer.kind == "conv":
            conv = layer.layer.conv
            expected = torch.nn.functional.conv2d(torch.tensor(x)[None], torch.tensor(weight.reshape(weight.shape[:4]), dtype=torch.float64),
                                                  stride=conv["stride"], padding=conv["padding"])[0].numpy()
        else:
            expected = weight @ x.ravel()  # SLAYER flattens (C, H, W)
        got = layer.weight @ x.ravel()[lava_order(x.shape)] if x.ndim == 3 else layer.weight @ x
        assert np.array_equal(got, expected.ravel()[lava_order(expected.shape)])
        x = (expected > 0).astype(np.float64)
    assert np.array_equal(input_order(network), lava_order((2, 9, 7)))


def test_fanout_counts_the_nonzero_synapses_of_each_input():
    from scipy import sparse

    matrix = sparse.csr_matrix(np.array([[1, 0, 2], [3, 0, 0]]))
    assert fanout(matrix, 3).tolist() == [2, 0, 1]
    assert fanout(None, 2).tolist() == [0, 0]


@pytest.mark.parametrize("layer_type, message", [
    ("pool", r"layer 1 \('pool'\): layer type 'pool' cannot be replayed \(netx cannot replay pooling; "
             r"use a strided convolution instead\)"),
    ("dense_rec", r"layer 1 \('dense_rec'\): .*recurrent"),
])
def test_unsupported_layer_types_are_named(tmp_path, layer_type, message):
    path = tmp_path / "net.net"
    with h5py.File(path, "w") as f:
        f["layer/0/type"] = [b"input"]
        f["layer/0/shape"] = [2, 4, 4]
        f["layer/1/type"] = [layer_type.encode()]
    with pytest.raises(DeviceError, match=message):
        read_network(path)


def test_lava_dl_networks_with_unsupported_parts_are_rejected_by_name():
    with pytest.raises(DeviceError, match=r"layer 5 \('average'\)"):
        read_network(NETX_TESTS / "gts/ntidigits/ntidigits.net")
    with pytest.raises(DeviceError, match=r"neuron type 'SDNN' cannot be replayed"):
        read_network(NETX_TESTS / "gts/pilotnet_sdnn/network.net")


def test_missing_and_foreign_files_are_clear(tmp_path):
    with pytest.raises(DeviceError, match="network file not found"):
        read_network(tmp_path / "none.net")
    (tmp_path / "x.net").write_text("not hdf5")
    with pytest.raises(DeviceError, match="not a readable netx HDF5 file"):
        read_network(tmp_path / "x.net")


def test_input_shapes_are_checked_against_the_network(conv_net):
    _, path = conv_net
    network = read_network(path, (2, 9, 7))
    check_input(network, (3, 2, 9, 7, 8))
    with pytest.raises(DataError, match=r"input spikes of shape \(3, 2, 7, 9, 8\).*takes \(2, 9, 7\)"):
        check_input(network, (3, 2, 7, 9, 8))
    with pytest.raises(DeviceError, match="conv layer needs a \\(C, H, W\\) input"):
        read_network(path, (126,))
