"""Device sessions: one compiled Lava network that replays many spike sets in turn.

::

    with harness.device.device_session("runs/digits/model/network.net", "loihi2-fixed") as dev:
        clean = dev.replay(spikes)              # builds, compiles and starts the network
        adversarial = dev.replay(other_spikes)  # the same network, reset between the sets

A session holds one Lava network per (network file, profile, lane layout) in one supervised
child process tree (:class:`harness.device.watchdog.SupervisedServer`: a timeout per call,
DeviceTimeout, dead-worker detection, stopped once and always, nothing left behind). Every
:meth:`DeviceSession.replay` equals a fresh :func:`harness.device.backend.replay` of the same set
(the same DeviceOutput arrays, byte for byte): the sets run as the next windows of the same run,
every layer reset when a set's samples reach it, exactly as between the windows of one call; a
network with axonal delays builds a fresh network per window, as a single call does (the session
then keeps only its process, the loaded compiler, the lowered layers and netx's weight scaling).

The network is built on the first :meth:`~DeviceSession.replay` (it needs the input's shape and
T); every later set must have the same per-sample shape. The one-call backend,
:func:`replay_lava_sim`, is a session of one set. docs/device.md ("Device session").
"""
from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from tqdm.auto import tqdm

from ..errors import DataError, DeviceError
from ..data import check_binary
from .lava_sim import (ACTIVE, FRESH, SAMPLE_MODES, SYNAPSES, TIMEOUT_FLOOR_SECONDS, Batch, LavaNetwork, choose_lanes,
                       default_timeout, preload, write_source)
from .input_filter import charged, front_end
from .output import DeviceOutput
from .watchdog import SupervisedServer

if TYPE_CHECKING:  # type-only: profiles -> registry -> session must not loop back
    from .profiles import Profile

LAVA_SIM = "lava-sim"


class DeviceSession:
    """A Lava network kept compiled and running across replays (see the module docstring).

    Args:
        network_file: netx HDF5 network.
        profile: the Profile (its backend must be ``lava-sim``); :func:`harness.device.device_session`
            also takes a name or a path.
        lanes: samples side by side, fixed (default: from the network size and free memory, for
            sets of ``expected_samples``, or of the first set's size, and grown for a later set
            with more samples than lanes: :meth:`_fit_lanes`).
        steps: T of every set (default: the first set's); a set of another T is refused.
        timeout: watchdog seconds per call (default: from the amount of work of each call).
        expected_samples: the size of the largest set to come (sets the default lanes).
        sample_mode: ``"fresh"`` (each sample as on a freshly loaded network, netx's defaults)
            or ``"interval"`` (netx's ``reset_interval = T``); :func:`harness.device.backend.replay`.
        synapse: ``"active"`` (default) or ``"stock"``, the Sparse synapses' Lava models
            (:func:`harness.device.lava_sim.run_config`; same results, stock is slower).
    """

    def __init__(self, network_file: str | Path, profile: "Profile", *, lanes: int | None = None,
                 steps: int | None = None, timeout: float | None = None,
                 expected_samples: int | None = None, sample_mode: str = FRESH, synapse: str = ACTIVE) -> None:
        self.network_file, self.profile, self.synapse = Path(network_file), profile, synapse
        self.sample_mode = check_sample_mode(sample_mode)
        if synapse not in SYNAPSES:
            raise DataError(f"synapse must be one of {', '.join(SYNAPSES)}, got {synapse!r}")
        if self.profile.backend != LAVA_SIM:
            raise DeviceError(f"profile '{self.profile.name}': a device session needs the {LAVA_SIM} backend, "
                              f"not '{self.profile.backend}'")
        if lanes is not None and lanes < 1:
            raise DataError(f"lanes must be >= 1, got {lanes}")
        self.lanes, self.steps, self.timeout, self.expected_samples = lanes, steps, timeout, expected_samples
        self._fixed_lanes = lanes is not None
        self.sample_shape: tuple[int, ...] | None = None
        self._server: SupervisedServer | None = None
        self._tmp: Path | None = None
        self._sets = 0
        self._closed = False

    # ------------------------------------------------------------------ lifecycle
    def _start(self, spikes: np.ndarray) -> None:
        """Read and lower the network for ``spikes``' shape, and start the job that builds it."""
        from .lowering import input_order, lower, output_order
        from .netx_reader import check_input, read_network

        self.network = read_network(self.network_file, spikes.shape[1:-1])
        check_input(self.network, spikes.shape)
        self.mapping, self.mapping_error = _mapping(self.network, self.profile)
        self.lowered = lower(self.network)
        self.steps = self.steps or spikes.shape[-1]
        largest = max(len(spikes), self.expected_samples or 0)
        self.lanes = min(self.lanes, largest) if self.lanes else choose_lanes(self.lowered, largest)
        self.sample_shape = spikes.shape[1:]
        self._input_order, self._output_order = input_order(self.network), output_order(self.network)
        preload()
        self._server = self._serve()

    def _serve(self) -> SupervisedServer:
        """A job holding the network in ``self.lanes`` lanes (built on its first call), in a new folder
        of its own (the job's input and output files are numbered from its first set)."""
        from .recording import monitor_options

        self._tmp, self._sets = Path(tempfile.mkdtemp(prefix="harness-session-")), 0
        return SupervisedServer(LavaNetwork, self.lowered, self.lanes, self.steps, self._tmp,
                                self.profile.select_tag, monitor_options(self.network, self.mapping), self.sample_mode,
                                self.synapse,
                                timeout=self.timeout or TIMEOUT_FLOOR_SECONDS, what="Lava session")

    def _fit_lanes(self, samples: int) -> None:
        """Grow the lanes for a set of more ``samples`` than lanes, unless they were fixed at open:
        the job restarts with as many lanes as :func:`choose_lanes` allows for the set (a new build;
        outputs do not depend on the lanes, so later replays still equal fresh ones)."""
        if self._fixed_lanes or samples <= self.lanes:
            return
        lanes = choose_lanes(self.lowered, samples)
        if lanes > self.lanes:
            self._server.close()
            shutil.rmtree(self._tmp, ignore_errors=True)
            self.lanes = lanes
            self._server = self._serve()

    def close(self) -> None:
        """Stop the network and remove the session's files; safe to call more than once."""
        self._closed = True
        try:
            if self._server is not None:
                self._server.close()
        finally:
            if self._tmp is not None:
                shutil.rmtree(self._tmp, ignore_errors=True)
                self._tmp = None

    def __enter__(self) -> "DeviceSession":
        return self

    def __exit__(self, *exc_info) -> None:
        if exc_info[0] is not None and self._server is not None:
            self._server.close(graceful=False)
        self.close()

    # ------------------------------------------------------------------ replay
    def replay(self, spikes: np.ndarray, *, sample_keys: np.ndarray | None = None,
               progress: bool = False) -> DeviceOutput:
        """Replay binary ``spikes`` on the session's network.

        Args:
            spikes: (N, C, T) or (N, C, H, W, T) binary spikes in SLAYER's layout, the shape of
                the first set's samples.
            sample_keys: (N,) ints selecting each sample's noise field (default: row numbers).
            progress: show a progress bar of samples.
        Returns:
            What :func:`harness.device.backend.replay` returns for the same arguments
            (``wall_seconds``: this call only; the first call includes build and compile).
        Raises:
            DataError: spikes not binary, or not of the session's shape.
            DeviceError: the session is closed or failed (DeviceTimeout after its timeout).
        """
        if self._closed:
            raise DeviceError(f"the device session of {self.network_file} is closed; open a new one")
        spikes = check_spikes(spikes)
        if sample_keys is not None and np.shape(sample_keys) != (len(spikes),):
            raise DataError(f"sample_keys must be ({len(spikes)},), one per sample, got shape {np.shape(sample_keys)}")
        started = time.perf_counter()
        if self._server is None:
            self._check_steps(spikes)
            self._start(spikes)
        elif spikes.shape[1:] != self.sample_shape:
            raise DataError(f"input spikes {spikes.shape}: this session replays samples of shape {self.sample_shape} "
                            f"(network {self.network_file}); open another session for other shapes")
        else:
            self._fit_lanes(len(spikes))
        front = front_end(self.profile, spikes, sample_keys)  # the profile's noise, then its input filter
        result = self._run(front.spikes, progress)
        return charged(self._output(result, time.perf_counter() - started), front)

    # ------------------------------------------------------------------ queries (hardware in the loop)
    def output_counts(self, spikes: np.ndarray, *, sample_keys: np.ndarray | None = None) -> np.ndarray:
        """(N, K) int64 output spike counts of ``spikes`` (what :meth:`replay` returns as
        ``output_counts``, the HDF5 name), for scripts and attacks that query the device."""
        return self.replay(spikes, sample_keys=sample_keys).counts

    counts = output_counts  # the short name

    def margin(self, spikes: np.ndarray, labels, targets=None, *, sample_keys: np.ndarray | None = None) -> np.ndarray:
        """(N,) int64 count margin of ``spikes`` (:func:`harness.metrics.margin_of_counts`): the label's
        count minus the best other class's (<= 0: fooled or tied), or for rows with a target >= 0
        the best non-target count minus the target's (< 0: the target wins)."""
        from ..metrics import margin_of_counts

        return margin_of_counts(self.output_counts(spikes, sample_keys=sample_keys), labels, targets)

    def _check_steps(self, spikes: np.ndarray) -> None:
        if self.steps is not None and spikes.shape[-1] != self.steps:
            raise DataError(f"input spikes {spikes.shape}: this session replays T = {self.steps} steps per sample, "
                            f"got {spikes.shape[-1]}")

    def _run(self, replayed: np.ndarray, progress: bool):
        """Write the set's input stream (as the network receives it), ask the job to replay it,
        return its SimResult."""
        from .lava_procs.io import input_file

        samples = len(replayed)
        batch = Batch(samples, self.steps, self.lanes)
        index, self._sets = self._sets, self._sets + 1
        path = Path(input_file(str(self._tmp), index))
        write_source(replayed.reshape(samples, -1, self.steps), self._input_order, batch, path)
        timeout = self.timeout or default_timeout(self.lowered, batch)
        try:
            with tqdm(total=samples, unit="sample", disable=not progress,
                      desc=f"replay on {self.profile.name} ({self.lanes} lanes)") as bar:
                return self._server.call((index, samples), timeout=timeout, on_progress=_Progress(bar, batch))
        finally:
            path.unlink(missing_ok=True)

    def _output(self, result, wall: float) -> DeviceOutput:
        from ..metrics import predict
        from .energy import activity_from_monitors
        from .recording import decode

        steps = self.steps
        rasters = result.rasters[:, self._output_order]
        counts = rasters.sum(axis=-1, dtype=np.int64)
        activity = activity_from_monitors(result.activity, [layer.size for layer in self.lowered], steps)
        recorded = decode(self.network, self.mapping, result.recorded, steps)
        energy = self.profile.energy.estimate(activity.synops, activity.neuron_updates, activity.spikes)
        return DeviceOutput(rasters=rasters, counts=counts, predictions=predict(counts),
                            layer_counts=activity.layer_spikes, input_spikes=activity.input_spikes,
                            synops=activity.synops, neuron_updates=activity.neuron_updates, energy_j=energy,
                            layer_names=[layer.layer.name for layer in self.lowered], wall_seconds=wall,
                            lanes=self.lanes, profile=self.profile, sample_mode=self.sample_mode, neuron_counts=recorded.neuron_counts,
                            core_spikes=recorded.core_spikes, core_synops=recorded.core_synops,
                            mapping=self.mapping, mapping_error=self.mapping_error)


def replay_lava_sim(network_file, spikes: np.ndarray, profile, *, sample_keys=None, lanes: int | None = None,
                    timeout: float | None = None, progress: bool = False, sample_mode: str = FRESH) -> DeviceOutput:
    """The ``lava-sim`` backend of :func:`harness.device.backend.replay` (same arguments): a
    session of one set (``wall_seconds`` includes build, compile and stop)."""
    started = time.perf_counter()
    with DeviceSession(network_file, profile, lanes=lanes, timeout=timeout, sample_mode=sample_mode) as dev:
        output = dev.replay(spikes, sample_keys=sample_keys, progress=progress)
    output.wall_seconds = time.perf_counter() - started
    return output


class _Progress:
    """Feeds a progress bar of samples from a job's step counts, also when its source restarts its
    count (one fresh build per window of a delayed network)."""

    def __init__(self, bar, batch: Batch) -> None:
        self.bar, self.batch, self.offset, self.last = bar, batch, 0, 0

    def __call__(self, done: int, total: int) -> None:
        if done < self.last:  # a new build (fresh window) started counting again
            self.offset += total
        self.last = done
        self.bar.update(self.batch.samples_done(self.offset + done) - self.bar.n)


def check_sample_mode(sample_mode: str) -> str:
    """``sample_mode`` itself when it is one of SAMPLE_MODES; DataError naming the choices otherwise."""
    if sample_mode not in SAMPLE_MODES:
        raise DataError(f"sample mode must be one of {', '.join(SAMPLE_MODES)}, got {sample_mode!r}")
    return sample_mode


def check_spikes(spikes) -> np.ndarray:
    """Binary (N, C, T) or (N, C, H, W, T) spikes as uint8; DataError naming the shape otherwise."""
    spikes = np.asarray(spikes)
    if spikes.ndim not in (3, 5):
        raise DataError(f"input spikes must be (N, C, T) or (N, C, H, W, T), got shape {spikes.shape}")
    if spikes.shape[0] == 0 or spikes.shape[-1] == 0:
        raise DataError(f"input spikes of shape {spikes.shape} hold no sample or no time step")
    return check_binary(spikes, f"input spikes {spikes.shape}")


def _mapping(network, profile: "Profile"):
    """(mapping, None) on the profile's chip, or (None, why not): a network that does not fit
    the chip still replays in simulation, without per-core records."""
    from .mapping import map_network

    if profile.chip is None:
        return None, f"profile '{profile.name}' has no [chip] table"
    try:
        return map_network(network, profile.chip), None
    except DeviceError as exc:
        return None, str(exc)

