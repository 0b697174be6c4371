"""A local Ray study listens on the loopback interface only, and SIGTERM stops it with exit 130
(issue 20). Slow: it starts a local Ray and two task servers."""
from __future__ import annotations

import ipaddress
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

pytest.importorskip("ray")

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parent.parent

STUDY = """
name = "loopback"
profiles = ["loihi2-fixed"]
runs = [{ id = "d", model = "digits-mlp", epochs = 1 }]
attacks = [{ label = "G2S+RSF", method = "g2s-rsf", n = 10, iterations = 3 }]
"""

def _listening(pid: int) -> set[tuple[str, str, int]]:
    """(process name, address, port) of every listening TCP socket and unconnected UDP socket of
    process ``pid`` and its descendants (GCS, raylet, agents, workers, task servers)."""
    found = set()
    try:
        procs = [psutil.Process(pid), *psutil.Process(pid).children(recursive=True)]
    except psutil.NoSuchProcess:
        return found
    for proc in procs:
        try:
            for conn in proc.net_connections(kind="inet"):
                if conn.status == psutil.CONN_LISTEN or (conn.type == 2 and not conn.raddr):  # 2: SOCK_DGRAM
                    found.add((proc.name(), conn.laddr.ip, conn.laddr.port))
        except psutil.Error:
            continue
    return found


def _loopback(address: str) -> bool:
    ip = ipaddress.ip_address(address)
    return ip.is_loopback or (ip.version == 6 and ip.ipv4_mapped is not None and ip.ipv4_mapped.is_loopback)


def test_a_local_ray_study_listens_on_loopback_only_and_sigterm_exits_130(tmp_path):
    study = tmp_path / "loopback.toml"
    study.write_text(STUDY)
    cmd = [sys.executable, "-m", "harness", "run", str(study), "--run", str(tmp_path / "R"), "--executor", "ray",
           "--workers", "2", "--no-progress"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO,
                            start_new_session=True)
    sockets: set[tuple[str, str, int]] = set()
    try:
        deadline = time.monotonic() + 300
        while not any((tmp_path / "R").rglob("model/card.json")):  # Ray, its servers and a task all run
            assert proc.poll() is None, f"finished early: {proc.communicate()}"
            assert time.monotonic() < deadline, "no model was trained"
            sockets |= _listening(proc.pid)
            time.sleep(0.2)
        sockets |= _listening(proc.pid)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert any(name.startswith(("gcs_server", "raylet")) for name, _, _ in sockets), sockets  # Ray was seen
    assert {s for s in sockets if not _loopback(s[1])} == set()
    assert proc.returncode == 130, err[-3000:]
