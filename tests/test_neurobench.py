"""The NeuroBench figures of results.json against the ``neurobench`` package's own metric classes
(issue 26): a harness network (SLAYER's CUBA neuron registered as an activation module, weight
norm folded, the synapses holding the weights the device holds) through neurobench's Benchmark,
beside :func:`harness.device.workload.neurobench_metrics` on the network's device replay."""
from __future__ import annotations

import pytest
import torch
from lava.lib.dl import slayer
from neurobench.benchmarks import Benchmark
from neurobench.metrics.static import ConnectionSparsity, Footprint
from neurobench.metrics.workload import ActivationSparsity, SynapticOperations
from neurobench.models import TorchModel

from harness.device.netx_reader import read_network
from harness.device.workload import neurobench_metrics
from harness.runs import open_run
from harness.stages import replay_run
from harness.train import train_run


def _as_the_device_holds_it(net: torch.nn.Module) -> torch.nn.Module:
    """The SLAYER network with weight norm folded and each synapse holding its quantized weight
    (what its forward uses and the netx export holds), no gradients."""
    for block in net.spiking_blocks:
        block.synapse.disable_weight_norm()
        block.synapse.weight.data = block.synapse._pre_hook_fx(block.synapse.weight.data)
    return net.requires_grad_(False)


def _neurobench(net: torch.nn.Module, spikes: torch.Tensor, labels: torch.Tensor) -> dict:
    model = TorchModel(net)
    model.add_activation_module(slayer.neuron.cuba.Neuron)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(spikes, labels), batch_size=len(spikes))
    metrics = [[Footprint, ConnectionSparsity], [ActivationSparsity, SynapticOperations]]
    return Benchmark(model, loader, [], [], metrics).run(quiet=True)


def _neuron_outputs(net: torch.nn.Module, spikes: torch.Tensor) -> list[torch.Tensor]:
    """Every layer's neuron output (N, size, T), before SLAYER's one-step delay."""
    outputs = []
    hooks = [block.neuron.register_forward_hook(lambda module, args, out: outputs.append(out))
             for block in net.spiking_blocks]
    try:
        with torch.no_grad():
            net(spikes)
    finally:
        for hook in hooks:
            hook.remove()
    return outputs


@pytest.mark.slow
def test_neurobench_figures_match_the_neurobench_package(tmp_path):
    run_dir = tmp_path / "digits"
    train_run("digits-mlp", run_dir, epochs=1, progress=False)
    replay_run(run_dir, "loihi2-fixed", progress=False)
    run = open_run(run_dir)
    test, device = run.test(), run.replay("loihi2-fixed", "clean").arrays
    steps = int(test.spikes.shape[-1])
    ours = neurobench_metrics(read_network(run.network_file), device["neuron_counts"], steps)
    net = _as_the_device_holds_it(run.net)
    neuron_bytes = sum(t.numel() * t.element_size() for block in net.spiking_blocks  # before any forward pass
                       for t in (*block.neuron.parameters(), *block.neuron.buffers()))
    spikes = torch.as_tensor(test.spikes, dtype=torch.float32)
    theirs = _neurobench(net, spikes, torch.as_tensor(test.labels))

    # NeuroBench's own definitions: equal
    assert theirs["SynapticOperations"]["Effective_ACs"] == pytest.approx(ours["synaptic_operations"]["effective_acs"],
                                                                         rel=1e-12)
    assert theirs["SynapticOperations"]["Dense"] == ours["synaptic_operations"]["dense"]
    assert theirs["SynapticOperations"]["Effective_MACs"] == 0  # binary spikes: accumulations only
    assert 0 < ours["connection_sparsity"] < 1
    assert theirs["ConnectionSparsity"] == round(ours["connection_sparsity"], 4)  # neurobench rounds to 4 places

    # the harness's own figures, named apart: the stated differences, exactly
    outputs = _neuron_outputs(net, spikes)
    neurons = sum(out[0, ..., 0].numel() for out in outputs)
    all_steps = sum(int(out.sum()) for out in outputs)
    last_step = sum(int(out[..., -1].sum()) for out in outputs)
    assert all_steps == int(device["layer_counts"].sum()) + last_step and last_step > 0
    assert theirs["ActivationSparsity"] == pytest.approx(1 - all_steps / (len(spikes) * steps * neurons), rel=1e-12)
    assert ours["device_activation_sparsity"] == pytest.approx(
        1 - (all_steps - last_step) / (len(spikes) * steps * neurons), rel=1e-12)
    assert theirs["Footprint"] == ours["weight_bias_bytes"] + neuron_bytes and neuron_bytes > 0
