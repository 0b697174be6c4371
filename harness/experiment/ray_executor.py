"""Running a plan on Ray: independent tasks in parallel, one task server per Ray worker.

``harness run EXP --executor ray [--address auto|HOST:PORT] [--workers N]``. The layout
(docs/scale.md says why)::

    driver (harness run): PlanState, ray.wait loop
      └─ Ray actor TaskProcess x N  (num_cpus=1; standard library only, no torch or Lava)
           └─ task server: python -m harness.experiment.task_worker  (a fresh interpreter,
                one task at a time, torch threads 1; imports torch and Lava once)
                └─ device watchdog keeper -> Lava job -> Lava's forked workers (replays only)

A task is sent once every task it depends on has finished, with their results (the same rule
and the same progress lines as :class:`~harness.experiment.executor.LocalExecutor`); it writes
its artifact atomically into the run directory, which on a cluster must be storage every node
sees at the same path. Finished tasks keep their artifacts (the stage functions' identity
check), so a killed study resumes. Ray is imported when this executor runs, never by
``make demo`` or the local executor.
"""
from __future__ import annotations

import contextlib
import os
import pickle
import signal
import socket
import time
from pathlib import Path
from typing import Any, Iterator

import psutil

from ..errors import ConfigError
from ..signals import sigterm_as_interrupt
from .executor import Echo, PlanState
from .plan import Task
from .task_process import TaskProcess
from .tasks import TaskResult

WAIT_SECONDS = 0.5  # ray.wait polls this often, so Ctrl-C is handled promptly
STOP_SECONDS = 30.0  # how long an interrupted task server may take to stop its Lava tree


def import_ray() -> Any:
    """The ``ray`` module, or a ConfigError that says how to install it."""
    try:
        import ray
    except ImportError:
        raise ConfigError("--executor ray needs Ray: pip install 'ray>=2.9' (or the project's 'ray' extra: "
                          "pip install -e '.[ray]')") from None
    return ray


#: Ray's switch for a node that serves only itself (meant for laptops, read by the driver and every
#: Ray process it starts): off, the node advertises the loopback address and its GCS, raylet, agents
#: and workers bind 127.0.0.1 instead of every interface (checked with Ray 2.60: docs/scale.md).
LOOPBACK_ONLY_VARIABLE = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"


@contextlib.contextmanager
def _loopback_only(ray: Any) -> Iterator[None]:
    """While a local Ray starts: every Ray process on 127.0.0.1, nothing listening on other interfaces.

    ``ray.init(_node_ip_address="127.0.0.1")`` alone is not enough: Ray swaps a loopback address
    for the machine's outward one (``services.resolve_ip_for_localhost``) unless its cluster
    switch is off, and its gRPC servers then listen on all interfaces.
    """
    constants = ray._private.ray_constants
    saved_variable, saved_switch = os.environ.get(LOOPBACK_ONLY_VARIABLE), constants.ENABLE_RAY_CLUSTER
    os.environ[LOOPBACK_ONLY_VARIABLE] = "0"  # inherited by the processes ray.init starts
    constants.ENABLE_RAY_CLUSTER = False  # read by this driver (the module read the variable at import)
    try:
        yield
    finally:
        constants.ENABLE_RAY_CLUSTER = saved_switch
        if saved_variable is None:
            os.environ.pop(LOOPBACK_ONLY_VARIABLE, None)
        else:
            os.environ[LOOPBACK_ONLY_VARIABLE] = saved_variable


def _package_root() -> str:
    """The folder holding the ``harness`` package this process runs (the task servers run it too)."""
    return str(Path(__file__).resolve().parents[2])


class RayExecutor:
    """Tasks on Ray workers, each in a task server process (see the module docstring).

    Args:
        address: a running cluster ("auto", "HOST:PORT"); None starts a local Ray with
            ``workers`` CPUs for this run and stops it afterwards.
        workers: task servers (Ray actors of one CPU each); None: one per CPU of the cluster.
        threads: torch threads of each task server.
    """

    def __init__(self, address: str | None = None, workers: int | None = None, threads: int = 1):
        if workers is not None and workers < 1:
            raise ConfigError(f"--workers must be >= 1, got {workers}")
        self.address, self.workers, self.threads = address, workers, threads

    def run(self, plan: list[Task], echo: Echo) -> dict[str, TaskResult]:
        ray = import_ray()
        state = PlanState(plan)
        started_here = not ray.is_initialized()
        if started_here:
            self._init(ray)
        servers: dict[Any, tuple[str, int]] = {}
        finished = False
        # ray.init puts in a SIGTERM handler of its own (sys.exit, ending in an abort: exit 134); while the
        # plan runs SIGTERM unwinds as Ctrl-C instead, so the CLI exits 130 with the task servers stopped.
        with sigterm_as_interrupt():
            try:
                count = self.workers or max(1, int(ray.cluster_resources().get("CPU", 1)))
                for _ in range(count):
                    self._start_server(ray, servers)
                echo(f"ray: {count} task server(s), {ray.cluster_resources().get('CPU', 0):.0f} CPU(s) in the "
                     f"cluster; {len(plan)} tasks")
                self._schedule(ray, state, servers, echo)
                finished = True
            finally:
                _stop(ray, servers, graceful=finished)
                if started_here:
                    ray.shutdown()
        return state.outcome()

    def _init(self, ray: Any) -> None:
        # Ray workers import TaskProcess from the harness this driver runs (a checkout at the same
        # path on every node), not from whatever harness their interpreter would find first.
        python_path = os.pathsep.join(p for p in (_package_root(), os.environ.get("PYTHONPATH")) if p)
        options: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False, "configure_logging": False,
                                   "runtime_env": {"env_vars": {"PYTHONPATH": python_path}}}
        try:
            if self.address is None:
                with _loopback_only(ray):
                    ray.init(num_cpus=self.workers or os.cpu_count() or 1, _node_ip_address="127.0.0.1", **options)
            else:
                ray.init(address=self.address, **options)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            raise ConfigError(f"--address {self.address}: cannot connect to a Ray cluster: {exc}") from None

    def _start_server(self, ray: Any, servers: dict[Any, tuple[str, int]]) -> Any:
        """A new task server actor, once its process runs (``servers``: actor -> (host, pid))."""
        actor = ray.remote(num_cpus=1, max_restarts=0)(TaskProcess).remote(self.threads, _package_root())
        servers[actor] = ray.get(actor.where.remote())
        return actor

    def _schedule(self, ray: Any, state: PlanState, servers: dict[Any, tuple[str, int]], echo: Echo) -> None:
        """Send every ready task to an idle task server until the plan is finished."""
        idle, running = list(servers), {}
        while not state.finished:
            for task in state.ready()[:len(idle)]:
                actor = idle.pop(0)
                request = pickle.dumps((task.fn, task.kwargs, state.inputs(task)))
                echo(state.start(task))
                running[actor.run.remote(request)] = (task, actor)
            if not running:
                raise RuntimeError("no task is running and none can start")  # check_order rules this out
            done, _ = ray.wait(list(running), num_returns=1, timeout=WAIT_SECONDS)
            for ref in done:
                task, actor = running.pop(ref)
                line, server_died = _finish(ray, state, task, ref)
                echo(line)
                if server_died:
                    del servers[actor]
                    echo(f"      the task server of {task.id} died; starting another")
                    actor = self._start_server(ray, servers)
                idle.append(actor)


def _finish(ray: Any, state: PlanState, task: Task, ref: Any) -> tuple[str, bool]:
    """Record the reply of ``task``: its line, and whether its task server died."""
    try:
        reply = pickle.loads(ray.get(ref))
    except ray.exceptions.RayError as exc:
        cause = getattr(exc, "cause", None) or exc
        died = isinstance(exc, ray.exceptions.RayActorError) or isinstance(cause, RuntimeError)
        return state.fail(task, f"{type(cause).__name__}: {str(cause).strip().splitlines()[-1]}"), died
    if reply[0] == "ok":
        return state.finish(task, reply[1]), False
    if reply[0] == "harness-error":
        return state.fail(task, str(reply[1])), False
    return state.fail(task, reply[1], reply[2]), False


def _gone(procs: list[psutil.Process], seconds: float) -> list[psutil.Process]:
    """Wait up to ``seconds`` until every process exited (a zombie counts as exited); those left."""
    deadline = time.monotonic() + seconds
    while True:
        alive = []
        for proc in procs:
            try:
                if proc.status() != psutil.STATUS_ZOMBIE:
                    alive.append(proc)
            except psutil.NoSuchProcess:
                pass
        if not alive or time.monotonic() >= deadline:
            return alive
        time.sleep(0.1)


def _stop(ray: Any, servers: dict[Any, tuple[str, int]], graceful: bool) -> None:
    """Stop every task server and its actor; return once the servers on this host are gone.

    After a finished plan the servers are idle and close (end of input). Otherwise (Ctrl-C, an
    error) the servers on this host get SIGTERM, which they turn into KeyboardInterrupt: a
    running replay stops its Lava tree through the device watchdog before the server exits.
    Servers on other hosts notice that their actor was killed and stop the same way.
    """
    if graceful:
        try:
            ray.get([actor.close.remote() for actor in servers], timeout=STOP_SECONDS)
        except (ray.exceptions.RayError, TimeoutError):
            pass
    here, local = socket.gethostname(), []
    for host, pid in servers.values():
        try:
            if host == here:
                local.append(psutil.Process(pid))
        except psutil.NoSuchProcess:
            continue
    for proc in local:
        try:
            proc.send_signal(signal.SIGTERM)
        except psutil.NoSuchProcess:
            pass
    for proc in _gone(local, STOP_SECONDS):
        try:
            proc.kill()
        except psutil.NoSuchProcess:
            pass
    for actor in servers:
        try:
            ray.kill(actor, no_restart=True)
        except (ray.exceptions.RayError, ValueError):
            pass
