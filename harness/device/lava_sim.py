"""The ``lava-sim`` backend: the network as Lava processes under ``Loihi2SimCfg``.

How many samples run at once (../shared/notes/lava-replay.md, "Throughput"):

- lanes: ``B`` copies of the network side by side with block-diagonal sparse synapses (Lava's
  ``Sparse``/``DelaySparse``), so one Lava time step advances ``B`` samples; ``Sparse`` runs
  models that add only the spiking inputs' weight columns (:func:`run_config`), so a step costs
  the synapses in use, not all ``B`` copies of every synapse;
- windows: when there are more samples than lanes, each lane replays several samples one
  after another and Lava's ``LIFReset`` clears every layer at the step the new sample's first
  input reaches it (netx's ``reset_interval`` / ``reset_offset``, one step later per layer).

A device session builds and compiles the network once and replays set after set on it, each
set as the next windows of the same run. Neuron parameters come from netx
(:meth:`lava.lib.dl.netx.hdf5.Network.get_neuron_params`), weight scaling from netx
(:func:`lava.lib.dl.netx.utils.optimize_weight_bits`); the arithmetic is Lava's own
fixed-point (``fixed_pt``, bit-exact Loihi) or floating-point (``floating_pt``) models.

Time alignment with SLAYER (``delay_shift=True``): every synapse layer delays by one step on
both sides, so Lava step ``w*W + t + 1`` of a lane is SLAYER's output step ``t`` of the sample
in window ``w`` (window length ``W = T``). How a sample meets the network is the replay's
``sample_mode`` (docs/device.md, "Bias"):

- ``fresh`` (the default): as on a freshly loaded network with netx's defaults (no reset), one
  sample per load, what lava-dl's own tests compare against. Each layer starts a sample in the
  state a fresh network holds when the sample's first input reaches it: bias-driven, the same
  for every sample; the window's reset restores that state
  (:mod:`harness.device.lava_procs.neurons`).
- ``interval``: samples streamed through one loaded network with netx's
  ``reset_interval = T``: every layer's u and v are zeroed at the step a sample reaches it.

The reference is stock netx run one sample at a time on a fresh network, with its defaults or
with ``reset_interval = T`` (:mod:`harness.interop.stock_netx`); two more rules make the replay
equal to it, bias included:

- the first ``L`` output steps (``L`` synapse layers) of a window are what the network does
  before the sample reaches the output layer. On a fresh network that transient is the same
  for every sample (the input has not arrived; only bias drives it), so every window gets the
  transient of window 0, which is a fresh start. Without bias it is all zeros. Activity counts
  skip those steps.
- a reset clears a neuron but not the currents still travelling in a ``DelaySparse`` synapse,
  and no number of silent steps empties them (bias, or a slow current decay, keeps neurons
  firing between samples). A network with axonal delays therefore runs every window on a
  freshly built network (:class:`LavaNetwork`): lanes side by side still, one build each.

Everything here runs inside the supervised job of a device session (:class:`LavaNetwork`,
served by :class:`harness.device.watchdog.SupervisedServer`; the caller's side is
:mod:`harness.device.session`); nothing there may touch torch (torch calls inside Lava worker
processes can hang).
"""
from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import sparse

from ..errors import DeviceError
from .lowering import LoweredLayer, fanout
from .watchdog import IDLE, RUNNING, report_phase

FLOATING_POINT = "floating_pt"
DECAY_UNIT = 4096  # Loihi decays are 12-bit fractions
STATE_SHIFT = 6    # Loihi left-shifts synaptic input and threshold by 6 bits

LANE_MEMORY_BUDGET = 384 * 2**20  # bytes all lanes together may use
BYTES_PER_SYNAPSE = 76            # one synapse's copies across build, compile, worker (measured ~50), + 12: the CSC copy
BYTES_PER_NEURON = 256            # estimated: state, bias, messages and monitor buffers per neuron
STEP_SECONDS = 0.01               # fixed cost of one Lava time step (one process per population)
SYNAPSE_SECONDS = 5e-9            # cost of one synapse in one step (measured 2-3e-9 in Lava's Sparse model)
TIMEOUT_FLOOR_SECONDS = 120.0     # build and compile (without the import) fit well within this
BUILD_SECONDS = 5.0               # one more build and compile (a fresh window of a delayed network)

FRESH = "fresh"        # each sample as on a freshly loaded network (netx's defaults)
INTERVAL = "interval"  # samples streamed through one network with netx's reset_interval = T
SAMPLE_MODES = (FRESH, INTERVAL)

ACTIVE = "active"  # Sparse synapses add only the spiking inputs' weight columns (lava_procs.synapse)
STOCK = "stock"    # Lava's own Sparse models: the whole matrix every step (same results, slower)
SYNAPSES = (ACTIVE, STOCK)


@dataclass(frozen=True)
class Batch:
    """How N samples of T steps are laid out: ``lanes`` side by side, ``windows`` in time.

    Sample ``i`` runs in lane ``i % lanes`` during window ``i // lanes``; a window is T steps.
    """

    samples: int
    steps: int
    lanes: int

    @property
    def windows(self) -> int:
        return math.ceil(self.samples / self.lanes)

    @property
    def window(self) -> int:
        """Steps per window."""
        return self.steps

    @property
    def total_steps(self) -> int:
        return self.windows * self.window

    def samples_done(self, steps_done: int) -> int:
        """Samples whose window has been fully simulated after ``steps_done`` steps."""
        return min(self.samples, self.lanes * (steps_done // self.window))


@dataclass
class SimResult:
    """Raw replay results, output neurons in Lava's order.

    Attributes:
        rasters: (N, K, T) uint8 output spikes (the first ``depth`` steps of each sample: the
            fresh network's transient, see the module docstring).
        activity: (N, L + 1, 2) int64 per sample and population (the input, then every layer):
            [..., 0] spikes, [..., 1] synaptic events (spikes x fan-out).
        recorded: per population, (N, columns) int64: the monitor's per-neuron and per-core
            columns (:mod:`harness.device.recording`).
    """

    rasters: np.ndarray
    activity: np.ndarray
    recorded: list[np.ndarray]


def write_source(spikes: np.ndarray, order: np.ndarray, batch: Batch, path: Path) -> None:
    """Write the stream the source sends: (total_steps, lanes * n) uint8, one window at a time.

    Args:
        spikes: (N, n, T) binary spikes, channels in SLAYER's flat order.
        order: (n,) channel order the network's first layer reads (:func:`lowering.input_order`).
    """
    n, lanes, steps = len(order), batch.lanes, batch.steps
    stream = np.lib.format.open_memmap(path, mode="w+", dtype=np.uint8, shape=(batch.total_steps, lanes * n))
    for window in range(batch.windows):
        block = np.asarray(spikes[window * lanes:(window + 1) * lanes], dtype=np.uint8)[:, order]
        start = window * batch.window
        stream[start:start + steps, :len(block) * n] = block.transpose(2, 0, 1).reshape(steps, -1)  # rest: 0
    stream.flush()
    del stream


def _lanes(matrix: sparse.csr_matrix, lanes: int) -> sparse.csr_matrix:
    return sparse.kron(sparse.identity(lanes, dtype=matrix.dtype, format="csr"), matrix, format="csr")


def scaled_weights(matrix: sparse.csr_matrix) -> tuple[sparse.csr_matrix, int, int]:
    """netx's weight optimisation of one copy: (scaled matrix, weight bits, weight exponent).

    netx runs it on the dense matrix, zeros included, so a zero joins the values whenever
    the matrix has implicit zeros (the sign mode depends on it).
    """
    from lava.lib.dl.netx.utils import optimize_weight_bits

    values = matrix.data
    has_zeros = matrix.nnz < matrix.shape[0] * matrix.shape[1]
    scaled, bits, exponent, _ = optimize_weight_bits(np.append(values, 0) if has_zeros else values)
    out = matrix.copy()
    out.data = np.asarray(scaled[:len(values)], dtype=np.int64)
    return out, bits, exponent


def _synapse(layer: LoweredLayer, scaled: tuple[sparse.csr_matrix, int, int], lanes: int, tag: str):
    """Lava's Sparse (or DelaySparse) process for ``lanes`` copies of ``layer``'s weights, scaled
    by netx (``scaled``: :func:`scaled_weights` of ``layer.weight``)."""
    from lava.proc.sparse.process import DelaySparse, Sparse

    weight, bits, exponent = scaled
    if tag == FLOATING_POINT:  # the float models take the real weights and ignore the exponent
        weight = weight.astype(np.float64) * 2.0 ** exponent
    weights = _lanes(weight, lanes)
    common = {"weight_exp": exponent, "num_weight_bits": bits, "num_message_bits": 0}
    if layer.delay is None:
        return Sparse(weights=weights, **common)
    delays = weights.copy()  # same sparsity pattern; each row's synapses carry the row's delay
    delays.data = np.repeat(np.tile(layer.delay, lanes), np.diff(weights.indptr)).astype(np.int64)
    return DelaySparse(weights=weights, delays=delays, max_delay=int(layer.delay.max()), **common)


def _neuron(layer: LoweredLayer, lanes: int, window: int, depth: int, tag: str):
    """Lava's LIFReset for ``lanes`` copies, reset when a sample's first input reaches the layer.

    netx's parameters (integers in Loihi units) are converted for the floating-point model:
    decays / 4096, threshold and bias in units of the synaptic input (Loihi's 6-bit shift
    undone); without that conversion the float model reads integers as fractions.
    """
    from lava.lib.dl.netx.hdf5 import Network

    params = Network.get_neuron_params({"type": "CUBA", **layer.layer.neuron}, reset_interval=window,
                                       reset_offset=(depth + 1) % window)
    process = params.pop("neuron_proc")
    for netx_only in ("bias_key", "num_message_bits"):
        params.pop(netx_only)
    bias = np.zeros(layer.size, dtype=np.int64) if layer.bias is None else layer.bias
    params["bias_mant"] = np.tile(bias, lanes)
    if tag == FLOATING_POINT:
        params["du"] = (params["du"] + 1) / DECAY_UNIT  # netx stores iDecay - 1 (Loihi adds 1)
        params["dv"] = params["dv"] / DECAY_UNIT
        params["bias_mant"] = params["bias_mant"] * 2.0 ** (params["bias_exp"] - STATE_SHIFT)
        params["vth"] = float(params["vth"])
    return process(shape=(lanes * layer.size,), **params)


def build(lowered: list[LoweredLayer], lanes: int, window: int, folder: Path, tag: str,
          monitors: list[dict] | None = None, weights: list | None = None):
    """Build the Lava network of ``lanes`` copies, fed from ``folder``'s input files; returns its
    output monitor (any process of the network runs it).

    Processes: the source (which also counts the input stream), per layer a synapse (if any) and
    a ``LIFReset``, an :class:`ActivityMonitor` per layer, the last one also recording the output
    raster; the monitors save every window into ``folder`` (:func:`read_windows`).

    Args:
        lowered: the network's layers (:func:`harness.device.lowering.lower`).
        window: steps per window (T): the reset interval and the monitors' window.
        tag: ``fixed_pt`` or ``floating_pt``.
        monitors: per population (input, then each layer), extra ActivityMonitor options
            (:func:`harness.device.recording.monitor_options`), or None.
        weights: per layer, :func:`scaled_weights` of its matrix (None: computed here).
    """
    from .lava_procs.io import ActivityMonitor, SpikeFileSource

    n_in = lowered[0].weight.shape[1] if lowered[0].weight is not None else lowered[0].size
    weights = weights or [None if layer.weight is None else scaled_weights(layer.weight) for layer in lowered]

    def options(index: int, fan: np.ndarray, depth: int) -> dict:
        return {"prefix": str(folder / f"population_{index}"), "lanes": lanes, "fanout": fan, "interval": window,
                "first": depth, "last": window, **(monitors[index] if monitors else {})}

    source = SpikeFileSource(folder=str(folder), size=lanes * n_in, monitor=options(0, fanout(lowered[0].weight,
                                                                                              n_in), 0))
    port, depth = source.s_out, 0
    for i, (layer, scaled) in enumerate(zip(lowered, weights)):
        if i > 0:
            sink = ActivityMonitor(**options(i, fanout(layer.weight, n_in), depth))
            port.connect(sink.a_in)
        if layer.weight is not None:
            synapse = _synapse(layer, scaled, lanes, tag)
            port.connect(synapse.s_in)
            port, depth = synapse.a_out, depth + 1
        neuron = _neuron(layer, lanes, window, depth, tag)
        port.connect(neuron.a_in)
        port, n_in = neuron.s_out, layer.size
    output = ActivityMonitor(**options(len(lowered), np.zeros(n_in, dtype=np.int64), depth), raster=True)
    port.connect(output.a_in)
    return output


def depth_of(lowered: list[LoweredLayer]) -> int:
    """L, the synapse layers: the output's delay in steps, and the length of the transient."""
    return sum(layer.weight is not None for layer in lowered)


def read_windows(folder: Path, populations: int, windows: range, lanes: int, samples: int
                 ) -> tuple[np.ndarray, list[np.ndarray]]:
    """Read (and delete) the windows the monitors saved in ``folder``.

    Returns the output rasters (samples, K, T) uint8 in Lava's order (window w, lane l is sample
    ``(w - windows.start) * lanes + l``) and, per population, (samples, columns) int64 counts.
    """
    from .lava_procs.io import window_file

    def load(path: str) -> np.ndarray:
        array = np.load(path)
        Path(path).unlink()
        return array

    prefixes = [str(folder / f"population_{p}") for p in range(populations)]
    rasters = []
    for w in windows:
        block = load(window_file(prefixes[-1], w, raster=True))
        rasters.append(block.reshape(lanes, -1, block.shape[1]))
    counts = [np.concatenate([load(window_file(prefix, w)) for w in windows])[:samples] for prefix in prefixes]
    return np.concatenate(rasters)[:samples], counts


class LavaNetwork:
    """The job side of a device session: one Lava network (per lane layout) answering replays.

    Lives inside the supervised job (:class:`harness.device.watchdog.SupervisedServer`). Each
    request ``(index, samples)`` replays ``folder/input_<index>.npy`` (``samples`` samples,
    written by :func:`write_source` for ``lanes`` lanes) and answers a :class:`SimResult`.

    Without axonal delays the network is built once and runs on: each request runs its windows
    as the next windows of the same network (every layer resets at the step a new sample reaches
    it, as between the windows of one request; the first ``L`` output steps get the transient of
    the very first window, a fresh start). With delays every window runs on a freshly built
    network (module docstring); what is kept across them is this process (imports done, the
    compiler loaded), the lowered layers and netx's weight scaling. ``sample_mode`` (FRESH or
    INTERVAL) selects what a reset restores (module docstring), ``synapse`` (ACTIVE or STOCK) the
    Sparse synapses' models (:func:`run_config`).
    """

    def __init__(self, lowered: list[LoweredLayer], lanes: int, steps: int, folder: Path, tag: str,
                 monitors: list[dict] | None, sample_mode: str, synapse: str = ACTIVE) -> None:
        preload()
        self.lowered, self.lanes, self.steps, self.folder, self.tag = lowered, lanes, steps, folder, tag
        self.sample_mode, self.synapse = sample_mode, synapse
        self.monitors, self.depth, self.fresh = monitors, depth_of(lowered), has_delays(lowered)
        self.weights = [None if layer.weight is None else scaled_weights(layer.weight) for layer in lowered]
        self.network, self.windows_done, self.transient = None, 0, None
        if not self.fresh:
            self.network = build(lowered, lanes, steps, folder, tag, monitors, self.weights)

    def __call__(self, request: tuple[int, int]) -> SimResult:
        index, samples = request
        if self.fresh:
            return self._fresh_windows(index, samples)
        windows = math.ceil(samples / self.lanes)
        try:
            run_steps(self.network, windows * self.steps, self.tag, self.sample_mode, self.synapse)
        except DeviceError:  # stop now (the first error is the one reported); the session is over
            network, self.network = self.network, None
            with contextlib.suppress(DeviceError):
                stop(network)
            raise
        first = self.windows_done
        self.windows_done += windows
        result = self._result(self.folder, range(first, first + windows), self.lanes, samples)
        if self.transient is None:  # window 0 is a fresh start; the transient is input-independent
            self.transient = result.rasters[0, :, :self.depth].copy()
        result.rasters[..., :self.depth] = self.transient
        return result

    def _result(self, folder: Path, windows: range, lanes: int, samples: int) -> SimResult:
        rasters, monitored = read_windows(folder, len(self.lowered) + 1, windows, lanes, samples)
        activity = np.stack([m[:, :2] for m in monitored], axis=1)
        return SimResult(rasters=rasters, activity=activity, recorded=[m[:, 2:] for m in monitored])

    def _fresh_windows(self, index: int, samples: int) -> SimResult:
        """Every window of request ``index`` on a newly built network, results concatenated."""
        from .lava_procs.io import input_file

        stream = np.load(input_file(str(self.folder), index), mmap_mode="r")
        results = []
        for w in range(math.ceil(samples / self.lanes)):
            lanes = min(self.lanes, samples - w * self.lanes)
            folder = self.folder / f"window_{index}_{w}"
            folder.mkdir()
            n = stream.shape[1] // self.lanes
            np.save(input_file(str(folder), 0), stream[w * self.steps:(w + 1) * self.steps, :lanes * n])
            output = build(self.lowered, lanes, self.steps, folder, self.tag, self.monitors, self.weights)
            try:
                run_steps(output, self.steps, self.tag, self.sample_mode, self.synapse)
            finally:
                stop(output)
            result = self._result(folder, range(1), lanes, lanes)
            result.rasters[..., :self.depth] = result.rasters[0, :, :self.depth]
            results.append(result)
        return SimResult(rasters=np.concatenate([r.rasters for r in results]),
                         activity=np.concatenate([r.activity for r in results]),
                         recorded=[np.concatenate(columns) for columns in zip(*(r.recorded for r in results))])

    def close(self) -> None:
        """Stop the network if it ever ran (always: without it the interpreter hangs on exit)."""
        if self.network is not None and self.windows_done:
            network, self.network = self.network, None
            stop(network)


def has_delays(lowered: list[LoweredLayer]) -> bool:
    """Whether any layer has a non-zero axonal delay (then every window needs a fresh network)."""
    return any(layer.delay is not None and layer.delay.max() > 0 for layer in lowered)


def run_config(tag: str, sample_mode: str = INTERVAL, synapse: str = ACTIVE):
    """``Loihi2SimCfg(select_tag=tag)`` with two replacements of Lava's models:

    - for FRESH, LIFReset models that restore a fresh start at every reset
      (:mod:`harness.device.lava_procs.neurons`) instead of zeroing u and v;
    - for ACTIVE, Sparse models that add only the weight columns of the inputs that spiked
      (:mod:`harness.device.lava_procs.synapse`; bit-identical to Lava's, which STOCK keeps).
    """
    from lava.magma.core.run_configs import Loihi2SimCfg
    from lava.proc.lif.process import LIFReset
    from lava.proc.sparse.process import Sparse

    from .lava_procs.neurons import FreshStartLifFixed, FreshStartLifFloat
    from .lava_procs.synapse import ActiveColumnsSparseFixed, ActiveColumnsSparseFloat

    floating = tag == FLOATING_POINT
    models = {}
    if sample_mode == FRESH:
        models[LIFReset] = FreshStartLifFloat if floating else FreshStartLifFixed
    if synapse == ACTIVE:
        models[Sparse] = ActiveColumnsSparseFloat if floating else ActiveColumnsSparseFixed
    return Loihi2SimCfg(select_tag=tag, exception_proc_model_map=models)


def run_steps(process, steps: int, tag: str, sample_mode: str = INTERVAL, synapse: str = ACTIVE) -> None:
    """Run (compile and start on the first call, else continue) the Lava network ``process``
    belongs to for ``steps`` steps under :func:`run_config` (``tag``, ``sample_mode``, ``synapse``:
    the configuration counts on the first call only); a failure becomes a DeviceError (the network
    must then be stopped: :func:`stop`).

    Meant to run inside a supervised job: it reports the ``running`` phase, during which a dead
    worker is detected.
    """
    from lava.magma.core.run_conditions import RunSteps

    try:
        report_phase(RUNNING)
        process.run(condition=RunSteps(num_steps=steps), run_cfg=run_config(tag, sample_mode, synapse))
    except Exception as exc:
        raise DeviceError(f"Lava run failed: {_describe(exc, process)}") from None
    finally:
        report_phase(IDLE)


def stop(process) -> None:
    """Stop the Lava network ``process`` belongs to; a failure becomes a DeviceError."""
    try:
        process.stop()
    except Exception as exc:
        raise DeviceError(f"stopping Lava failed: {type(exc).__name__}: {exc}") from None


def run_network(process, steps: int, tag: str) -> None:
    """:func:`run_steps`, then always :func:`stop` (after a failed run stopping often fails too:
    the first error is reported)."""
    try:
        run_steps(process, steps, tag)
    except DeviceError:
        try:
            stop(process)
        except DeviceError:
            pass
        raise
    stop(process)


def _describe(exc: Exception, process) -> str:
    """The error of a failed run, with the exceptions Lava's workers raised."""
    runtime = getattr(process, "runtime", None)
    actors = getattr(getattr(runtime, "_messaging_infrastructure", None), "actors", [])
    worker_errors = [f"{type(actor.exception[0]).__name__}: {actor.exception[0]}" for actor in actors
                     if actor.exception]
    return "; ".join(worker_errors) or f"{type(exc).__name__}: {exc}"


def preload() -> None:
    """Import Lava and netx now (5-6 s, once per process), so replays start warm.

    The replay job runs in a forked child, which inherits whatever the caller has imported.
    """
    from ..lazy_imports import defer_object_detection

    defer_object_detection()  # netx imports SLAYER: leave its torchvision part for first use
    import lava.lib.dl.netx.hdf5  # noqa: F401
    import lava.magma.compiler.compiler  # noqa: F401  (with networkx: 0.3 s a call when left to the job)
    import lava.magma.core.run_configs  # noqa: F401
    import lava.magma.runtime.runtime  # noqa: F401
    import lava.proc.lif.models  # noqa: F401
    import lava.proc.sparse.models  # noqa: F401

    from .lava_procs import io, neurons  # noqa: F401


def choose_lanes(lowered: list[LoweredLayer], samples: int, budget_bytes: int | None = None) -> int:
    """How many samples to replay side by side, from the network's size and free memory.

    Each lane holds a copy of every synapse (several times over: the process Var, the
    compiled model and its working copies) and of every neuron's state. The lanes get at most
    ``budget_bytes`` (default: LANE_MEMORY_BUDGET, or a quarter of the free memory if less).
    """
    import psutil

    if budget_bytes is None:
        budget_bytes = min(LANE_MEMORY_BUDGET, psutil.virtual_memory().available // 4)
    synapses = sum(layer.weight.nnz for layer in lowered if layer.weight is not None)
    neurons = sum(layer.size for layer in lowered)
    per_lane = synapses * BYTES_PER_SYNAPSE + neurons * BYTES_PER_NEURON
    return int(max(1, min(samples, budget_bytes // per_lane)))


def default_timeout(lowered: list[LoweredLayer], batch: Batch) -> float:
    """A generous watchdog timeout (seconds) for ``batch``: ten times the expected run time."""
    synapses = sum(layer.weight.nnz for layer in lowered if layer.weight is not None)
    per_step = STEP_SECONDS + batch.lanes * synapses * SYNAPSE_SECONDS
    builds = batch.windows - 1 if has_delays(lowered) else 0
    return TIMEOUT_FLOOR_SECONDS + 10.0 * (batch.total_steps * per_step + builds * BUILD_SECONDS)
