"""Property-based tests: readers given random bytes or random shapes end in a valid result or
a clear HarnessError, never a crash, a hang or a partly written file."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness.data import read_events
from harness.data.events import load_events
from harness.errors import HarnessError
from harness.store import read_h5, write_h5

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@SETTINGS
@given(st.binary(max_size=400))
def test_event_reader_on_random_bytes(tmp_path, blob):
    path = tmp_path / "r.bs2"
    path.write_bytes(blob)
    try:
        events = read_events(path)
    except HarnessError as exc:
        assert "r.bs2" in str(exc)
        return
    assert len(events) * 5 == len(blob)
    assert events["x"].max(initial=0) < 34 and events["y"].max(initial=0) < 34
    assert set(np.unique(events["p"])) <= {0, 1}
    assert (events["t"] >= 0).all() and (events["t"] < 2 ** 23).all()


@SETTINGS
@given(st.binary(max_size=600))
def test_h5_reader_on_random_bytes(tmp_path, blob):
    path = tmp_path / "a.h5"
    path.write_bytes(blob)
    with pytest.raises(HarnessError, match="a.h5"):
        read_h5(path, "attack")


@SETTINGS
@given(st.binary(max_size=600), st.sampled_from([".npy", ".npz"]))
def test_event_file_loader_on_random_bytes(tmp_path, blob, suffix):
    path = tmp_path / f"e{suffix}"
    path.write_bytes(blob)
    with pytest.raises(HarnessError, match=f"e{suffix}"):
        load_events(path)


@SETTINGS
@given(st.lists(st.integers(1, 4), min_size=1, max_size=4), st.integers(0, 2 ** 31 - 1))
def test_h5_round_trip_random_shapes(tmp_path, shape, seed):
    arr = np.random.default_rng(seed).integers(0, 2, size=shape, dtype=np.uint8)
    path = tmp_path / "x.h5"
    write_h5(path, {"spikes": arr}, {"params": {"a": 1}}, kind="attack")
    arrays, attrs = read_h5(path, "attack")
    np.testing.assert_array_equal(arrays["spikes"], arr)
    assert attrs["params"] == {"a": 1} and attrs["schema_version"] == 1


def test_write_interrupted_leaves_nothing(tmp_path):
    path = tmp_path / "out.h5"

    class Boom:  # Ctrl-C arrives while the second dataset is being written
        def __array__(self, dtype=None, copy=None):
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        write_h5(path, {"ok": np.zeros(3), "bad": Boom()}, {}, kind="attack")
    assert list(tmp_path.iterdir()) == []


def test_newer_schema_refused(tmp_path):
    import h5py

    path = tmp_path / "new.h5"
    write_h5(path, {"x": np.zeros(2)}, {}, kind="attack")
    with h5py.File(path, "a") as f:
        f.attrs["schema_version"] = 99
    with pytest.raises(HarnessError, match="schema_version 99.*reads up to 1"):
        read_h5(path, "attack")


def test_unwritable_output_directory(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        import os
        if os.access(locked, os.W_OK):  # root ignores permission bits: use a path under a file
            target = tmp_path / "afile"
            target.write_text("")
            bad = target / "sub" / "x.h5"
        else:
            bad = locked / "x.h5"
        with pytest.raises(HarnessError, match="cannot write"):
            write_h5(bad, {"x": np.zeros(1)}, {}, kind="attack")
    finally:
        locked.chmod(0o700)


def test_artifacts_get_the_usual_permissions(tmp_path):
    import os
    import stat

    path = tmp_path / "r.h5"
    write_h5(path, {"x": np.zeros(1)}, {}, kind="attack")
    mask = os.umask(0)
    os.umask(mask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~mask  # readable by scripts of other users
