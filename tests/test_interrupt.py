"""Interruption: a real SIGINT/SIGTERM during a stage leaves finished artifacts valid and
nothing half-written; rerunning the same command resumes and ends identical to an
uninterrupted run."""
from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch


def _harness(*args: str) -> list[str]:
    return [sys.executable, "-m", "harness", *args]


def interrupt_when(cmd: list[str], ready, sig: int, timeout: float = 300) -> int:
    """Start ``cmd``, send ``sig`` once ``ready()`` is true, return the exit code."""
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + timeout
        while not ready():
            assert proc.poll() is None, f"finished before it could be interrupted: {proc.stderr.read()}"
            assert time.monotonic() < deadline, "never became ready"
            time.sleep(0.05)
        proc.send_signal(sig)
        return proc.wait(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()


def no_temp_files(root: Path) -> bool:
    return not [p for p in root.rglob("*") if p.name.endswith(".tmp")]


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_training_interrupt_and_resume(tmp_path, sig):
    run, straight = tmp_path / "run", tmp_path / "straight"
    args = ["train", "--model", "digits-mlp", "--seed", "3", "--epochs", "12", "--no-progress"]
    code = interrupt_when(_harness(*args, "--run", str(run)),
                          lambda: (run / "model" / "train_state.pt").exists(), sig)
    assert code == 130
    assert not (run / "model" / "card.json").exists() and no_temp_files(run)
    state = torch.load(run / "model" / "train_state.pt")
    assert 1 <= state["epoch"] < 12
    subprocess.run(_harness(*args, "--run", str(run)), check=True, capture_output=True)
    subprocess.run(_harness(*args, "--run", str(straight)), check=True, capture_output=True)
    resumed = torch.load(run / "model" / "checkpoint.pt")["state_dict"]
    reference = torch.load(straight / "model" / "checkpoint.pt")["state_dict"]
    assert resumed.keys() == reference.keys()
    for key in reference:
        assert torch.equal(resumed[key], reference[key]), key
