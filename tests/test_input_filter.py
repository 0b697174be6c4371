"""Event filters before the network: the filters against loop references, their profile table, the
device's front end, and the offline network behind the same filter (BPDA)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from harness.attacks.filtered import filtered_input, through_filter
from harness.device.input_filter import InputFilter, charged, denoise, front_end, refractory
from harness.device.output import DeviceOutput
from harness.device.profiles import load_profile
from harness.errors import ConfigError, DataError
from test_device_profiles import VALID

PROFILE = VALID + """
[input_filter]
kind = "refractory"
window = 2
"""


def _refractory_reference(spikes: np.ndarray, window: int) -> np.ndarray:
    """Event by event, as tonic's refractory_period: each element remembers its last spike, kept or not."""
    out = np.zeros_like(spikes)
    for element in np.ndindex(spikes.shape[:-1]):
        last = -np.inf
        for t in range(spikes.shape[-1]):
            if spikes[element + (t,)]:
                out[element + (t,)] = t - last > window
                last = t
    return out


def _denoise_reference(spikes: np.ndarray, window: int) -> np.ndarray:
    """Spike by spike: kept when an 8-neighbour of the same channel spiked at a step t - window .. t."""
    out = np.zeros_like(spikes)
    n, c, height, width, steps = spikes.shape
    for i, ch, y, x, t in zip(*np.nonzero(spikes)):
        for dy in (-1, 0, 1):
            for dx in (-1, 0, 1):
                ny, nx = y + dy, x + dx
                if (dy, dx) != (0, 0) and 0 <= ny < height and 0 <= nx < width \
                        and spikes[i, ch, ny, nx, max(0, t - window):t + 1].any():
                    out[i, ch, y, x, t] = 1
    return out


def _random_spikes(shape, rate, seed) -> np.ndarray:
    return (np.random.default_rng(seed).random(shape) < rate).astype(np.uint8)


def test_refractory_drops_spikes_within_the_window_after_any_spike():
    train = np.zeros((1, 1, 12), np.uint8)
    train[0, 0, [0, 1, 2, 5, 6, 9]] = 1  # a burst 0-2, a pair 5-6, a lone spike at 9
    kept = refractory(train, 2)
    # 1 and 2 fall within 2 steps of a spike (2 after the dropped 1: dropped spikes count, as in tonic);
    # 5 comes 3 steps after 2; 6 one after 5; 9 three after 6
    assert np.flatnonzero(kept[0, 0]).tolist() == [0, 5, 9]
    assert np.flatnonzero(refractory(train, 1)[0, 0]).tolist() == [0, 5, 9]
    assert np.flatnonzero(refractory(train, 3)[0, 0]).tolist() == [0]


@pytest.mark.parametrize("window", [1, 2, 4])
@pytest.mark.parametrize("shape", [(3, 2, 5, 4, 9), (4, 7, 11)])
def test_refractory_equals_the_event_by_event_reference(shape, window):
    spikes = _random_spikes(shape, 0.4, seed=window)
    assert np.array_equal(refractory(spikes, window), _refractory_reference(spikes, window))


def test_denoise_keeps_spikes_with_a_recent_neighbour_of_the_same_polarity():
    spikes = np.zeros((1, 2, 5, 5, 6), np.uint8)
    spikes[0, 0, 2, 2, 3] = 1  # supported by its diagonal neighbour two steps before
    spikes[0, 0, 1, 1, 1] = 1  # its neighbour only spikes later: isolated
    spikes[0, 1, 2, 3, 3] = 1  # a neighbour of (2, 2) at the same step, but the other polarity: isolated
    spikes[0, 0, 4, 4, 0] = 1  # isolated (nothing near)
    spikes[0, 0, 4, 3, 0] = 1  # ... unless a neighbour spikes in the same step: both kept
    kept = denoise(spikes, 2)
    assert sorted(map(tuple, np.argwhere(kept)[:, 1:].tolist())) == [(0, 2, 2, 3), (0, 4, 3, 0), (0, 4, 4, 0)]
    assert not denoise(spikes, 1)[0, 0, 2, 2, 3]  # two steps is beyond a window of one


@pytest.mark.parametrize("window", [1, 3])
def test_denoise_equals_the_spike_by_spike_reference(window):
    spikes = _random_spikes((3, 2, 6, 7, 10), 0.08, seed=window)
    kept = denoise(spikes, window)
    assert np.array_equal(kept, _denoise_reference(spikes, window))
    assert 0 < kept.sum() < spikes.sum()


def test_denoise_needs_pixels():
    with pytest.raises(DataError, match=r"denoise filter needs spikes with pixels, \(N, C, H, W, T\)"):
        denoise(np.ones((2, 3, 4), np.uint8), 1)


@pytest.mark.parametrize("change, message", [
    (("window = 2", "window = 0"), r"\[input_filter\]: 'window' must be an integer >= 1, got 0"),
    (("window = 2", "window = -3"), r"\[input_filter\]: 'window' must be an integer >= 1, got -3"),
    (("window = 2", "window = 1.5"), r"\[input_filter\]: 'window' must be an integer >= 1, got 1.5"),
    (('kind = "refractory"', 'kind = "median"'), r"\[input_filter\]: kind 'median' unknown; available: refractory, denoise"),
    (("window = 2", ""), r"\[input_filter\]: missing required key\(s\): window"),
    (("window = 2", "window = 2\nenergy_per_event_j = 1e-12"), r"'energy_per_event_j' must be 0 for a filter off the chip"),
    (("window = 2", "window = 2\non_chip = true\nenergy_per_event_j = -1.0"), r"'energy_per_event_j' must be a finite number >= 0"),
    (("window = 2", "window = 2\non_chip = true\nenergy_per_event_j = 1e-12"), r"'source' must cite"),
])
def test_bad_filter_tables_name_the_file_table_and_key(tmp_path, change, message):
    path = tmp_path / "bad.toml"
    path.write_text(PROFILE.replace(*change))
    with pytest.raises(ConfigError, match=message) as info:
        load_profile(path)
    assert str(path) in str(info.value) and "\n" not in str(info.value)


def test_shipped_filter_profiles_are_loihi2_fixed_with_a_filter():
    base = load_profile("loihi2-fixed").to_dict()
    for kind in ("refractory", "denoise"):
        profile = load_profile(f"loihi2-fixed-{kind}")
        assert profile.input_filter == InputFilter(kind, 1)
        stripped = {k: v for k, v in profile.to_dict().items() if k not in ("name", "description", "input_filter")}
        assert stripped == {k: v for k, v in base.items() if k not in ("name", "description")}


def test_the_front_end_counts_removed_events_and_charges_examined_ones(tmp_path):
    path = tmp_path / "on-chip.toml"
    path.write_text(PROFILE.replace("window = 2", 'window = 2\non_chip = true\nenergy_per_event_j = 3e-12\n'
                                    'source = "made up"'))
    profile = load_profile(path)
    spikes = _random_spikes((4, 2, 5, 5, 8), 0.5, seed=0)
    front = front_end(profile, spikes)
    assert np.array_equal(front.spikes, refractory(spikes, 2))
    assert front.examined.tolist() == spikes.reshape(4, -1).sum(1).tolist()
    assert front.removed.tolist() == (spikes.reshape(4, -1).sum(1) - front.spikes.reshape(4, -1).sum(1)).tolist()
    assert np.allclose(profile.input_filter.energy(front.examined), 3e-12 * front.examined)
    assert front_end(load_profile("loihi2-fixed"), spikes).removed is None
    output = DeviceOutput(rasters=np.zeros((4, 2, 8), np.uint8), counts=np.zeros((4, 2), np.int64),
                          predictions=np.full(4, -1), layer_counts=np.zeros((4, 1), np.int64),
                          input_spikes=front.spikes.reshape(4, -1).sum(1), synops=np.zeros(4, np.int64),
                          neuron_updates=np.zeros(4, np.int64), energy_j=np.full(4, 1e-9), layer_names=["l"],
                          wall_seconds=0.0, lanes=1, profile=profile, sample_mode="fresh")
    out = charged(output, front)
    assert np.array_equal(out.arrays()["input_events_removed"], front.removed)
    assert np.allclose(out.energy_j, 1e-9 + 3e-12 * front.examined)


def test_bpda_filters_forward_and_passes_the_gradient_straight_through():
    spikes = _random_spikes((2, 2, 4, 4, 6), 0.5, seed=1)
    x = torch.as_tensor(spikes, dtype=torch.float32).requires_grad_()
    weight = torch.randn(x.shape, generator=torch.Generator().manual_seed(0))
    out = filtered_input(x, InputFilter("denoise", 1))
    assert np.array_equal(out.detach().numpy().astype(np.uint8), denoise(spikes, 1))
    (out * weight).sum().backward()
    assert torch.equal(x.grad, weight)


def test_through_filter_puts_the_filter_before_the_first_layer_and_restores_the_network():
    from harness.models import build_network, load_spec

    net = build_network(load_spec("digits-mlp"), seed=0).eval()
    spikes = torch.as_tensor(_random_spikes((3, 1, 8, 8, 16), 0.5, seed=2), dtype=torch.float32)
    flt = InputFilter("refractory", 3)
    with torch.no_grad():
        with through_filter(net, flt):
            inside = net(spikes)
        expected = net(torch.as_tensor(refractory(spikes.numpy().astype(np.uint8), 3), dtype=torch.float32))
        assert torch.equal(inside, expected)
        assert net.front is None and torch.equal(net(spikes), net(spikes))


# ------------------------------------------------------------------ end to end on a small trained network
@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    """digits-mlp trained for one epoch, and a loihi2-fixed profile with a refractory filter (R = 1)."""
    from harness.train import train_run

    root = tmp_path_factory.mktemp("filtered")
    train_run("digits-mlp", root / "run", seed=0, epochs=1, progress=False)
    profile = root / "loihi2-fixed-r1.toml"
    profile.write_text(load_profile("loihi2-fixed").path.read_text().replace('name = "loihi2-fixed"',
                                                                               'name = "loihi2-fixed-r1"')
                       + '\n[input_filter]\nkind = "refractory"\nwindow = 1\n')
    return root / "run", profile


@pytest.mark.slow
def test_offline_and_device_agree_through_a_filtered_bit_exact_profile(digits):
    from harness.device.backend import replay
    from harness.metrics import predict
    from harness.runs import open_run
    from harness.train import output_counts

    run_dir, profile = digits
    run = open_run(run_dir)
    spikes = np.ascontiguousarray(run.test(24, None).spikes, dtype=np.uint8)
    out = replay(run.network_file, spikes, profile)
    with through_filter(run.net, load_profile(profile).input_filter):
        offline = predict(output_counts(run.net, spikes))
    assert np.array_equal(out.predictions, offline)
    removed = spikes.reshape(24, -1).sum(1) - refractory(spikes, 1).reshape(24, -1).sum(1)
    assert removed.min() > 0 and np.array_equal(out.input_events_removed, removed)
    assert np.array_equal(out.input_spikes, refractory(spikes, 1).reshape(24, -1).sum(1))
    assert not np.array_equal(predict(output_counts(run.net, spikes)), offline)  # the filter matters here


@pytest.mark.slow
def test_the_adaptive_attack_breaks_at_least_what_the_non_adaptive_one_breaks(digits):
    from harness.evaluation.evaluate import evaluate
    from harness.evaluation.record import format_summary, load_evaluation

    run_dir, profile = digits
    evaluation = load_evaluation(evaluate(run_dir, "quick", [profile], [10, 50], n=16, progress=False))
    name = "loihi2-fixed-r1"
    adaptive, non_adaptive, worst = (evaluation.robust(v) for v in (f"{name}:adaptive", f"{name}:non-adaptive", name))
    assert (adaptive.sum(0) <= non_adaptive.sum(0)).all() and adaptive.sum() < non_adaptive.sum()
    assert np.array_equal(worst, adaptive & non_adaptive) and not evaluation.errors
    comparison = evaluation.attrs["adaptive"][name]
    assert comparison["stronger"] == "adaptive"
    assert f"{name}: its verdict is the worst case" in format_summary(evaluation)


@pytest.mark.slow
def test_attack_through_a_profile_filter_has_its_own_id_and_non_adaptive_is_the_bare_attack(digits, capsys):
    from harness.cli import main
    from harness.records import AttackRecord

    run_dir, profile = digits
    common = ["attack", "--run", str(run_dir), "--method", "g2s", "--loss", "margin", "--iterations", "3", "--n", "6",
              "--no-progress"]
    assert main(common + ["--profile", str(profile)]) == 0
    assert main(common + ["--profile", str(profile), "--non-adaptive"]) == 0
    files = sorted(p.name for p in (run_dir / "attacks").glob("g2s_*.h5"))
    assert files == ["g2s_u_k3_g0.05_e1_mg_n6_s0.h5", "g2s_u_k3_g0.05_e1_mg_n6_s0_frefractory1.h5"]
    params = AttackRecord.load(run_dir / "attacks" / files[1]).attrs["params"]
    assert params["input_filter"]["kind"] == "refractory" and params["input_filter"]["window"] == 1
    capsys.readouterr()
    assert main(common + ["--non-adaptive"]) == 2
    assert capsys.readouterr().err.strip().endswith("--non-adaptive needs --profile: the profile whose filter the "
                                                    "attack ignores (its replay on that profile applies the filter)")
