"""The task server (``python -m harness.experiment.task_worker``): runs the pickled tasks it reads.

Started by :class:`~harness.experiment.task_process.TaskProcess`. It reads frames from stdin
and writes replies to the file descriptor that was stdout (stdout itself is pointed at stderr,
so that whatever a task prints cannot corrupt a reply). It runs one task at a time, in its main
thread, with ``--threads`` torch threads.

SIGTERM and SIGINT raise KeyboardInterrupt (:func:`harness.signals.sigterm_as_interrupt`), so a
running replay stops its Lava process tree through the watchdog's ``finally`` before the server
exits with status 130. When its parent (the Ray worker) dies, the server sends itself SIGTERM.
"""
from __future__ import annotations

import argparse
import os
import pickle
import signal
import sys
import threading
import time
import warnings

from .task_process import read_frame, write_frame

PARENT_POLL_SECONDS = 0.5


def _watch_parent(parent: int) -> None:
    """SIGTERM to this process once its parent is gone (it is then re-parented)."""
    while os.getppid() == parent:
        time.sleep(PARENT_POLL_SECONDS)
    os.kill(os.getpid(), signal.SIGTERM)


def reply_for(request: bytes) -> bytes:
    """Run one pickled task; its pickled reply (see :mod:`.task_process`)."""
    from ..errors import HarnessError
    from .executor import failure_message

    try:
        fn, kwargs, inputs = pickle.loads(request)
        return pickle.dumps(("ok", fn(**kwargs, inputs=inputs)))
    except HarnessError as exc:
        try:
            return pickle.dumps(("harness-error", exc))
        except Exception:  # noqa: BLE001 - an exception that cannot be pickled: its message
            return pickle.dumps(("error", str(exc), ""))
    except Exception as exc:  # noqa: BLE001 - a bug: message and traceback go back to the driver
        return pickle.dumps(("error", *failure_message(exc)))


def serve(threads: int) -> int:
    """Answer requests until the end of stdin; 0, or 130 when interrupted."""
    import torch

    from ..signals import sigterm_as_interrupt

    torch.set_num_threads(threads)
    replies = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    requests = sys.stdin.buffer
    threading.Thread(target=_watch_parent, args=(os.getppid(),), daemon=True).start()
    try:
        with sigterm_as_interrupt():
            while (request := read_frame(requests)) is not None:
                write_frame(replies, reply_for(request))
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # the caller went away while we answered
        return 1
    return 0


def main() -> None:
    parser = argparse.ArgumentParser(description="Task server of the Ray executor (started by TaskProcess).")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    args = parser.parse_args()
    warnings.filterwarnings("ignore", message=".*weight_norm is deprecated.*")
    sys.exit(serve(args.threads))


if __name__ == "__main__":
    main()
