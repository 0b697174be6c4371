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


def default_sigint() -> None:
    """Popen ``preexec_fn``: Ctrl-C at its default in the child. A test run started in the background
    of a non-interactive shell inherits SIGINT ignored (POSIX), and so would the command under test."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def interrupt_when(cmd: list[str], ready, sig: int, stderr=subprocess.PIPE, timeout: float = 300) -> int:
    """Start ``cmd``, send ``sig`` once ``ready()`` is true, return the exit code."""
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=stderr, preexec_fn=default_sigint)
    try:
        deadline = time.monotonic() + timeout
        while not ready():
            assert proc.poll() is None, "finished before it could be interrupted"
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


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("interrupt") / "digits"
    subprocess.run(_harness("train", "--model", "digits-mlp", "--run", str(run), "--epochs", "3", "--no-progress"),
                   check=True, capture_output=True)
    return run


def _printed(log: Path, text: str):
    """A readiness check: ``text`` has appeared in the file ``log`` (e.g. a progress bar)."""
    return lambda: log.exists() and text in log.read_text(errors="replace")


@pytest.mark.slow
def test_attack_interrupt_then_rerun_equals_uninterrupted(digits_run, tmp_path):
    # RSF alone with a tiny turnover rarely succeeds, so every row runs all its iterations
    args = ["attack", "--run", str(digits_run), "--method", "rsf", "--gamma", "0.002", "--iterations", "100",
            "--n", "120", "--batch-size", "8"]
    log = tmp_path / "err.log"
    with open(log, "w") as err:
        code = interrupt_when(_harness(*args), _printed(log, "attack rsf"), signal.SIGTERM, stderr=err)
    assert code == 130
    attacks = digits_run / "attacks"
    assert not list(attacks.glob("*.h5")) if attacks.exists() else True
    assert no_temp_files(digits_run)
    subprocess.run(_harness(*args, "--no-progress"), check=True, capture_output=True)
    (first,) = attacks.glob("*.h5")
    resumed = first.read_bytes()
    subprocess.run(_harness(*args, "--no-progress", "--force"), check=True, capture_output=True)
    import h5py

    with h5py.File(first) as again, h5py.File(__import__("io").BytesIO(resumed)) as before:
        for name in ("adversarial", "success", "l0", "iterations"):
            assert (again[name][()] == before[name][()]).all(), name


@pytest.mark.slow
def test_replay_interrupt_leaves_no_process_and_rerun_equals_uninterrupted(digits_run, tmp_path):
    import psutil

    from harness.store import read_h5

    args = ["replay", "--run", str(digits_run), "--profile", "loihi2-fixed", "--clean", "--lanes", "1"]  # one lane: long enough to interrupt
    log = tmp_path / "replay.log"
    with open(log, "w") as err:
        code = interrupt_when(_harness(*args), _printed(log, "(1 lanes)"), signal.SIGINT, stderr=err)
    assert code == 130
    out = digits_run / "device" / "loihi2-fixed" / "clean.h5"
    assert not out.exists() and no_temp_files(digits_run)
    deadline = time.monotonic() + 10
    while True:  # Lava's workers are forked: they carry the command line of the interrupted call
        left = [p for p in psutil.process_iter(["cmdline"]) if "replay" in (p.info["cmdline"] or [])
                and str(digits_run) in (p.info["cmdline"] or [])]
        if not left or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert not left, f"processes left behind: {[p.pid for p in left]}"
    subprocess.run(_harness(*args, "--no-progress"), check=True, capture_output=True)
    resumed, _ = read_h5(out, "device")
    subprocess.run(_harness(*args, "--no-progress", "--force"), check=True, capture_output=True)
    again, _ = read_h5(out, "device")
    for name in ("output_rasters", "predictions", "layer_counts"):
        assert (resumed[name] == again[name]).all(), name
