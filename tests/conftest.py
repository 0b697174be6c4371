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
