"""Device sessions: many spike sets through one compiled Lava network, each equal to a fresh replay."""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import psutil
import pytest

import netx_families as families
from harness.device import DeviceSession, device_session, replay
from harness.errors import DataError, DeviceError, DeviceTimeout

SHM = Path("/dev/shm")


def _living_descendants() -> list[psutil.Process]:
    alive = []
    for proc in psutil.Process().children(recursive=True):
        try:
            if proc.status() != psutil.STATUS_ZOMBIE:
                alive.append(proc)
        except psutil.NoSuchProcess:
            pass
    return alive


def _assert_same(session_out, fresh_out) -> None:
    """Every per-sample array byte-identical (recordings per neuron and per core included)."""
    ours, theirs = session_out.arrays(), fresh_out.arrays()
    assert sorted(ours) == sorted(theirs)
    for name in theirs:
        assert ours[name].dtype == theirs[name].dtype, name
        assert ours[name].tobytes() == theirs[name].tobytes(), name
    assert session_out.layer_names == fresh_out.layer_names


def _sets(shape, sizes, steps=20) -> list[np.ndarray]:
    return [families.random_spikes(shape, n, steps, seed=10 + i) for i, n in enumerate(sizes)]


def test_sets_through_one_session_equal_fresh_replays_with_bias_and_noise(tmp_path):
    """Dense layers with bias, on the noisy profile (seeded noise per sample key), with per-core
    recordings; sets of 10 (3 windows, the last partial), 3 and 7 samples through 4 lanes."""
    path = tmp_path / "dense_bias.net"
    _, shape = families.build("dense_bias", path)
    sets = _sets(shape, (10, 3, 7))
    keys = [np.arange(len(s)) + 100 * i for i, s in enumerate(sets)]
    with device_session(path, "loihi2-noisy", lanes=4) as dev:
        outs = [dev.replay(s, sample_keys=k) for s, k in zip(sets, keys)]
        assert len(_living_descendants()) > 2  # the session's tree is alive between calls
    assert _living_descendants() == []
    for out, s, k in zip(outs, sets, keys):
        fresh = replay(path, s, "loihi2-noisy", sample_keys=k)  # other lanes, one window: lanes do not matter
        assert out.core_spikes is not None and out.rasters.sum() > 0
        _assert_same(out, fresh)
        assert out.lanes == 4


@pytest.mark.slow
def test_conv_network_with_bias_in_a_session_equals_fresh_replays(tmp_path):
    path = tmp_path / "conv_bias.net"
    _, shape = families.build("conv_bias", path, input_layer=True)
    sets = _sets(shape, (5, 6))
    with device_session(path, "loihi2-fixed", lanes=3, steps=20) as dev:
        outs = [dev.replay(s) for s in sets]
    for out, s in zip(outs, sets):
        _assert_same(out, replay(path, s, "loihi2-fixed", lanes=2))


@pytest.mark.slow
def test_network_with_axonal_delays_builds_fresh_windows_in_a_session(tmp_path):
    path = tmp_path / "dense_delay.net"
    _, shape = families.build("dense_delay", path)
    sets = _sets(shape, (5, 2))
    with device_session(path, "loihi2-fixed", lanes=3) as dev:
        outs = [dev.replay(s) for s in sets]
    for out, s in zip(outs, sets):
        assert out.rasters.sum() > 0
        _assert_same(out, replay(path, s, "loihi2-fixed", lanes=5))


def test_session_refuses_other_shapes_and_closed_use(tmp_path):
    path = tmp_path / "dense_bias.net"
    _, shape = families.build("dense_bias", path)
    with pytest.raises(DataError, match="T = 20 steps"):
        with device_session(path, "loihi2-fixed", steps=20) as dev:
            dev.replay(families.random_spikes(shape, 2, 12))
    session = DeviceSession(path, "loihi2-fixed", lanes=2)
    with session as dev:
        dev.replay(families.random_spikes(shape, 2, 20))
        with pytest.raises(DataError, match=r"shape \(24, 20\)"):
            dev.replay(families.random_spikes((25,), 2, 20))
        with pytest.raises(DataError, match="one per sample"):
            dev.replay(families.random_spikes(shape, 2, 20), sample_keys=np.arange(3))
        dev.replay(families.random_spikes(shape, 1, 20))  # a refused set leaves the session usable
    with pytest.raises(DeviceError, match="closed"):
        session.replay(families.random_spikes(shape, 2, 20))
    session.close()  # closing again is harmless
    assert _living_descendants() == []


def test_a_call_past_its_timeout_stops_the_session(tmp_path):
    path = tmp_path / "dense_bias.net"
    _, shape = families.build("dense_bias", path)
    shm_before = set(SHM.glob("*"))
    with device_session(path, "loihi2-fixed", lanes=2) as dev:
        dev.replay(families.random_spikes(shape, 2, 20))
        dev.timeout = 0.05  # far too short for 4,000 windows
        started = time.monotonic()
        with pytest.raises(DeviceTimeout, match="watchdog timeout"):
            dev.replay(families.random_spikes(shape, 8000, 20))
        assert time.monotonic() - started < 30
        assert _living_descendants() == []
        with pytest.raises(DeviceError, match="earlier failure"):
            dev.replay(families.random_spikes(shape, 2, 20))
    leaked = {p for p in set(SHM.glob("*")) - shm_before if p.exists()}
    assert leaked == set()
