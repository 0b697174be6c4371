"""The ``lava-sim`` backend: the network as Lava processes under ``Loihi2SimCfg``.

How many samples run at once (../shared/notes/lava-replay.md, "Throughput"):

- lanes: ``B`` copies of the network side by side with block-diagonal sparse synapses (Lava's
  ``Sparse``/``DelaySparse``), so one Lava time step advances ``B`` samples;
- windows: when there are more samples than lanes, each lane replays several samples one
  after another and Lava's ``LIFReset`` clears every layer at the step the new sample's first
  input reaches it (netx's ``reset_interval`` / ``reset_offset``, one step later per layer).

The whole batch is one build, one compile and one ``run``. Neuron parameters come from netx
(:meth:`lava.lib.dl.netx.hdf5.Network.get_neuron_params`), weight scaling from netx
(:func:`lava.lib.dl.netx.utils.optimize_weight_bits`); the arithmetic is Lava's own
fixed-point (``fixed_pt``, bit-exact Loihi) or floating-point (``floating_pt``) models.

Time alignment with SLAYER (``delay_shift=True``): every synapse layer delays by one step on
both sides, so Lava step ``w*W + t + 1`` of a lane is SLAYER's output step ``t`` of the sample
in window ``w`` (window length ``W = T``). The reference is stock netx run one sample at a
time on a fresh network (:mod:`harness.interop.stock_netx`); docs/device.md ("Bias") has the
measurements behind the two rules that make the replay equal to it, bias included:

- the first ``L`` output steps (``L`` synapse layers) of a window are what the network does
  before the sample reaches the output layer. On a fresh network that transient is the same
  for every sample (the input has not arrived; only bias drives it), so every window gets the
  transient of window 0, which is a fresh start. Without bias it is all zeros. Activity counts
  skip those steps.
- a reset clears a neuron but not the currents still travelling in a ``DelaySparse`` synapse,
  and no number of silent steps empties them (bias, or a slow current decay, keeps neurons
  firing between samples). A network with axonal delays therefore runs every window on a
  freshly built network (:func:`run_fresh_windows`): lanes side by side still, one build each.

Everything run by :func:`build_and_run` executes inside the supervised child process of
:mod:`harness.device.watchdog`; nothing there may touch torch (torch calls inside Lava worker
processes can hang).
"""
from __future__ import annotations

import math
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import sparse
from tqdm.auto import tqdm

from ..errors import DeviceError
from .lowering import LoweredLayer, fanout
from .watchdog import IDLE, RUNNING, report_phase, run_supervised

FLOATING_POINT = "floating_pt"
DECAY_UNIT = 4096  # Loihi decays are 12-bit fractions
STATE_SHIFT = 6    # Loihi left-shifts synaptic input and threshold by 6 bits

LANE_MEMORY_BUDGET = 384 * 2**20  # bytes all lanes together may use
BYTES_PER_SYNAPSE = 64            # one synapse's copies across build, compile, worker (measured ~50)
BYTES_PER_NEURON = 256            # estimated: state, bias, messages and monitor buffers per neuron
STEP_SECONDS = 0.01               # fixed cost of one Lava time step (one process per population)
SYNAPSE_SECONDS = 5e-9            # cost of one synapse in one step (measured 2-3e-9 in Lava's Sparse model)
TIMEOUT_FLOOR_SECONDS = 120.0     # build and compile (without the import) fit well within this
BUILD_SECONDS = 5.0               # one more build and compile (a fresh window of a delayed network)


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


def _synapse(layer: LoweredLayer, lanes: int, tag: str):
    """Lava's Sparse (or DelaySparse) process for ``lanes`` copies of ``layer``'s weights."""
    from lava.proc.sparse.process import DelaySparse, Sparse

    weight, bits, exponent = scaled_weights(layer.weight)
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


def build_and_run(lowered: list[LoweredLayer], batch: Batch, source_file: Path, workdir: Path,
                  tag: str, monitors: list[dict] | None = None) -> SimResult:
    """Build the Lava network for ``batch``, run it once, stop it, and read the sinks' files.

    Args:
        lowered: the network's layers (:func:`harness.device.lowering.lower`).
        batch: samples, steps, lanes and gap.
        source_file: the input stream written by :func:`write_source`.
        workdir: directory for the sinks' output files.
        tag: ``fixed_pt`` or ``floating_pt``.
        monitors: per population (input, then each layer), extra ActivityMonitor options
            (:func:`harness.device.recording.monitor_options`), or None.
    """
    from .lava_procs.io import ActivityMonitor, SpikeFileSource, SpikeRecorder

    lanes, window, windows = batch.lanes, batch.window, batch.windows
    n_in = lowered[0].weight.shape[1] if lowered[0].weight is not None else lowered[0].size
    source = SpikeFileSource(path=str(source_file), size=lanes * n_in)
    monitor_files = [workdir / f"activity_{i}.npy" for i in range(len(lowered) + 1)]

    def monitor(port, index: int, fan: np.ndarray, depth: int) -> None:
        extra = monitors[index] if monitors else {}
        sink = ActivityMonitor(path=str(monitor_files[index]), lanes=lanes, fanout=fan, interval=window,
                               windows=windows, first=depth, last=batch.steps, **extra)
        port.connect(sink.a_in)

    port, depth = source.s_out, 0
    for i, layer in enumerate(lowered):
        monitor(port, i, fanout(layer.weight, n_in), depth)
        if layer.weight is not None:
            synapse = _synapse(layer, lanes, tag)
            port.connect(synapse.s_in)
            port, depth = synapse.a_out, depth + 1
        neuron = _neuron(layer, lanes, window, depth, tag)
        port.connect(neuron.a_in)
        port, n_in = neuron.s_out, layer.size
    monitor(port, len(lowered), np.zeros(n_in, dtype=np.int64), depth)
    raster_file = workdir / "output.npy"
    recorder = SpikeRecorder(path=str(raster_file), size=lanes * n_in, steps=batch.total_steps)
    port.connect(recorder.a_in)
    run_network(recorder, batch.total_steps, tag)
    raster = np.load(raster_file).reshape(lanes, n_in, windows, window)[..., :batch.steps].transpose(2, 0, 1, 3)
    raster = raster.reshape(windows * lanes, n_in, batch.steps)[:batch.samples]
    raster[..., :depth] = raster[0, :, :depth]  # window 0 starts fresh; the transient is input-independent
    monitored = [np.load(f).reshape(windows * lanes, -1)[:batch.samples] for f in monitor_files]
    activity = np.stack([m[:, :2] for m in monitored], axis=1)
    return SimResult(rasters=raster, activity=activity, recorded=[m[:, 2:] for m in monitored])


def has_delays(lowered: list[LoweredLayer]) -> bool:
    """Whether any layer has a non-zero axonal delay (then every window needs a fresh network)."""
    return any(layer.delay is not None and layer.delay.max() > 0 for layer in lowered)


def run_fresh_windows(lowered: list[LoweredLayer], batch: Batch, source_files: list[Path], workdir: Path,
                      tag: str, monitors: list[dict] | None = None) -> SimResult:
    """:func:`build_and_run` once per window on a newly built network, results concatenated.

    Args:
        source_files: one input stream per window (:func:`write_source` of that window's samples).
    """
    results = []
    for window, source_file in enumerate(source_files):
        samples = min(batch.lanes, batch.samples - window * batch.lanes)
        window_dir = workdir / f"window_{window}"
        window_dir.mkdir()
        results.append(build_and_run(lowered, Batch(samples, batch.steps, samples), source_file, window_dir, tag,
                                     monitors))
    return SimResult(rasters=np.concatenate([r.rasters for r in results]),
                     activity=np.concatenate([r.activity for r in results]),
                     recorded=[np.concatenate(columns) for columns in zip(*(r.recorded for r in results))])


def run_network(process, steps: int, tag: str) -> None:
    """Run the Lava network ``process`` belongs to for ``steps`` steps under ``Loihi2SimCfg``
    (``select_tag`` = ``tag``), and always stop it; a failure becomes a DeviceError.

    Meant to run inside a supervised job (:func:`harness.device.watchdog.run_supervised`):
    it reports the ``running`` phase, during which a dead worker is detected.
    """
    from lava.magma.core.run_conditions import RunSteps
    from lava.magma.core.run_configs import Loihi2SimCfg

    failure = None
    try:
        report_phase(RUNNING)
        process.run(condition=RunSteps(num_steps=steps), run_cfg=Loihi2SimCfg(select_tag=tag))
    except Exception as exc:
        failure = f"Lava run failed: {_describe(exc, process)}"
    finally:
        report_phase(IDLE)
        try:
            process.stop()  # always: without it the interpreter hangs on exit
        except Exception as exc:  # after a failed run, stopping often fails too: report the first error
            failure = failure or f"stopping Lava failed: {type(exc).__name__}: {exc}"
    if failure:
        raise DeviceError(failure)


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
    import lava.lib.dl.netx.hdf5  # noqa: F401
    import lava.magma.core.run_configs  # noqa: F401
    import lava.magma.runtime.runtime  # noqa: F401
    import lava.proc.lif.models  # noqa: F401
    import lava.proc.sparse.models  # noqa: F401

    from .lava_procs import io  # noqa: F401


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


class _Progress:
    """Feeds a progress bar of samples from a job's step counts, also when its source restarts its
    count per build (one fresh build per window of a delayed network)."""

    def __init__(self, bar, batch: Batch) -> None:
        self.bar, self.batch, self.offset, self.last = bar, batch, 0, 0

    def __call__(self, done: int, total: int) -> None:
        if done < self.last:  # a new build (fresh window) started counting again
            self.offset += total
        self.last = done
        self.bar.update(self.batch.samples_done(self.offset + done) - self.bar.n)


def replay_lava_sim(network_file, spikes: np.ndarray, profile, *, sample_keys=None, lanes: int | None = None,
                    timeout: float | None = None, progress: bool = False):
    """The ``lava-sim`` backend of :func:`harness.device.backend.replay` (same arguments;
    ``spikes`` already checked to be binary (N, C, T) or (N, C, H, W, T))."""
    from ..metrics import predict
    from .output import DeviceOutput
    from .energy import activity_from_monitors
    from .lowering import input_order, lower, output_order
    from .netx_reader import check_input, read_network
    from .recording import decode, monitor_options

    network = read_network(network_file, spikes.shape[1:-1])
    check_input(network, spikes.shape)
    mapping, mapping_error = _mapping(network, profile)
    replayed = profile.noise.apply(spikes, sample_keys)
    lowered = lower(network)
    samples, steps = len(spikes), spikes.shape[-1]
    batch = Batch(samples, steps, min(lanes, samples) if lanes else choose_lanes(lowered, samples))
    preload()
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="harness-replay-") as tmp, \
            tqdm(total=samples, unit="sample", disable=not progress,
                 desc=f"replay on {profile.name} ({batch.lanes} lanes)") as bar:
        workdir = Path(tmp)
        flat, order = replayed.reshape(samples, -1, steps), input_order(network)
        if has_delays(lowered):
            job, source = run_fresh_windows, [workdir / f"input_{w}.npy" for w in range(batch.windows)]
            for w, path in enumerate(source):
                chunk = flat[w * batch.lanes:(w + 1) * batch.lanes]
                write_source(chunk, order, Batch(len(chunk), steps, len(chunk)), path)
        else:
            job, source = build_and_run, workdir / "input.npy"
            write_source(flat, order, batch, source)
        result = run_supervised(job, lowered, batch, source, workdir, profile.select_tag,
                                monitor_options(network, mapping), timeout=timeout or default_timeout(lowered, batch),
                                what="Lava replay", on_progress=_Progress(bar, batch))
    wall = time.perf_counter() - started
    rasters = result.rasters[:, output_order(network)]
    counts = rasters.sum(axis=-1, dtype=np.int64)
    activity = activity_from_monitors(result.activity, [layer.size for layer in lowered], steps)
    recorded = decode(network, mapping, result.recorded, steps)
    return DeviceOutput(rasters=rasters, counts=counts, predictions=predict(counts),
                        layer_counts=activity.layer_spikes, input_spikes=activity.input_spikes,
                        synops=activity.synops, neuron_updates=activity.neuron_updates,
                        energy_j=profile.energy.estimate(activity.synops, activity.neuron_updates, activity.spikes),
                        layer_names=[layer.layer.name for layer in lowered], wall_seconds=wall,
                        lanes=batch.lanes, profile=profile, neuron_counts=recorded.neuron_counts,
                        core_spikes=recorded.core_spikes, core_synops=recorded.core_synops, mapping=mapping,
                        mapping_error=mapping_error)


def _mapping(network, profile):
    """(mapping, None) on the profile's chip, or (None, why not): a network that does not fit
    the chip still replays in simulation, without per-core records."""
    from ..errors import DeviceError
    from .mapping import map_network

    if profile.chip is None:
        return None, f"profile '{profile.name}' has no [chip] table"
    try:
        return map_network(network, profile.chip), None
    except DeviceError as exc:
        return None, str(exc)
