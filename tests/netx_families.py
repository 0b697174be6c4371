"""lava-dl networks built the way a user outside the harness builds them (tests only).

Each builder makes a small ``slayer.block.cuba`` network with its own neuron parameters per
layer, sets it up with one forward pass (SLAYER sets neuron shapes then), and exports it with
``export_hdf5``. Bias comes from ``MeanOnlyBatchNorm`` (lava-dl's only way to export one) with
a running mean drawn from the seed, so bias excites some neurons and inhibits others.

Families (issue 12): ``dense_bias`` (a), ``conv_bias`` (b: strided padded grouped conv, flatten,
dense, bias everywhere), ``dense_delay`` (c: axonal delays) and ``input_layer`` (d: any of them
behind a netx Input layer); ``nmnist_conv`` takes N-MNIST's (2, 34, 34) frames.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from lava.lib.dl import slayer

#: (threshold, current_decay, voltage_decay) of each layer: every layer its own
NEURONS = [(1.0, 0.5, 0.03), (0.75, 0.25, 0.1), (1.25, 1.0, 0.05)]
#: an Input layer's neuron: on the device one input spike adds 1 << 6 to its current, so only a
#: threshold of one mantissa step (1/64) lets unary input spikes through
INPUT_NEURON = (1 / 64, 0.5, 0.0)


def _neuron(i: int | None, norm: bool) -> dict:
    threshold, current_decay, voltage_decay = INPUT_NEURON if i is None else NEURONS[i % len(NEURONS)]
    params = {"threshold": threshold, "current_decay": current_decay, "voltage_decay": voltage_decay,
              "tau_grad": 1.0, "scale_grad": 1.0, "requires_grad": False}
    if norm:
        params["norm"] = slayer.neuron.norm.MeanOnlyBatchNorm
    return params


class Net(torch.nn.Module):
    def __init__(self, blocks):
        super().__init__()
        self.blocks = torch.nn.ModuleList(blocks)

    def forward(self, x):
        for block in self.blocks:
            x = block(x)
        return x

    def export_hdf5(self, path):
        import h5py

        with h5py.File(path, "w") as f:
            layer = f.create_group("layer")
            for i, block in enumerate(self.blocks):
                block.export_hdf5(layer.create_group(f"{i}"))


def _set_bias(net: Net, rng: np.random.Generator, spread: float) -> None:
    for block in net.blocks:
        norm = getattr(getattr(block, "neuron", None), "norm", None)
        if norm is not None:
            features = block.synapse.out_channels
            norm.running_mean = torch.tensor(rng.normal(-0.1 * spread, spread, features), dtype=torch.float32)


def build(family: str, path: Path, seed: int = 0, input_layer: bool = False, steps: int = 20,
          bias: bool = True):
    """Build, set up and export one network; returns (net, input shape (C,) or (C, H, W)).

    The forward pass before export runs in eval mode on zeros (it fixes neuron shapes);
    delays (0..4 steps) and running means (the biases) are then drawn from ``seed``.
    """
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    blocks = []
    if family in ("dense_bias", "dense_delay"):
        shape = (24,)
        if input_layer:
            blocks.append(slayer.block.cuba.Input(_neuron(None, False)))
        sizes = [24, 20, 16, 6]
        for i in range(3):
            blocks.append(slayer.block.cuba.Dense(_neuron(i, bias), sizes[i], sizes[i + 1], weight_scale=2 + i,
                                                  weight_norm=False, delay=family == "dense_delay" and i < 2))
    elif family == "conv_bias":
        shape = (2, 9, 8)
        if input_layer:
            blocks.append(slayer.block.cuba.Input(_neuron(None, False)))
        blocks += [slayer.block.cuba.Conv(_neuron(0, bias), 2, 4, 3, stride=2, padding=1, weight_scale=3,
                                          weight_norm=False),
                   slayer.block.cuba.Conv(_neuron(1, bias), 4, 4, 3, stride=1, padding=1, groups=2,
                                          weight_scale=3, weight_norm=False),
                   slayer.block.cuba.Flatten(),
                   slayer.block.cuba.Dense(_neuron(2, bias), 4 * 5 * 4, 6, weight_scale=3, weight_norm=False)]
    elif family == "nmnist_conv":  # N-MNIST's 2x34x34 frames, the shape of the measurement
        shape = (2, 34, 34)
        blocks += [slayer.block.cuba.Conv(_neuron(0, bias), 2, 4, 3, stride=2, padding=1, weight_scale=3,
                                          weight_norm=False),
                   slayer.block.cuba.Flatten(),
                   slayer.block.cuba.Dense(_neuron(1, bias), 4 * 17 * 17, 32, weight_scale=3, weight_norm=False),
                   slayer.block.cuba.Dense(_neuron(2, bias), 32, 10, weight_scale=3, weight_norm=False)]
    else:
        raise ValueError(family)
    net = Net(blocks)
    net.eval()
    with torch.no_grad():
        net(torch.zeros(1, *shape, steps))
    for block in net.blocks:  # SLAYER draws the delays on the first forward pass: set them after it
        if getattr(block, "delay", None) is not None:
            block.delay.delay.data = torch.randint(0, 5, block.delay.delay.shape).float()
    _set_bias(net, rng, spread=0.3)
    net.export_hdf5(path)
    return net, shape


def random_spikes(shape, n: int, steps: int, seed: int = 0, rate: float = 0.3) -> np.ndarray:
    """(n, *shape, steps) random binary spikes."""
    return (np.random.default_rng(seed).random((n, *shape, steps)) < rate).astype(np.uint8)
