"""Hardware profiles, input non-idealities, energy accounting and on-device measurements (no Lava run)."""
from __future__ import annotations

import numpy as np
import pytest

from harness.device.energy import EnergyModel, activity_from_monitors
from harness.stages.measure import attack_measurements, clean_measurements, OfflineOutputs
from harness.device.noise import InputNoise
from harness.device.profiles import available_profiles, load_profile
from harness.errors import ConfigError

VALID = """
name = "test-profile"
[backend]
kind = "lava-sim"
select_tag = "fixed_pt"
[energy]
synaptic_op_j = 1e-12
neuron_update_j = 2e-12
spike_j = 0.0
source = "made up for a test"
"""


def test_shipped_profiles_load_with_cited_energy_figures():
    names = available_profiles()
    assert {"loihi2-fixed", "loihi2-float", "loihi2-noisy"} <= set(names)
    for name in names:
        profile = load_profile(name)
        assert profile.name == name and profile.backend == "lava-sim"
        assert "Davies" in profile.energy.source and profile.energy.synaptic_op_j > 0
    assert load_profile("loihi2-fixed").select_tag == "fixed_pt"
    assert load_profile("loihi2-float").select_tag == "floating_pt"
    assert load_profile("loihi2-noisy").noise.active and not load_profile("loihi2-fixed").noise.active


def test_unknown_profile_lists_the_available_ones():
    with pytest.raises(ConfigError, match="unknown hw_profile 'loihi9'; available: .*loihi2-fixed"):
        load_profile("loihi9")


@pytest.mark.parametrize("change, message", [
    (('select_tag = "fixed_pt"', 'select_tag = "fixed"'), r"\[backend\]: select_tag 'fixed' unknown; available: fixed_pt, floating_pt"),
    (('kind = "lava-sim"', 'kind = "loihi-hw"'), r"kind 'loihi-hw' unknown; available: lava-sim"),
    (("synaptic_op_j = 1e-12", "synaptic_op_j = -1.0"), "synaptic_op_j must be a non-negative number"),
    (('source = "made up for a test"', ""), r"\[energy\]: missing required key\(s\): source"),
    (("spike_j = 0.0", "spike_j = 0.0\nspike_energy = 1"), r"unknown key\(s\) spike_energy"),
    (("", "[noise]\ndrop_probability = 1.5"), r"\[noise\]: drop_probability must be a number in \[0, 1\)"),
    (("", "[noise]\njitter_steps = -1"), "jitter_steps must be a non-negative integer"),
])
def test_invalid_profiles_name_the_file_and_the_key(tmp_path, change, message):
    path = tmp_path / "bad.toml"
    old, new = change
    path.write_text(VALID.replace(old, new) if old else VALID + new)
    with pytest.raises(ConfigError, match=message) as info:
        load_profile(path)
    assert str(path) in str(info.value)


def test_inactive_noise_returns_the_input_unchanged():
    spikes = (np.random.default_rng(0).random((3, 4, 10)) < 0.3).astype(np.uint8)
    assert InputNoise().apply(spikes) is spikes


def test_event_drop_removes_about_the_given_fraction():
    spikes = np.ones((4, 50, 100), dtype=np.uint8)
    noisy = InputNoise(drop_probability=0.2, seed=1).apply(spikes)
    assert noisy.sum() / spikes.sum() == pytest.approx(0.8, abs=0.01)
    assert set(np.unique(noisy)) <= {0, 1}


def test_jitter_moves_each_event_by_at_most_the_given_steps():
    spikes = np.zeros((50, 1, 30), dtype=np.uint8)
    spikes[:, 0, 15] = 1
    noisy = InputNoise(jitter_steps=2, seed=3).apply(spikes)
    times = np.nonzero(noisy[:, 0])[1]
    assert noisy.sum() == 50 and times.min() >= 13 and times.max() <= 17 and len(set(times)) > 1


def test_noise_is_reproducible_and_shared_by_inputs_with_the_same_key():
    rng = np.random.default_rng(0)
    clean = (rng.random((2, 8, 40)) < 0.5).astype(np.uint8)
    adversarial = clean.copy()
    adversarial[:, 0, :] ^= 1  # the perturbation touches channel 0 only
    noise = InputNoise(drop_probability=0.3, jitter_steps=1, seed=7)
    keys = np.array([11, 12])
    a, b = noise.apply(clean, keys), noise.apply(adversarial, keys)
    assert np.array_equal(a, noise.apply(clean, keys))
    assert np.array_equal(a[:, 2:], b[:, 2:])  # jitter moves events in time only, so channels 2.. agree
    assert not np.array_equal(a, noise.apply(clean, keys + 100))


def test_activity_and_energy_follow_their_definitions():
    monitored = np.array([[[10, 40], [5, 15], [2, 0]],
                          [[0, 0], [1, 3], [0, 0]]])  # (N=2, input + 2 layers, [spikes, events])
    activity = activity_from_monitors(monitored, layer_sizes=[4, 3], steps=6)
    assert activity.input_spikes.tolist() == [10, 0]
    assert activity.layer_spikes.tolist() == [[5, 2], [1, 0]]
    assert activity.synops.tolist() == [55, 3]
    assert activity.neuron_updates.tolist() == [42, 42]
    model = EnergyModel(synaptic_op_j=2.0, neuron_update_j=0.5, spike_j=10.0, source="test")
    assert model.estimate(activity.synops, activity.neuron_updates, activity.spikes).tolist() == [
        55 * 2.0 + 42 * 0.5 + 7 * 10.0, 3 * 2.0 + 42 * 0.5 + 1 * 10.0]


def _rasters(classes: list[int], k: int = 3, t: int = 4) -> np.ndarray:
    rasters = np.zeros((len(classes), k, t), dtype=np.uint8)
    for i, c in enumerate(classes):
        if c >= 0:
            rasters[i, c, :2] = 1
    return rasters


def test_clean_measurements_compare_with_the_offline_model():
    offline = OfflineOutputs(rasters=_rasters([0, 1, 2, 1]), predictions=np.array([0, 1, 2, 1]),
                             layer_counts=np.zeros((4, 1)))
    device_rasters = _rasters([0, 1, 2, 2])
    device_rasters[0, 0, 3] = 1  # same prediction, different raster
    device = {"predictions": np.array([0, 1, 2, 2]), "output_rasters": device_rasters}
    m = clean_measurements(device, offline, labels=np.array([0, 1, 1, 1]))
    assert m == {"accuracy": 0.5, "offline_accuracy": 0.75, "agreement": 0.75, "raster_exact": 0.5,
                 "n_samples": 4}


def test_attack_measurements_count_over_rows_the_device_got_right():
    labels = np.array([0, 0, 1, 1, 2])
    attack = {"labels": labels, "targets": np.array([-1, -1, -1, 2, -1]),
              "success": np.array([True, True, False, True, True])}
    device = {"clean/predictions": np.array([0, 0, 1, 1, 1]),  # row 4 wrong on the device when clean
              "predictions": np.array([1, -1, 2, 2, 0]),       # row 1: a tie is no success
              "layer_counts": np.array([[4, 2], [4, 2], [6, 2], [2, 2], [50, 50]]),
              "clean/layer_counts": np.array([[2, 2], [2, 2], [2, 2], [2, 2], [1, 1]]),
              "synops": np.array([10, 10, 10, 10, 99]), "clean/synops": np.array([5, 5, 5, 5, 1]),
              "energy_j": np.array([1.0, 1.0, 1.0, 1.0, 9.0]), "clean/energy_j": np.array([0.5, 0.5, 1.0, 1.0, 1.0])}
    m = attack_measurements(attack, device)
    assert m["n_correct_clean"] == 4 and m["clean_accuracy"] == 0.8
    assert m["success_rate"] == 0.75          # rows 0, 2 (untargeted) and 3 (targeted) of 4
    assert m["n_offline_success"] == 3        # rows 0, 1, 3 among the device-correct rows
    assert m["transfer_rate"] == pytest.approx(2 / 3)  # rows 0 and 3 also fool the device
    assert m["adversarial_accuracy"] == 0.0
    assert m["activity_change"] == pytest.approx(24 / 16)
    assert m["layer_activity_change"] == pytest.approx([16 / 8, 1.0])
    assert m["synops_change"] == 2.0 and m["energy_change"] == pytest.approx(4 / 3)
