"""SIGTERM unwinds like Ctrl-C: one place that says so for the CLI and the library's stages.

Inside :func:`sigterm_as_interrupt`, SIGTERM raises KeyboardInterrupt in the main thread, so
every ``finally`` (stopping Lava, removing a temporary file) runs as it does on Ctrl-C. Outside
the main thread (where Python cannot install handlers) it changes nothing.
"""
from __future__ import annotations

import contextlib
import signal
import threading
from typing import Iterator


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """Turn SIGTERM into KeyboardInterrupt while the block runs; the previous handler is restored."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
