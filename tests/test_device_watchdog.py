"""The watchdog around Lava runs: timeouts, dead workers, errors, and nothing left behind."""
from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import psutil
import pytest

from harness.errors import ConfigError, DeviceError, DeviceTimeout
from harness.device.watchdog import run_supervised

SHM = Path("/dev/shm")


def _descendants() -> list[psutil.Process]:
    """Living (non-zombie) descendants of the test process."""
    alive = []
    for proc in psutil.Process().children(recursive=True):
        try:
            if proc.status() != psutil.STATUS_ZOMBIE:
                alive.append(proc)
        except psutil.NoSuchProcess:
            pass
    return alive


def _zombie_children() -> list[psutil.Process]:
    return [p for p in psutil.Process().children() if p.status() == psutil.STATUS_ZOMBIE]


def _unmapped_new_shm(before: set[str]) -> set[str]:
    """Shared-memory segments created since ``before`` that no living process maps (leaks)."""
    new = {str(p) for p in SHM.glob("*")} - before
    mapped = set()
    for pid in psutil.pids():
        try:
            with open(f"/proc/{pid}/maps") as maps:
                mapped.update(line.split()[-1] for line in maps if "/dev/shm/" in line)
        except OSError:
            continue
    return new - mapped


def _assert_nothing_left(shm_before: set[str]) -> None:
    assert _descendants() == []
    assert _zombie_children() == []
    assert _unmapped_new_shm(shm_before) == set()


def _returns(value):
    return value


def _raises(exc: BaseException):
    raise exc


def _stalled_run():
    from lava_fault_procs.faulty import Stall

    from harness.device.lava_sim import run_network

    run_network(Stall(), 5, "fixed_pt")


def _ticking_run():
    from lava_fault_procs.faulty import Tick

    from harness.device.lava_sim import run_network

    run_network(Tick(seconds=0.02), 100_000, "fixed_pt")


def test_result_and_errors_cross_the_process_boundary():
    assert run_supervised(_returns, {"a": [1, 2]}, timeout=30) == {"a": [1, 2]}
    with pytest.raises(ConfigError, match="bad option"):
        run_supervised(_raises, ConfigError("bad option"), timeout=30)
    with pytest.raises(DeviceError, match="ValueError: broken"):
        run_supervised(_raises, ValueError("broken"), timeout=30)
    assert _descendants() == []


@pytest.mark.slow
def test_a_process_blocking_inside_run_times_out_and_leaves_nothing():
    shm_before = {str(p) for p in SHM.glob("*")}
    started = time.monotonic()
    with pytest.raises(DeviceTimeout, match="did not finish within its 8 s watchdog timeout"):
        run_supervised(_stalled_run, timeout=8, what="stalled test network")
    assert time.monotonic() - started < 8 + 15  # the timeout plus the cleanup grace
    _assert_nothing_left(shm_before)


def _kill_a_worker_when_running(found: dict) -> None:
    """Wait for the Lava workers of the supervised job, then SIGKILL the newest one."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        tree = _descendants()
        job = [p for p in tree if p.ppid() in {q.pid for q in tree if q.ppid() == os.getpid()}]
        workers = [w for j in job for w in j.children()]
        if len(workers) >= 3:  # shared-memory manager, runtime service, the Tick model
            time.sleep(1.0)  # well inside run() by now
            victim = max(workers, key=lambda w: w.create_time())
            found["pid"] = victim.pid
            victim.kill()
            return
        time.sleep(0.1)


@pytest.mark.slow
def test_a_killed_lava_worker_gives_a_clear_error_and_leaves_nothing():
    shm_before = {str(p) for p in SHM.glob("*")}
    found: dict = {}
    killer = threading.Thread(target=_kill_a_worker_when_running, args=(found,))
    killer.start()
    started = time.monotonic()
    try:
        with pytest.raises(DeviceError, match="worker process .* died during the run") as info:
            run_supervised(_ticking_run, timeout=120, what="ticking test network")
    finally:
        killer.join()
    assert not isinstance(info.value, DeviceTimeout)
    assert "pid" in found
    assert time.monotonic() - started < 60
    _assert_nothing_left(shm_before)
