"""File-backed input and output processes for batched replay.

- :class:`SpikeFileSource` streams a (steps, n) uint8 .npy file, memory-mapped in its own
  worker, one row per time step: the input never travels through a Lava Var.
- :class:`SpikeRecorder` keeps every step's input spikes and saves them as (n, steps) uint8.
- :class:`ActivityMonitor` reduces a layer's spikes on the fly to per-window, per-lane spike
  counts and synaptic events (spikes weighted by each neuron's fan-out).

Both sinks write their buffer with ``np.save`` from their own worker when the runtime pauses
or stops, which replaces thousands of slow ``Var.get`` round trips (about 50 us per element).
Time steps are Lava's, counted from 1.
"""
from __future__ import annotations

import os

import numpy as np
from lava.magma.core.decorator import implements, requires
from lava.magma.core.model.py.model import PyLoihiProcessModel
from lava.magma.core.model.py.ports import PyInPort, PyOutPort
from lava.magma.core.model.py.type import LavaPyType
from lava.magma.core.process.ports.ports import InPort, OutPort
from lava.magma.core.process.process import AbstractProcess
from lava.magma.core.resources import CPU
from lava.magma.core.sync.protocols.loihi_protocol import LoihiProtocol

from harness.device.watchdog import report_progress  # absolute: Lava also loads this file bare


def _save_atomically(path: str, array: np.ndarray) -> None:
    """np.save to ``path`` through a temporary name, so a reader never sees a partial file."""
    tmp = f"{path}.part.npy"
    np.save(tmp, array)
    os.replace(tmp, path)


class SpikeFileSource(AbstractProcess):
    """Sends row ``t - 1`` of a (steps, n) uint8 .npy file at time step t; zeros after it.

    It also reports its progress to the supervisor (:func:`harness.device.watchdog.report_progress`)
    about a hundred times per run.

    Args:
        path: the .npy file (read memory-mapped by the worker).
        size: n, the number of output channels.
    """

    def __init__(self, *, path: str, size: int) -> None:
        super().__init__(path=path, size=size)
        self.s_out = OutPort(shape=(size,))


@implements(proc=SpikeFileSource, protocol=LoihiProtocol)
@requires(CPU)
class PySpikeFileSourceModel(PyLoihiProcessModel):
    s_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, np.int32)

    def __init__(self, proc_params) -> None:
        super().__init__(proc_params)
        self._data = np.load(proc_params["path"], mmap_mode="r")
        self._zeros = np.zeros(proc_params["size"], dtype=np.int32)
        self._report_every = max(1, len(self._data) // 100)

    def run_spk(self) -> None:
        t = self.time_step - 1
        self.s_out.send(self._data[t].astype(np.int32) if t < len(self._data) else self._zeros)
        if self.time_step % self._report_every == 0 or self.time_step == len(self._data):
            report_progress(min(self.time_step, len(self._data)), len(self._data))


class _FileSink(PyLoihiProcessModel):
    """Saves ``self._buffer`` to ``proc_params['path']`` when the runtime pauses or stops."""

    _buffer: np.ndarray

    def _pause(self) -> None:
        _save_atomically(self.proc_params["path"], self._buffer)
        super()._pause()

    def _stop(self) -> None:
        _save_atomically(self.proc_params["path"], self._buffer)
        super()._stop()


class SpikeRecorder(AbstractProcess):
    """Records a spike vector of ``size`` channels for ``steps`` steps into an .npy file.

    The saved array is (size, steps) uint8 (1 where the channel spiked at that step).
    """

    def __init__(self, *, path: str, size: int, steps: int) -> None:
        super().__init__(path=path, size=size, steps=steps)
        self.a_in = InPort(shape=(size,))


@implements(proc=SpikeRecorder, protocol=LoihiProtocol)
@requires(CPU)
class PySpikeRecorderModel(_FileSink):
    a_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, np.int32)

    def __init__(self, proc_params) -> None:
        super().__init__(proc_params)
        self._buffer = np.zeros((proc_params["size"], proc_params["steps"]), dtype=np.uint8)

    def run_spk(self) -> None:
        spikes = self.a_in.recv()
        t = self.time_step - 1
        if t < self._buffer.shape[1]:
            self._buffer[:, t] = spikes != 0


class ActivityMonitor(AbstractProcess):
    """Per-window, per-lane spike counts and synaptic events of one layer.

    The layer's spike vector holds ``lanes`` side-by-side copies of ``fanout.size`` neurons.
    Time is cut into windows of ``interval`` steps (one sample per lane and window); only the
    steps whose position in the window lies in [first, last) are counted (earlier ones still
    carry the previous sample, later ones fall outside the sample's T steps). The saved array
    is (windows, lanes, 2 + extra) int64: [..., 0] spikes, [..., 1] synaptic events (each spike
    weighted by its neuron's fan-out), then, when asked for (per-core recording,
    harness/device/mapping.py), in this order:

    - ``neurons``: n columns, each neuron's spikes;
    - ``groups`` (n,) core of each neuron (0..k-1): k x ``last`` columns, [g * last + p] the
      spikes group g emits at window position p;
    - ``targets`` (n, k2) synapses from each neuron into each of k2 destination cores:
      k2 x ``last`` columns, [c * last + p] the synaptic events the spikes sent at position p
      cause in destination core c.

    Args:
        path: output .npy file.
        lanes: number of side-by-side copies.
        fanout: (n,) int64 synapses leaving each neuron of one copy.
        interval: window length in steps; windows: number of windows.
        first, last: the counted positions in each window, [first, last).
        neurons: also count each neuron's spikes.
        groups, targets: see above (None: not recorded).
    """

    def __init__(self, *, path: str, lanes: int, fanout: np.ndarray, interval: int, windows: int,
                 first: int, last: int, neurons: bool = False, groups: np.ndarray | None = None,
                 targets: np.ndarray | None = None) -> None:
        n = len(fanout)
        onehot = np.zeros((n, 0), dtype=np.int64)
        if groups is not None:
            onehot = (np.asarray(groups)[:, None] == np.arange(int(np.max(groups)) + 1)[None, :]).astype(np.int64)
        targets = np.zeros((n, 0), dtype=np.int64) if targets is None else np.asarray(targets, dtype=np.int64)
        super().__init__(path=path, lanes=lanes, fanout=np.asarray(fanout, dtype=np.int64),
                         interval=interval, windows=windows, first=first, last=last, neurons=bool(neurons),
                         per_step=np.concatenate([onehot, targets], axis=1))
        self.a_in = InPort(shape=(lanes * n,))


@implements(proc=ActivityMonitor, protocol=LoihiProtocol)
@requires(CPU)
class PyActivityMonitorModel(_FileSink):
    a_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, np.int32)

    def __init__(self, proc_params) -> None:
        super().__init__(proc_params)
        self._fanout = proc_params["fanout"]
        self._lanes = proc_params["lanes"]
        self._interval = proc_params["interval"]
        self._counted = range(proc_params["first"], proc_params["last"])
        self._neurons = len(self._fanout) if proc_params["neurons"] else 0
        self._per_step = proc_params["per_step"]  # (n, k + k2): group one-hot, then synapses per target
        self._steps = proc_params["last"]
        width = 2 + self._neurons + self._per_step.shape[1] * self._steps
        self._buffer = np.zeros((proc_params["windows"], self._lanes, width), dtype=np.int64)

    def run_spk(self) -> None:
        spikes = self.a_in.recv()
        window, position = divmod(self.time_step - 1, self._interval)
        if position not in self._counted or window >= len(self._buffer):
            return
        per_lane = (spikes != 0).reshape(self._lanes, -1)
        row = self._buffer[window]
        row[:, 0] += per_lane.sum(axis=1)
        row[:, 1] += per_lane @ self._fanout
        if self._neurons:
            row[:, 2:2 + self._neurons] += per_lane
        if self._per_step.shape[1]:
            columns = 2 + self._neurons + np.arange(self._per_step.shape[1]) * self._steps + position
            row[:, columns] += per_lane.astype(np.int64) @ self._per_step
