"""A task server process: runs plan tasks, one at a time, in a fresh Python interpreter.

:class:`TaskProcess` starts ``python -m harness.experiment.task_worker`` (a new interpreter
started by ``subprocess``: not a fork of the caller, not a ``multiprocessing`` child) and hands
it pickled tasks over a pipe. The Ray executor makes it a Ray actor (one per Ray worker), so
that tasks never run inside Ray's multi-threaded worker process: the server is single-threaded
when the device watchdog forks Lava's process tree from it, and it imports torch and Lava once
for all the tasks it runs (docs/scale.md says why).

This module uses the standard library only, so a Ray worker that unpickles the actor class does
not import torch or Lava itself.

Frames on the pipes: an 8-byte big-endian length, then that many bytes of pickle. A request is
``pickle((fn, kwargs, inputs))``; a reply is ``pickle(("ok", TaskResult))``,
``pickle(("harness-error", exception))`` or ``pickle(("error", message, traceback))``.
"""
from __future__ import annotations

import os
import signal
import socket
import struct
import subprocess
import sys
from typing import BinaryIO

_HEADER = struct.Struct(">Q")


def write_frame(stream: BinaryIO, payload: bytes) -> None:
    """Write one frame and flush."""
    stream.write(_HEADER.pack(len(payload)) + payload)
    stream.flush()


def read_frame(stream: BinaryIO) -> bytes | None:
    """Read one frame; None at the end of the stream (the other side closed or died)."""
    header = stream.read(_HEADER.size)
    if len(header) < _HEADER.size:
        return None
    (size,) = _HEADER.unpack(header)
    payload = stream.read(size)
    return payload if len(payload) == size else None


class TaskProcess:
    """One task server process (``python -m harness.experiment.task_worker``).

    Args:
        threads: torch threads of the server (and OMP/MKL threads).
        python_path: a folder put first on the server's PYTHONPATH (the one holding the
            ``harness`` package the caller runs, so both run the same code).
    """

    def __init__(self, threads: int = 1, python_path: str | None = None):
        env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
        if python_path:
            env["PYTHONPATH"] = os.pathsep.join(p for p in (python_path, env.get("PYTHONPATH")) if p)
        # A session of its own: a Ctrl-C at the terminal reaches the driver, which stops the
        # server with SIGTERM (the server then stops its Lava tree itself); if this process
        # dies, the server notices (its parent changes) and stops the same way.
        self._proc = subprocess.Popen([sys.executable, "-m", "harness.experiment.task_worker", "--threads",
                                       str(threads)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env,
                                      start_new_session=True)

    def where(self) -> tuple[str, int]:
        """(host name, pid) of the server process."""
        return socket.gethostname(), self._proc.pid

    def run(self, request: bytes) -> bytes:
        """Send one pickled task, return the pickled reply (see the module docstring)."""
        write_frame(self._proc.stdin, request)
        reply = read_frame(self._proc.stdout)
        if reply is None:
            code = self._proc.wait()
            raise RuntimeError(f"the task server process (pid {self._proc.pid}) ended without a reply "
                               f"(exit status {code}: killed, or out of memory?)")
        return reply

    def close(self, timeout: float = 30.0) -> int:
        """Stop the server: end of input, then SIGTERM, then SIGKILL; its exit status."""
        if self._proc.poll() is None:
            try:
                self._proc.stdin.close()
                return self._proc.wait(timeout)
            except (OSError, subprocess.TimeoutExpired):
                self._proc.send_signal(signal.SIGTERM)
            try:
                return self._proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self._proc.kill()
        return self._proc.wait()
