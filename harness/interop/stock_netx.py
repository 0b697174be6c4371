"""The reference the replay is held to: stock netx, one sample at a time.

Each sample runs on a freshly built :class:`lava.lib.dl.netx.hdf5.Network` for exactly T steps
from the initial state (every neuron at u = v = 0, nothing in flight in any synapse) under
``Loihi2SimCfg(select_tag='fixed_pt')``, built as the replay's ``sample_mode`` says:

- ``fresh``: ``Network(net_config=...)`` with netx's defaults (no reset), as lava-dl's own tests
  build it: what a user who loads the file and runs one sample gets;
- ``interval``: with netx's reset schedule (``reset_interval=T``; ``reset_offset`` 0 behind an
  Input layer, else 1, so each layer resets at the step the sample's first input reaches it),
  which is what samples streamed through one loaded network meet.

That is the truth the lanes x windows replay must equal.

Slow by construction (one build and compile per sample, about 0.6-2 s each): for tests and
for proving small sets, not for bulk replay. Runs inside the watchdog
(:func:`harness.device.watchdog.run_supervised`), and every network is stopped.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..device.lava_sim import FRESH
from ..device.lowering import input_order, output_order
from ..device.session import check_sample_mode
from ..device.netx_reader import check_input, read_network
from ..device.watchdog import run_supervised


def _one_sample(path: str, stream: np.ndarray, input_shape_whc, has_input_layer: bool, sample_mode: str
                ) -> np.ndarray:
    """(K, T) output spikes in Lava's neuron order for one (n, T) input stream (Lava order)."""
    from lava.lib.dl import netx
    from lava.magma.core.run_conditions import RunSteps
    from lava.magma.core.run_configs import Loihi2SimCfg
    from lava.proc.io.sink import RingBuffer as Sink
    from lava.proc.io.source import RingBuffer as Source

    steps = stream.shape[-1]
    resets = {} if sample_mode == FRESH else {"reset_interval": steps, "reset_offset": 0 if has_input_layer else 1}
    net = netx.hdf5.Network(net_config=path, input_shape=input_shape_whc, **resets)
    port = net.in_layer.neuron.a_in if has_input_layer else net.inp  # netx leaves Input.inp unconnected
    source = Source(data=stream.reshape(*port.shape, steps).astype(np.int32))
    source.s_out.connect(port)
    sink = Sink(shape=net.out.shape, buffer=steps)
    net.out.connect(sink.a_in)
    try:
        net.run(condition=RunSteps(num_steps=steps), run_cfg=Loihi2SimCfg(select_tag="fixed_pt"))
        return np.asarray(sink.data.get()).reshape(-1, steps).astype(np.uint8)
    finally:
        net.stop()  # always: without it the interpreter hangs on exit


def _all_samples(path: str, streams: np.ndarray, input_shape_whc, has_input_layer: bool, sample_mode: str
                 ) -> np.ndarray:
    return np.stack([_one_sample(path, stream, input_shape_whc, has_input_layer, sample_mode) for stream in streams])


def stock_netx_rasters(network_file: str | Path, spikes: np.ndarray, timeout: float = 600.0,
                       sample_mode: str = FRESH) -> np.ndarray:
    """Output spikes of stock netx, each sample on its own fresh network.

    Args:
        network_file: a netx HDF5 network the harness can read (:mod:`harness.device.netx_reader`).
        spikes: (N, C, T) or (N, C, H, W, T) binary spikes in SLAYER's layout.
        timeout: watchdog timeout for all samples together, seconds.
        sample_mode: ``"fresh"`` (netx's defaults) or ``"interval"`` (``reset_interval = T``).
    Returns:
        (N, K, T) uint8 output rasters in SLAYER's channel order; index t is Lava step t + 1,
        i.e. SLAYER's output step t (the first L steps hold what the network does before the
        sample reaches its output layer).
    """
    spikes = np.asarray(spikes)
    network = read_network(network_file, spikes.shape[1:-1])
    check_input(network, spikes.shape)
    samples, steps = len(spikes), spikes.shape[-1]
    streams = spikes.reshape(samples, -1, steps)[:, input_order(network)]
    has_input_layer = network.layers[0].kind == "input"
    shape_whc = None
    if not has_input_layer and network.layers[0].kind == "conv":
        shape_whc = tuple(reversed(network.input_shape))
    rasters = run_supervised(_all_samples, str(network_file), streams, shape_whc, has_input_layer,
                             check_sample_mode(sample_mode), timeout=timeout, what="stock netx")
    return rasters[:, output_order(network)]
