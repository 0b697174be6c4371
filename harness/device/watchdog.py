"""Run Lava work in a supervised child process that can always be stopped, cleanly.

Lava's runtime forks one worker per process model and has no hang detection: an exception
or a dead worker can leave ``run()`` waiting forever (../shared/notes/lava-replay.md). So
every replay runs as a *job* in a child process tree that the caller supervises::

    caller ── keeper (new session, its own process group, child subreaper)
                 └── job (builds and runs the Lava network)
                        └── Lava workers, shared-memory manager, resource tracker

- The job's result (or its error) comes back through a pipe; :class:`~harness.errors.HarnessError`
  subclasses keep their class, any other exception becomes a DeviceError.
- A run that exceeds ``timeout`` seconds raises :class:`~harness.errors.DeviceTimeout`.
- While the job reports the phase ``running`` (around Lava's ``run``), a worker that dies
  (e.g. killed) is noticed within a fraction of a second and raises DeviceError.
- However it ends, the whole process group is killed; the keeper, a child subreaper, reaps
  every process of the tree (orphans would otherwise stay zombies where PID 1 does not reap
  them, as in many containers), and the shared-memory segments the tree had mapped are
  unlinked. Nothing is left behind.

:class:`SupervisedServer` keeps such a tree alive across calls (a device session: one compiled
network answering many replays), with the same rules for every call.
"""
from __future__ import annotations

import ctypes
import multiprocessing
import os
import signal
import sys
import time
import traceback
from multiprocessing.connection import Connection
from typing import Any, Callable

import psutil

from .. import errors
from ..errors import DeviceError, DeviceTimeout, HarnessError

POLL_SECONDS = 0.1
GRACE_SECONDS = 10.0  # how long a finished job may take to exit before it is killed
RUNNING, IDLE = "running", "idle"
_PR_SET_CHILD_SUBREAPER = 36

_job_pipe: Connection | None = None


def report_phase(phase: str) -> None:
    """Tell the supervisor what the job is doing (``running`` around Lava's run, else ``idle``).

    Outside a supervised job this does nothing.
    """
    if _job_pipe is not None:
        _job_pipe.send(("phase", phase))


def report_progress(done: int, total: int) -> None:
    """Tell the supervisor how far the job is (e.g. time steps); callable from Lava workers,
    which inherit the job's pipe (messages this small are written atomically). Outside a
    supervised job this does nothing."""
    if _job_pipe is not None:
        _job_pipe.send(("progress", done, total))


def _become_subreaper() -> None:
    """Make orphaned descendants children of this process (Linux), so it can reap them."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    except (OSError, AttributeError):  # not Linux: orphans go to PID 1 as usual
        pass


def _outcome(job: Callable[..., Any], args: tuple) -> tuple:
    """The message that reports ``job(*args)``: its result, or its error."""
    try:
        return ("ok", job(*args))
    except HarnessError as exc:
        return ("harness-error", type(exc).__name__, str(exc))
    except BaseException as exc:  # a bug: keep the traceback for the report
        return ("error", f"{type(exc).__name__}: {exc}", traceback.format_exc())


def _send(pipe: Connection, message: tuple) -> None:
    try:
        pipe.send(message)
    except Exception as exc:  # e.g. a result that cannot be pickled
        pipe.send(("error", f"the result could not be sent back: {type(exc).__name__}: {exc}", ""))


def _run_job(pipe: Connection, job: Callable[..., Any], args: tuple) -> None:
    """The job process: run ``job``, send its result or error, exit without cleanup handlers."""
    global _job_pipe
    _job_pipe = pipe
    try:
        _send(pipe, _outcome(job, args))
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)


def _keeper(pipe: Connection, job: Callable[..., Any], args: tuple) -> None:
    """Leads a new process group: forks the job, then reaps every process of the tree and exits.

    Plain ``os.fork`` (not multiprocessing.Process): a multiprocessing child has its start
    method fixed, and importing Lava there would fail ("context has already been set").
    """
    try:
        for end in _parent_ends:  # another session's request pipe: its EOF must not wait for us
            end.close()
        os.setsid()
        _become_subreaper()
        if os.fork() == 0:
            _run_job(pipe, job, args)
        pipe.close()
        while True:
            try:
                os.waitpid(-1, 0)
            except ChildProcessError:
                break
            except InterruptedError:
                continue
    finally:
        os._exit(0)


def _group_members(pgid: int) -> list[psutil.Process]:
    members = []
    for proc in psutil.process_iter():
        try:
            if os.getpgid(proc.pid) == pgid:
                members.append(proc)
        except (ProcessLookupError, psutil.Error):
            continue
    return members


def _shared_memory_of(procs: list[psutil.Process]) -> set[str]:
    """Paths under /dev/shm that any of ``procs`` has mapped (Lava's message channels)."""
    paths = set()
    for proc in procs:
        try:
            with open(f"/proc/{proc.pid}/maps") as maps:
                paths.update(line.split(None, 5)[5].strip() for line in maps
                             if "/dev/shm/" in line and len(line.split(None, 5)) == 6)
        except OSError:
            continue
    return {p.replace(" (deleted)", "") for p in paths}


def _dead_worker(members: list[psutil.Process], keeper_pid: int) -> psutil.Process | None:
    for proc in members:
        try:
            if proc.pid != keeper_pid and proc.status() == psutil.STATUS_ZOMBIE:
                return proc
        except psutil.NoSuchProcess:
            continue
    return None


def _reap(pid: int, seconds: float) -> bool:
    """Wait up to ``seconds`` for child ``pid`` to exit and reap it; True when it did."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            done, _ = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            return True
        if done:
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(POLL_SECONDS / 5)


def _kill_tree(pgid: int) -> None:
    """Kill every process of the keeper's group, let the keeper reap them, free shared memory."""
    shm: set[str] = set()
    deadline = time.monotonic() + GRACE_SECONDS
    while time.monotonic() < deadline:
        others = [p for p in _group_members(pgid) if p.pid != pgid]
        alive = [p for p in others if _status(p) not in (psutil.STATUS_ZOMBIE, None)]
        if not alive:
            break
        shm |= _shared_memory_of(alive)
        for proc in alive:
            try:
                proc.send_signal(signal.SIGKILL)
            except psutil.NoSuchProcess:
                pass
        time.sleep(POLL_SECONDS / 5)
    if not _reap(pgid, GRACE_SECONDS):  # the keeper reaps the killed processes, then exits
        try:
            os.killpg(pgid, signal.SIGKILL)
        except ProcessLookupError:  # interrupted before the keeper made its own group
            os.kill(pgid, signal.SIGKILL)
        _reap(pgid, GRACE_SECONDS)
    for path in shm:
        try:
            os.unlink(path)
        except OSError:
            pass


def _status(proc: psutil.Process) -> str | None:
    try:
        return proc.status()
    except psutil.NoSuchProcess:
        return None


def _raise_from(message: tuple, what: str) -> Any:
    kind = message[0]
    if kind == "ok":
        return message[1]
    if kind == "harness-error":
        raise getattr(errors, message[1], DeviceError)(message[2])
    raise DeviceError(f"{what} failed: {message[1]}\n{message[2]}")


def _await(receiver: Connection, keeper: int, timeout: float, what: str,
           on_progress: Callable[[int, int], None] | None) -> Any:
    """Wait for the job's next result (phase and progress reports handled on the way) and return it.

    Raises DeviceTimeout after ``timeout`` seconds, DeviceError when a Lava worker dies during
    the ``running`` phase or the job dies, and the job's own error (see :func:`run_supervised`).
    """
    started = time.monotonic()
    phase = IDLE
    while True:
        remaining = timeout - (time.monotonic() - started)
        if remaining <= 0:
            raise DeviceTimeout(f"{what} did not finish within its {timeout:.0f} s watchdog timeout; "
                                f"its processes were stopped (raise the timeout for larger inputs)")
        if receiver.poll(min(POLL_SECONDS, remaining)):
            try:
                received = receiver.recv()
            except EOFError:
                raise DeviceError(f"{what}: the child process died without a result "
                                  f"(killed, or out of memory?)") from None
            if received[0] == "phase":
                phase = received[1]
            elif received[0] == "progress":
                if on_progress is not None:
                    on_progress(*received[1:])
            else:
                return _raise_from(received, what)
        elif phase == RUNNING:
            dead = _dead_worker(_group_members(keeper), keeper)
            if dead is not None:
                raise DeviceError(f"{what}: a Lava worker process (pid {dead.pid}) died during the run; "
                                  f"the run was stopped")


def _fork_keeper(job: Callable[..., Any], args: tuple) -> tuple[int, Connection, Any]:
    """Fork the keeper of ``job(*args)``; returns (keeper pid, the pipe its messages arrive on, the
    caller's signal mask, to restore inside the ``try`` that stops the tree).

    The child closes the request ends of this caller's servers (:class:`SupervisedServer`), so
    that each server's job sees its own caller go away. Ctrl-C or SIGTERM arriving during fork
    would be raised inside an at-fork hook (logging's lock release), where CPython prints and
    drops the KeyboardInterrupt: the run would then go on to the end. They are held over the fork
    and raised afterwards, where the caller's ``try`` stops the tree.
    """
    receiver, sender = multiprocessing.Pipe(duplex=False)
    sys.stdout.flush()  # the children must not inherit unwritten output
    sys.stderr.flush()
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
    keeper = os.fork()
    if keeper == 0:
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)
        receiver.close()
        _keeper(sender, job, args)
    sender.close()
    return keeper, receiver, mask


def run_supervised(job: Callable[..., Any], *args: Any, timeout: float, what: str = "Lava replay",
                   on_progress: Callable[[int, int], None] | None = None) -> Any:
    """Run ``job(*args)`` in a supervised child process tree and return its result.

    ``job`` and ``args`` reach the child by fork (no pickling); the result comes back pickled.

    Args:
        job: the function to run (it may call :func:`report_phase`).
        timeout: seconds before the run is abandoned.
        what: name of the work, used in error messages.
        on_progress: called with (done, total) for each progress report of the job.
    Raises:
        DeviceTimeout: the job did not finish within ``timeout`` seconds.
        DeviceError: a Lava worker died during the run, the child died, or the job failed.
        HarnessError: the job raised one (same class and message).
    """
    keeper, receiver, mask = _fork_keeper(job, args)
    try:
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)
        return _await(receiver, keeper, timeout, what, on_progress)
    finally:
        receiver.close()
        _kill_tree(keeper)


_parent_ends: set[Connection] = set()  # request pipes of this process's open servers


class SupervisedServer:
    """A supervised child process tree that keeps some state and answers requests in turn.

    ``factory(*args)`` runs once in the job process (e.g. builds a Lava network) and returns a
    *handler*: ``handler(request)`` answers each request of :meth:`call` (requests are pickled
    to the job, answers back), ``handler.close()`` runs when the server is closed, however that
    happens (also when the caller dies: the job sees its request pipe close). The process-tree
    rules of :func:`run_supervised` hold for every call (timeout, dead workers, errors by class),
    and a server whose call failed is stopped at once: its later calls raise DeviceError.

    Args:
        factory: builds the handler inside the job; ``args`` reach it by fork.
        timeout: seconds the factory may take.
        what: name of the work, used in error messages.
    """

    def __init__(self, factory: Callable[..., Any], *args: Any, timeout: float, what: str = "Lava session") -> None:
        self.what, self._failure = what, None
        requests, self._requests = multiprocessing.Pipe(duplex=False)
        _parent_ends.add(self._requests)
        self._keeper, self._receiver = None, None
        try:
            self._keeper, self._receiver, mask = _fork_keeper(_serve, (requests, factory, args))
            signal.pthread_sigmask(signal.SIG_SETMASK, mask)
            requests.close()
            self._guarded(timeout, None)
        except BaseException:
            requests.close()
            self.close()
            raise

    @property
    def closed(self) -> bool:
        return self._keeper is None

    def call(self, request: Any, *, timeout: float, on_progress: Callable[[int, int], None] | None = None) -> Any:
        """The handler's answer to ``request`` (see the class; errors as :func:`run_supervised`)."""
        if self.closed:
            raise DeviceError(f"{self.what} is closed{self._failure or ''}; open a new one")
        self._requests.send(request)
        return self._guarded(timeout, on_progress)

    def _guarded(self, timeout: float, on_progress) -> Any:
        """The next answer; on any failure (or Ctrl-C) the server is stopped before it propagates."""
        try:
            return _await(self._receiver, self._keeper, timeout, self.what, on_progress)
        except BaseException as exc:
            self._failure = f" after an earlier failure ({type(exc).__name__})"
            self.close(graceful=False)
            raise

    def close(self, graceful: bool = True) -> None:
        """Stop the server (the handler's ``close`` first, when ``graceful``); always kills the tree.

        Safe to call more than once; a failure of the handler's ``close`` is raised after the
        tree is gone.
        """
        if self._keeper is None:
            return
        error = None
        try:
            if graceful:
                self._requests.send(None)
                _await(self._receiver, self._keeper, GRACE_SECONDS * 3, self.what, None)
        except (HarnessError, OSError) as exc:
            error = exc
        finally:
            _parent_ends.discard(self._requests)
            self._requests.close()
            if self._receiver is not None:
                self._receiver.close()
            keeper, self._keeper = self._keeper, None
            _kill_tree(keeper)
        if error is not None and not isinstance(error, OSError):
            raise error

    def __enter__(self) -> "SupervisedServer":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close(graceful=exc_info[0] is None)


def _serve(requests: Connection, factory: Callable[..., Any], args: tuple) -> None:
    """The job of a :class:`SupervisedServer`: build the handler, answer requests until None or EOF."""
    message = _outcome(factory, args)
    _send(_job_pipe, ("ok", None) if message[0] == "ok" else message)
    if message[0] != "ok":
        return
    handler = message[1]
    try:
        while True:
            try:
                request = requests.recv()
            except EOFError:  # the caller is gone
                break
            if request is None:
                break
            _send(_job_pipe, _outcome(handler, (request,)))
    finally:
        handler.close()
