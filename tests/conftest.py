"""Shared fixtures. tests/ has no __init__.py on purpose: lava-dl installs a top-level
package named `tests` that would shadow ours (../shared/notes/lava-replay.md)."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
NMNIST_DIR = Path(os.environ.get("HARNESS_NMNIST", REPO.parent / "shared" / "data" / "nmnist_small"))


@pytest.fixture(scope="session")
def nmnist_dir() -> Path:
    """The real N-MNIST sample (../shared/data/nmnist_small). Missing: fail under CI, else skip."""
    if not (NMNIST_DIR / "test100.txt").exists():
        message = f"N-MNIST data not found at {NMNIST_DIR} (set HARNESS_NMNIST)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return NMNIST_DIR


@pytest.fixture
def interrupt_training(monkeypatch):
    """``interrupt_training(epoch)``: a context in which training is interrupted (KeyboardInterrupt,
    as Ctrl-C) right after the resume state of ``epoch`` is saved; ordinary saving after it."""
    import contextlib

    import harness.train

    save = harness.train._save_torch

    @contextlib.contextmanager
    def interrupted(epoch: int):
        def save_then_interrupt(path, obj):
            save(path, obj)
            if obj["epoch"] == epoch:
                raise KeyboardInterrupt

        monkeypatch.setattr(harness.train, "_save_torch", save_then_interrupt)
        try:
            with pytest.raises(KeyboardInterrupt):
                yield
        finally:
            monkeypatch.setattr(harness.train, "_save_torch", save)

    return interrupted
