"""The naive replay baseline: build, compile and run one netx network per sample.

This is how lava-dl's tutorials replay a network, following ../shared/notes/lava-replay.md
("Export and replay recipe that is bit-exact"): ``netx.hdf5.Network(net_config,
reset_interval=T, reset_offset=1)`` fed by a RingBuffer source, read by a RingBuffer sink of
T steps, run under ``Loihi2SimCfg(select_tag='fixed_pt')`` and always stopped in ``finally``
(without it the interpreter hangs on exit). A fresh network per sample has no previous sample
whose spikes could leak into the first steps, so its raster is directly SLAYER's.

Only networks whose first layer is dense (flat input) are supported: a conv network needs
netx's ``input_shape`` and (W, H, C, T) input, which the benchmark does not use.
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np


def preload() -> None:
    """Import netx and Lava's run machinery now (5-6 s once), so no timed replay pays for it."""
    import lava.lib.dl.netx.hdf5  # noqa: F401
    import lava.magma.core.run_conditions  # noqa: F401
    import lava.magma.core.run_configs  # noqa: F401
    import lava.proc.io.sink  # noqa: F401
    import lava.proc.io.source  # noqa: F401


def replay_one(network_file: Path, sample: np.ndarray) -> np.ndarray:
    """Replay one sample on a freshly built and compiled network.

    Args:
        network_file: netx HDF5 network whose first layer is dense.
        sample: (*input_shape, T) binary spikes, flattened in SLAYER's (C, H, W) order.
    Returns:
        (K, T) uint8 output raster in SLAYER's time alignment.
    """
    from lava.lib.dl.netx.hdf5 import Network
    from lava.magma.core.run_conditions import RunSteps
    from lava.magma.core.run_configs import Loihi2SimCfg
    from lava.proc.io.sink import RingBuffer as Sink
    from lava.proc.io.source import RingBuffer as Source

    steps = sample.shape[-1]
    net = Network(net_config=str(network_file), reset_interval=steps, reset_offset=1)
    source = Source(data=sample.reshape(-1, steps).astype(np.int32))
    sink = Sink(shape=net.out.shape, buffer=steps)
    source.s_out.connect(net.inp)
    net.out.connect(sink.a_in)
    try:
        net.run(condition=RunSteps(num_steps=steps), run_cfg=Loihi2SimCfg(select_tag="fixed_pt"))
        raster = sink.data.get()
    finally:
        net.stop()
    return np.asarray(raster).astype(np.uint8)


def replay_naive(network_file: Path, spikes: np.ndarray) -> tuple[np.ndarray, list[float]]:
    """Replay every sample on its own network.

    Args:
        spikes: (N, *input_shape, T) binary spikes.
    Returns:
        (N, K, T) uint8 output rasters, and the wall-clock seconds of each sample (build,
        compile, run, read-back and stop).
    """
    rasters, seconds = [], []
    for sample in spikes:
        start = time.perf_counter()
        rasters.append(replay_one(network_file, sample))
        seconds.append(time.perf_counter() - start)
    return np.stack(rasters), seconds
