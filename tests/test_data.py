"""Data: N-MNIST decoding (against lava-dl's independent reader), binning, layouts, digits
rate coding, event conversion and the clear errors for bad data."""
from __future__ import annotations

import shutil

import numpy as np
import pytest

from harness.data import SpikeSet, load_dataset, read_events
from harness.data.digits import digit_rates, load_digits_spikes, rate_code
from harness.data.events import dense_to_events, events_to_dense, load_events, make_events, save_events
from harness.data.nmnist import SENSOR_SIZE, list_recordings, load_nmnist
from harness.errors import DataError


def test_nmnist_decodes_like_lava_dl(nmnist_dir):
    from lava.lib.dl.slayer.io import read_2d_spikes

    for name in ("1.bs2", "60001.bs2", "500.bs2"):
        ours = read_events(nmnist_dir / name)
        ref = read_2d_spikes(str(nmnist_dir / name))
        np.testing.assert_array_equal(ours["x"], ref.x)
        np.testing.assert_array_equal(ours["y"], ref.y)
        np.testing.assert_array_equal(ours["p"], ref.c)
        np.testing.assert_allclose(ours["t"] / 1000.0, ref.t)  # lava-dl returns milliseconds


def test_nmnist_labels_and_binning(nmnist_dir):
    data = load_nmnist(nmnist_dir, "test", steps=30, dt_ms=10.0, limit=5)
    listed = [line.split() for line in (nmnist_dir / "test100.txt").read_text().splitlines()
              if line and not line.startswith("#")][:5]
    assert data.spikes.shape == (5, 2, 34, 34, 30) and data.spikes.dtype == np.uint8
    assert data.labels.tolist() == [int(c) for _, c in listed]
    assert list(data.sample_ids) == [i for i, _ in listed]
    events = read_events(nmnist_dir / f"{listed[0][0]}.bs2")
    keep = events["t"] < 300_000
    expected = np.zeros((2, 34, 34, 30), np.uint8)
    expected[events["p"][keep], events["y"][keep], events["x"][keep], events["t"][keep] // 10_000] = 1
    np.testing.assert_array_equal(data.spikes[0], expected)


def test_official_layout(tmp_path, nmnist_dir):
    for split, cls, name in (("Train", 5, "1.bs2"), ("Test", 7, "60001.bs2")):
        (tmp_path / split / str(cls)).mkdir(parents=True)
        shutil.copy(nmnist_dir / name, tmp_path / split / str(cls) / "00001.bin")
    data = load_dataset("nmnist", "test", steps=10, dt_ms=10.0, path=tmp_path)
    assert data.labels.tolist() == [7] and data.spikes.shape == (1, 2, 34, 34, 10)
    ref = load_nmnist(nmnist_dir, "test", steps=10, dt_ms=10.0, limit=1)
    np.testing.assert_array_equal(data.spikes, ref.spikes)


def test_bins_hold_one_and_late_events_drop():
    ev = make_events([0, 0, 1], [0, 0, 2], [1_000, 9_000, 95_000], [1, 1, 0])
    dense = events_to_dense(ev, (4, 4, 2), steps=9, dt_ms=10.0)
    assert dense[1, 0, 0, 0] == 1 and dense.sum() == 1  # two events in one bin -> 1; t=95 ms >= 90 ms dropped


def test_dense_event_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    dense = (rng.random((2, 5, 6, 8)) < 0.2).astype(np.uint8)
    events = dense_to_events(dense, dt_ms=2.0)
    np.testing.assert_array_equal(events_to_dense(events, (6, 5, 2), 8, 2.0), dense)
    save_events(tmp_path / "one.npy", events)
    save_events(tmp_path / "many.npz", [events, events[:3]], labels=[3, 4])
    (one,), none = load_events(tmp_path / "one.npy")
    many, labels = load_events(tmp_path / "many.npz")
    assert none is None and labels.tolist() == [3, 4]
    np.testing.assert_array_equal(one, events)
    np.testing.assert_array_equal(many[1], events[:3])


def test_digits_rate_coding_mean_and_split():
    rates, labels = digit_rates("test")
    assert rates.shape == (360, 1, 8, 8) and len(labels) == 360
    assert np.bincount(labels).min() >= 35  # stratified: 10 classes, ~36 each
    spikes = rate_code(rates, steps=1000, seed=1)  # per-element sd <= 0.016
    np.testing.assert_allclose(spikes.mean(axis=-1), rates, atol=0.1)
    assert abs(spikes.mean() - rates.mean()) < 0.005
    a, b = load_digits_spikes("test", 16, seed=3), load_digits_spikes("test", 16, seed=3)
    np.testing.assert_array_equal(a.spikes, b.spikes)
    assert not np.array_equal(a.spikes, load_digits_spikes("train", 16, seed=3).spikes[:360])


def test_spikeset_rejects_non_binary():
    with pytest.raises(DataError, match="binary"):
        SpikeSet(spikes=np.full((1, 2, 3), 2), labels=[0], dataset="x", encoding="x", dt_ms=1, sensor_size=(1, 1, 1))


# ---- clear errors, each naming the file
def test_missing_directory(tmp_path):
    with pytest.raises(DataError, match="not found"):
        load_nmnist(tmp_path / "nope", "train")


def test_truncated_recording(tmp_path, nmnist_dir):
    bad = tmp_path / "7.bs2"
    bad.write_bytes((nmnist_dir / "1.bs2").read_bytes()[:-2])
    with pytest.raises(DataError, match=r"7\.bs2.*whole number"):
        read_events(bad)


def test_coordinates_outside_sensor(tmp_path):
    bad = tmp_path / "3.bs2"
    bad.write_bytes(bytes([40, 1, 0x80, 0, 10]))
    with pytest.raises(DataError, match=r"3\.bs2.*outside"):
        read_events(bad)


def test_list_names_missing_files(tmp_path, nmnist_dir):
    shutil.copy(nmnist_dir / "1.bs2", tmp_path / "1.bs2")
    (tmp_path / "test5.txt").write_text("#sample #class\n1\t5\n999999\t3\n")
    with pytest.raises(DataError, match=r"test5\.txt.*999999\.bs2"):
        list_recordings(tmp_path, "test")


def test_unknown_dataset_lists_available():
    with pytest.raises(Exception, match="available: digits, nmnist"):
        load_dataset("cifar", "test", 10)


def test_event_array_outside_sensor_names_source():
    ev = make_events([0, 40], [0, 0], [0, 10], [0, 1])
    with pytest.raises(DataError, match="mine.npy.*x values"):
        events_to_dense(ev, SENSOR_SIZE, 5, 1.0, source="mine.npy")
