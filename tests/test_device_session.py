"""Device sessions: many spike sets through one compiled Lava network, each equal to a fresh replay."""
from __future__ import annotations

import time

import h5py
import numpy as np
import pytest

import netx_families as families
from harness.device import DeviceSession, device_session, replay
from harness.errors import DataError, DeviceError, DeviceTimeout
from test_device_watchdog import SHM, _descendants as _living_descendants


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


def test_a_session_grows_its_lanes_for_a_larger_set_unless_they_were_fixed(tmp_path):
    """Lanes chosen for the first set (2) grow for a set of 7 (the job restarts, the old one stops),
    outputs still equal fresh replays; lanes given at open stay, the larger set runs in windows."""
    path = tmp_path / "dense_bias.net"
    _, shape = families.build("dense_bias", path)
    small, large = _sets(shape, (2, 7))
    with device_session(path, "loihi2-fixed") as grown, device_session(path, "loihi2-fixed", lanes=2) as fixed:
        outs = [grown.replay(small), grown.output_counts(large), grown.replay(small)]
        assert grown.lanes == 7 and outs[0].lanes == 2 and outs[2].lanes == 7
        assert fixed.output_counts(large).tolist() == outs[1].tolist() and fixed.lanes == 2
    assert _living_descendants() == []
    _assert_same(outs[0], replay(path, small, "loihi2-fixed"))
    _assert_same(outs[2], replay(path, small, "loihi2-fixed"))
    assert outs[1].tolist() == replay(path, large, "loihi2-fixed").counts.tolist()


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
    with device_session(path, "loihi2-fixed", lanes=2) as dev:
        dev.replay(families.random_spikes(shape, 2, 20))
        with pytest.raises(DataError, match=r"shape \(24, 20\)"):
            dev.replay(families.random_spikes((25,), 2, 20))
        with pytest.raises(DataError, match="one per sample"):
            dev.replay(families.random_spikes(shape, 2, 20), sample_keys=np.arange(3))
        dev.replay(families.random_spikes(shape, 1, 20))  # a refused set leaves the session usable
    with pytest.raises(DeviceError, match="closed"):
        dev.replay(families.random_spikes(shape, 2, 20))
    dev.close()  # closing again is harmless
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


@pytest.mark.slow
def test_replay_sets_writes_what_replay_run_writes_and_skips_up_to_date_files(tmp_path, monkeypatch):
    """The clean split and two attack sets through one session: the same files (arrays and
    identities) as replay_run of each; a second call replays nothing, a missing file only itself."""
    from test_device_replay import _synthetic_attack

    from harness.models import load_checkpoint
    from harness.stages import replay_run, replay_sets
    from harness.store import read_h5
    from harness.train import load_split, train_run

    run = tmp_path / "digits"
    train_run("digits-mlp", run, seed=0, epochs=1, progress=False)
    net = load_checkpoint(run / "model" / "checkpoint.pt")
    data = load_split(net.spec, "test", seed=0, limit=100)
    for flips in (60, 20):
        made, _ = _synthetic_attack(run, net, data, flips=flips)
        with h5py.File(run / "attacks" / f"{made}.h5", "a") as f:  # a field added to attack files since
            f["zero_grad_iterations"] = np.full(60, -1, dtype=np.int64)
        (run / "attacks" / f"{made}.h5").rename(run / "attacks" / f"flips-{flips}.h5")
    ids = ["clean", "flips-60", "flips-20"]

    paths = replay_sets(run, "loihi2-fixed", ids, progress=False)
    assert paths == [run / "device" / "loihi2-fixed" / f"{i}.h5" for i in ids]
    from_sets = [read_h5(p, kind="device") for p in paths]
    for input_id, (arrays, attrs) in zip(ids, from_sets):
        path = replay_run(run, "loihi2-fixed", None if input_id == "clean" else input_id, force=True, progress=False)
        fresh, fresh_attrs = read_h5(path, kind="device")
        assert attrs["identity"] == fresh_attrs["identity"]
        assert sorted(arrays) == sorted(fresh)
        for name in fresh:
            assert np.asarray(arrays[name]).tobytes() == np.asarray(fresh[name]).tobytes(), (input_id, name)

    replayed = []
    real = DeviceSession.replay

    def counting(self, spikes, **kwargs):
        replayed.append(len(spikes))
        return real(self, spikes, **kwargs)

    monkeypatch.setattr(DeviceSession, "replay", counting)
    assert replay_sets(run, "loihi2-fixed", ids, progress=False) == paths
    assert replayed == []  # all up to date: no network built
    paths[1].unlink()
    replay_sets(run, "loihi2-fixed", ids, progress=False)
    assert replayed == [90]  # 30 distinct clean rows + 60 adversarial rows of flips-60
    assert _living_descendants() == []
