"""Model specs: layer shapes, surrogates, threshold override, clear errors."""
from __future__ import annotations

import pytest
import torch

from harness.config import available
from harness.errors import ConfigError
from harness.models import attack_threshold, build_network, load_spec, spec_from_dict


@pytest.mark.parametrize("name,shapes", [
    ("digits-mlp", [(128,), (10,)]),
    ("nmnist-mlp", [(512,), (10,)]),
    ("nmnist-conv", [(16, 16, 16), (32, 8, 8), (10,)]),
])
def test_spec_builds_layer_shapes(name, shapes):
    spec = load_spec(name)
    net = build_network(spec, seed=0)
    out = net(torch.zeros((2,) + spec.input_shape + (spec.steps,)))
    assert out.shape == (2, 10, spec.steps)
    assert [tuple(b.neuron.shape) for b in net.spiking_blocks] == shapes


def test_shipped_models():
    assert {"digits-mlp", "nmnist-mlp", "nmnist-conv"} <= set(available("models"))


def test_unknown_model_lists_available():
    with pytest.raises(ConfigError, match="available: .*digits-mlp.*nmnist-mlp"):
        load_spec("resnet")


def test_pool_layer_refused_with_reason():
    raw = load_spec("digits-mlp").to_dict()
    raw["layers"].insert(0, {"type": "pool", "kernel": 2})
    with pytest.raises(ConfigError, match="strided conv"):
        spec_from_dict(raw, "x.toml")


def test_malformed_toml_names_line(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('name = "x"\n[data\nsteps = 3\n')
    with pytest.raises(ConfigError, match=r"bad\.toml.*line 2"):
        load_spec(bad)


def test_rectangular_surrogate_is_zero_outside_window():
    raw = load_spec("digits-mlp").to_dict()
    raw["surrogate"] = {"kind": "rectangular", "width": 1e-6}
    net = build_network(spec_from_dict(raw, "rect"), seed=0)
    x = (torch.rand(4, 1, 8, 8, 16) < 0.3).float().requires_grad_(True)
    net(x).sum().backward()
    assert torch.count_nonzero(x.grad) == 0
    raw["surrogate"]["width"] = 4.0
    net = build_network(spec_from_dict(raw, "rect"), seed=0)
    x.grad = None
    net(x).sum().backward()
    assert torch.count_nonzero(x.grad) > 0


def test_attack_threshold_changes_gradient_pass_and_restores():
    spec = load_spec("digits-mlp")
    net = build_network(spec, seed=0)
    neuron = net.spiking_blocks[-2].neuron
    before = (neuron.threshold, neuron.tau_rho)
    x = (torch.rand(8, 1, 8, 8, 16) < 0.4).float()
    with attack_threshold(net, 2 * before[0]):
        assert neuron.threshold == pytest.approx(2 * before[0])
        assert neuron.tau_rho == pytest.approx(2 * before[1])
        raised = net.forward_layers(x)[0].sum()
    assert (neuron.threshold, neuron.tau_rho) == before
    assert raised < net.forward_layers(x)[0].sum()  # a higher threshold fires less
    with pytest.raises(RuntimeError):
        with attack_threshold(net, 3.0):
            raise RuntimeError
    assert (neuron.threshold, neuron.tau_rho) == before


def test_checkpoint_with_axonal_delays_loads(tmp_path):
    from harness.models import load_checkpoint

    raw = load_spec("digits-mlp").to_dict()
    raw["layers"][0]["delay"] = True
    spec = spec_from_dict(raw, "delay")
    net = build_network(spec, seed=0)
    x = (torch.rand(2, 1, 8, 8, 16) < 0.3).float()
    with torch.no_grad():
        expected = net(x)
    torch.save({"spec": spec.to_dict(), "state_dict": net.state_dict(), "seed": 0}, tmp_path / "checkpoint.pt")
    with torch.no_grad():
        assert torch.equal(load_checkpoint(tmp_path / "checkpoint.pt")(x), expected)


def test_each_layer_may_have_its_own_neuron(tmp_path):
    import h5py
    import torch

    raw = load_spec("digits-mlp").to_dict()
    raw["layers"][0]["neuron"] = {"threshold": 1.0, "current_decay": 0.5}
    raw["layers"][1]["neuron"] = {"threshold": 2.0, "voltage_decay": 0.1}
    net = build_network(spec_from_dict(raw, "hetero"), seed=0)
    first, second = (block.neuron for block in net.spiking_blocks)
    assert (first.threshold, second.threshold) == pytest.approx((1.0, 2.0), abs=1 / 64)
    with torch.no_grad():
        net(torch.zeros(1, 1, 8, 8, 16))
    net.export_hdf5(tmp_path / "n.net")
    with h5py.File(tmp_path / "n.net") as f:
        neurons = [{k: int(f[f"layer/{i}/neuron/{k}"][()]) for k in ("vThMant", "iDecay", "vDecay")} for i in (0, 1)]
    assert neurons[0]["vThMant"] * 2 == neurons[1]["vThMant"]
    assert neurons[0]["iDecay"] == 2048 and neurons[1]["iDecay"] == 1024      # 0.5 and the spec's 0.25
    assert neurons[0]["vDecay"] != neurons[1]["vDecay"]


def test_unknown_layer_keys_are_refused():
    raw = load_spec("digits-mlp").to_dict()
    raw["layers"][0]["neuron"] = {"treshold": 1.0}
    with pytest.raises(ConfigError, match=r"layer 0 neuron: unknown key\(s\) treshold"):
        spec_from_dict(raw, "x.toml")
    raw["layers"][0] = {"type": "dense", "out": 3, "bias": True}
    with pytest.raises(ConfigError, match=r"layer 0: unknown key\(s\) bias"):
        spec_from_dict(raw, "x.toml")


def test_pdsg_surrogate_kind_keeps_the_forward_spikes_and_gives_a_gradient():
    raw = load_spec("digits-mlp").to_dict()
    pdsg = build_network(spec_from_dict({**raw, "surrogate": {"kind": "pdsg"}}, "pdsg"), seed=0)
    own = build_network(load_spec("digits-mlp"), seed=0)
    x = (torch.rand(3, *own.spec.input_shape, own.spec.steps, generator=torch.Generator().manual_seed(0)) < 0.3).float()
    xg = x.clone().requires_grad_(True)
    out = pdsg(xg)
    assert torch.equal(out, own(x))
    (g,) = torch.autograd.grad(out.sum(), xg)
    assert g.abs().sum() > 0
