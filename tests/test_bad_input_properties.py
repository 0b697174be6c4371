"""Property-based tests: readers given random bytes or random shapes end in a valid result or
a clear HarnessError, never a crash, a hang or a partly written file."""
from __future__ import annotations

import h5py
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


# ------------------------------------------------------------------ netx network files
def _neuron(prefix: str) -> dict[str, np.ndarray]:
    """A CUBA neuron group as lava-dl 0.6.0's export writes it."""
    return {f"{prefix}/neuron/type": np.array(b"CUBA", dtype=object), f"{prefix}/neuron/iDecay": np.int64(1024),
            f"{prefix}/neuron/vDecay": np.int64(128), f"{prefix}/neuron/vThMant": np.int64(80),
            f"{prefix}/neuron/refDelay": np.int64(1), f"{prefix}/neuron/gradedSpike": np.bool_(False)}


def _weights(shape, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(-60, 60, size=shape).astype(np.float32)


#: A valid netx file laid out exactly as lava-dl 0.6.0 exports a SLAYER network (conv,
#: flatten, dense with axonal delays and a bias, dense) on (2, 5, 5) frames: dataset -> value.
NETX_LAYOUT: dict[str, np.ndarray] = {
    "layer/0/type": np.array([b"conv"], dtype="S10"), "layer/0/shape": np.array([2, 3, 3]),
    "layer/0/weight": _weights((2, 2, 3, 3), 0), "layer/0/stride": np.array([1, 1]),
    "layer/0/padding": np.array([0, 0]), "layer/0/dilation": np.array([1, 1]), "layer/0/groups": np.int64(1),
    "layer/0/inChannels": np.int64(2), "layer/0/outChannels": np.int64(2), "layer/0/kernelSize": np.array([3, 3]),
    **_neuron("layer/0"),
    "layer/1/type": np.array([b"flatten"], dtype="S10"), "layer/1/shape": np.array([18]),
    "layer/2/type": np.array([b"dense"], dtype="S10"), "layer/2/shape": np.array([4]),
    "layer/2/weight": _weights((4, 18), 1), "layer/2/delay": np.array([0, 1, 2, 3], dtype=np.float32),
    "layer/2/bias": np.array([3, 0, -2, 1], dtype=np.float32), "layer/2/inFeatures": np.int64(18),
    "layer/2/outFeatures": np.int64(4), **_neuron("layer/2"),
    "layer/3/type": np.array([b"dense"], dtype="S10"), "layer/3/shape": np.array([3]),
    "layer/3/weight": _weights((3, 4), 2), "layer/3/inFeatures": np.int64(4), "layer/3/outFeatures": np.int64(3),
    **_neuron("layer/3"),
}
NETX_ENTRIES = sorted(set(NETX_LAYOUT) | {name.rsplit("/", 1)[0] for name in NETX_LAYOUT} - {"layer"})
MUTATIONS = ("delete", "string", "empty", "group", "nan", "rank-3", "negative", "float")


def _write_netx(path, entry: str | None = None, mutation: str | None = None) -> None:
    """NETX_LAYOUT written with h5py; ``entry`` (a dataset or group) deleted or replaced."""
    with h5py.File(path, "w") as f:
        for name, value in NETX_LAYOUT.items():
            f[name] = value
        if entry is None:
            return
        original = f[entry][()] if isinstance(f[entry], h5py.Dataset) else np.zeros(2)
        del f[entry]
        numeric = np.asarray(original, dtype=np.float64) if np.asarray(original).dtype.kind in "biuf" else np.zeros(2)
        replacement = {"string": np.array([b"oops"]), "empty": np.zeros(0), "nan": np.full(numeric.shape, np.nan),
                       "rank-3": np.ones((2, 3, 5)), "negative": -1 - np.abs(numeric), "float": numeric + 0.5}
        if mutation == "group":
            f.create_group(entry)
        elif mutation != "delete":
            f[entry] = replacement[mutation]


def test_the_valid_netx_layout_reads(tmp_path):
    from harness.device.netx_reader import read_network

    path = tmp_path / "ok.net"
    _write_netx(path)
    network = read_network(path, (2, 5, 5))
    assert [layer.shape for layer in network.layers] == [(2, 3, 3), (4,), (3,)]
    assert network.layers[1].delay.tolist() == [0, 1, 2, 3] and network.layers[1].bias.tolist() == [3, 0, -2, 1]


@SETTINGS
@given(st.sampled_from(NETX_ENTRIES), st.sampled_from(MUTATIONS))
def test_netx_reader_on_damaged_networks(tmp_path, entry, mutation):
    """Deleting or mistyping any dataset or group of a valid network gives a one-line
    HarnessError naming the file (or, for an optional entry, a valid network), nothing else.
    The damaged file is refused by h5py checks alone; only a file that passes them reaches
    netx's NetDict (the one Lava import)."""
    from harness.device.netx_reader import NetworkDescription, read_network

    path = tmp_path / "damaged.net"
    _write_netx(path, entry, mutation)
    try:
        network = read_network(path, (2, 5, 5))
    except HarnessError as exc:
        assert str(exc).startswith(str(path)) and "\n" not in str(exc)
        return
    assert isinstance(network, NetworkDescription) and network.n_outputs >= 1
