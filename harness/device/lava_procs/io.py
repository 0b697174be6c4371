"""File-backed input and output processes for batched replay.

- :class:`SpikeFileSource` streams (steps, n) uint8 .npy files, ``input_0.npy``,
  ``input_1.npy``, ... of a folder, one after another, memory-mapped in its own worker, one row
  per time step: the input never travels through a Lava Var, and a running network takes the
  next file (the next spike set of a device session) when it has sent the last row of one.
  With ``fanout`` it also counts what it sends, as an :class:`ActivityMonitor` of the input
  would (one Lava process fewer per run).
- :class:`ActivityMonitor` reduces a layer's spikes on the fly to per-lane spike counts and
  synaptic events (spikes weighted by each neuron's fan-out) per window; with ``raster`` it
  also keeps every step's spikes (the output layer: no separate recorder process).

Every window (``interval`` steps, one sample per lane) is saved by the process that counted it,
from its own worker, at the window's last step: ``<prefix>_<window>.npy`` (counts, (lanes, 2 +
extra) int64) and ``<prefix>_raster_<window>.npy`` ((lanes * n, interval) uint8), so a blocking
``run`` returns with every finished window on disk, without thousands of slow ``Var.get`` round
trips (about 50 us per element). Windows and time steps are Lava's, counted from the start of the
runtime (time step 1 is row 0 of ``input_0.npy``).
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

REPORTS_PER_FILE = 100


def _save_atomically(path: str, array: np.ndarray) -> None:
    """np.save to ``path`` through a temporary name, so a reader never sees a partial file."""
    tmp = f"{path}.part.npy"
    np.save(tmp, array)
    os.replace(tmp, path)


def window_file(prefix: str, window: int, raster: bool = False) -> str:
    """The file a monitor saves ``window`` to (counts, or the raster with ``raster``)."""
    return f"{prefix}_raster_{window}.npy" if raster else f"{prefix}_{window}.npy"


def input_file(folder: str, index: int) -> str:
    """The ``index``-th input stream a :class:`SpikeFileSource` reads from ``folder``."""
    return os.path.join(folder, f"input_{index}.npy")


def _monitor_params(lanes: int, fanout, interval: int, first: int, last: int, prefix: str, neurons: bool = False,
                    groups=None, targets=None, raster: bool = False) -> dict:
    """The monitor options shared by :class:`ActivityMonitor` and a monitoring source."""
    n = len(fanout)
    onehot = np.zeros((n, 0), dtype=np.int64)
    if groups is not None:
        onehot = (np.asarray(groups)[:, None] == np.arange(int(np.max(groups)) + 1)[None, :]).astype(np.int64)
    targets = np.zeros((n, 0), dtype=np.int64) if targets is None else np.asarray(targets, dtype=np.int64)
    return {"prefix": prefix, "lanes": lanes, "fanout": np.asarray(fanout, dtype=np.int64), "interval": interval,
            "first": first, "last": last, "neurons": bool(neurons), "raster": bool(raster),
            "per_step": np.concatenate([onehot, targets], axis=1)}


class SpikeFileSource(AbstractProcess):
    """Sends, at time step t, the next row of the input files of ``folder``; zeros when none is left.

    Row ``t - 1 - start`` of ``input_<k>.npy`` is sent, where ``start`` is the total length of
    the earlier files; file ``k + 1`` is opened when file ``k`` has been sent (it must exist by
    then: a device session writes it before asking for the steps that read it). It reports its
    progress to the supervisor (:func:`harness.device.watchdog.report_progress`) about a hundred
    times per file.

    Args:
        folder: directory of the .npy files (each (steps, n) uint8, read memory-mapped).
        size: n, the number of output channels.
        monitor: :class:`ActivityMonitor` options (``prefix``, ``lanes``, ``fanout``, ...) to
            count the input stream itself, or None.
    """

    def __init__(self, *, folder: str, size: int, monitor: dict | None = None) -> None:
        options = {} if monitor is None else _monitor_params(**monitor)
        super().__init__(folder=folder, size=size, monitor=options)
        self.s_out = OutPort(shape=(size,))


class _WindowCounter:
    """The counting of :class:`ActivityMonitor` (one window in memory, saved at its last step)."""

    def __init__(self, params: dict) -> None:
        self._prefix = params["prefix"]
        self._fanout = params["fanout"]
        self._lanes = params["lanes"]
        self._interval = params["interval"]
        self._counted = range(params["first"], params["last"])
        self._neurons = len(self._fanout) if params["neurons"] else 0
        self._per_step = params["per_step"]  # (n, k + k2): group one-hot, then synapses per target
        self._steps = params["last"]
        width = 2 + self._neurons + self._per_step.shape[1] * self._steps
        self._counts = np.zeros((self._lanes, width), dtype=np.int64)
        size = self._lanes * len(self._fanout)
        self._raster = np.zeros((size, self._interval), dtype=np.uint8) if params["raster"] else None

    def add(self, time_step: int, spikes: np.ndarray) -> None:
        """Count the spikes of Lava step ``time_step``; save the window at its last step."""
        window, position = divmod(time_step - 1, self._interval)
        if self._raster is not None:
            self._raster[:, position] = spikes != 0
        if position in self._counted:
            self._count(spikes, position)
        if position == self._interval - 1:
            self._save(window)

    def _count(self, spikes: np.ndarray, position: int) -> None:
        per_lane = (spikes != 0).reshape(self._lanes, -1)
        row = self._counts
        row[:, 0] += per_lane.sum(axis=1)
        row[:, 1] += per_lane @ self._fanout
        if self._neurons:
            row[:, 2:2 + self._neurons] += per_lane
        if self._per_step.shape[1]:
            columns = 2 + self._neurons + np.arange(self._per_step.shape[1]) * self._steps + position
            row[:, columns] += per_lane.astype(np.int64) @ self._per_step

    def _save(self, window: int) -> None:
        _save_atomically(window_file(self._prefix, window), self._counts)
        self._counts[:] = 0
        if self._raster is not None:
            _save_atomically(window_file(self._prefix, window, raster=True), self._raster)
            self._raster[:] = 0


@implements(proc=SpikeFileSource, protocol=LoihiProtocol)
@requires(CPU)
class PySpikeFileSourceModel(PyLoihiProcessModel):
    s_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, np.int32)

    def __init__(self, proc_params) -> None:
        super().__init__(proc_params)
        self._folder = proc_params["folder"]
        self._zeros = np.zeros(proc_params["size"], dtype=np.int32)
        self._data, self._index, self._start = np.zeros((0, proc_params["size"]), np.uint8), -1, 0
        self._counter = _WindowCounter(proc_params["monitor"]) if proc_params["monitor"] else None

    def _row(self, t: int) -> np.ndarray:
        """Row for 0-based step ``t``, opening the next file when the current one is used up."""
        if t >= self._start + len(self._data):
            path = input_file(self._folder, self._index + 1)
            if not os.path.exists(path):
                return self._zeros
            self._start, self._index = self._start + len(self._data), self._index + 1
            self._data = np.load(path, mmap_mode="r")
            self._report_every = max(1, len(self._data) // REPORTS_PER_FILE)
        return self._data[t - self._start].astype(np.int32)

    def run_spk(self) -> None:
        spikes = self._row(self.time_step - 1)
        self.s_out.send(spikes)
        if self._counter is not None:
            self._counter.add(self.time_step, spikes)
        done = self.time_step - self._start
        if len(self._data) and (done % self._report_every == 0 or done == len(self._data)):
            report_progress(min(done, len(self._data)), len(self._data))


class ActivityMonitor(AbstractProcess):
    """Per-window, per-lane spike counts and synaptic events of one layer.

    The layer's spike vector holds ``lanes`` side-by-side copies of ``fanout.size`` neurons.
    Time is cut into windows of ``interval`` steps (one sample per lane and window); only the
    steps whose position in the window lies in [first, last) are counted (earlier ones still
    carry the previous sample, later ones fall outside the sample's T steps). Each window is
    saved as (lanes, 2 + extra) int64: [..., 0] spikes, [..., 1] synaptic events (each spike
    weighted by its neuron's fan-out), then, when asked for (per-core recording,
    harness/device/mapping.py), in this order:

    - ``neurons``: n columns, each neuron's spikes;
    - ``groups`` (n,) core of each neuron (0..k-1): k x ``last`` columns, [g * last + p] the
      spikes group g emits at window position p;
    - ``targets`` (n, k2) synapses from each neuron into each of k2 destination cores:
      k2 x ``last`` columns, [c * last + p] the synaptic events the spikes sent at position p
      cause in destination core c.

    Args:
        prefix: path prefix of the saved windows (:func:`window_file`).
        lanes: number of side-by-side copies.
        fanout: (n,) int64 synapses leaving each neuron of one copy.
        interval: window length in steps.
        first, last: the counted positions in each window, [first, last).
        neurons: also count each neuron's spikes.
        groups, targets: see above (None: not recorded).
        raster: also save every step's spikes, (lanes * n, interval) uint8 per window.
    """

    def __init__(self, *, prefix: str, lanes: int, fanout: np.ndarray, interval: int, first: int, last: int,
                 neurons: bool = False, groups: np.ndarray | None = None, targets: np.ndarray | None = None,
                 raster: bool = False) -> None:
        super().__init__(**_monitor_params(lanes, fanout, interval, first, last, prefix, neurons, groups, targets,
                                           raster))
        self.a_in = InPort(shape=(lanes * len(fanout),))


@implements(proc=ActivityMonitor, protocol=LoihiProtocol)
@requires(CPU)
class PyActivityMonitorModel(PyLoihiProcessModel):
    a_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, np.int32)

    def __init__(self, proc_params) -> None:
        super().__init__(proc_params)
        self._counter = _WindowCounter(proc_params)

    def run_spk(self) -> None:
        self._counter.add(self.time_step, self.a_in.recv())
