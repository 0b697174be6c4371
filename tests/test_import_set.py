"""External adversarial sets: `harness attack --import-set FILE.npz` and AttackRecord.from_arrays."""
import numpy as np
import pytest

from harness.cli import main
from harness.records import AttackRecord
from harness.runs import open_run
from test_attacks import digits_run  # noqa: F401  (the digits model of the attack tests)


@pytest.fixture(scope="module")
def run(digits_run):
    """The digits run of the attack tests (trained once per module)."""
    return digits_run


@pytest.fixture(scope="module")
def split(run):
    test = open_run(run).test(n=10)
    return test.spikes, test.labels


def _flipped(spikes, k=3):
    """``spikes`` with the first ``k`` elements of every row flipped."""
    out = spikes.copy().reshape(len(spikes), -1)
    out[:, :k] ^= 1
    return out.reshape(spikes.shape)


def _cli(argv, capsys):
    code = main(argv)
    return code, capsys.readouterr().err.strip().splitlines()


def test_a_set_of_test_rows_is_judged_against_them(run, split, tmp_path, capsys):
    spikes, labels = split
    np.savez(tmp_path / "set.npz", spikes=_flipped(spikes), indices=np.arange(10), name="mine")
    assert main(["attack", "--run", str(run), "--import-set", str(tmp_path / "set.npz"), "--no-progress"]) == 0
    record = open_run(run).attack("mine")
    assert record.attrs["method"] == "imported" and record.attrs["threat"] == "flips"
    assert np.array_equal(record.clean, spikes) and np.array_equal(record.labels, labels)
    assert np.array_equal(record.l0, np.full(10, 3)) and np.array_equal(record.sample_index, np.arange(10))
    assert np.array_equal(record.success, record.correct_before & (record.pred_adv != labels) & (record.pred_adv >= 0))


def test_a_set_with_labels_only_has_no_l0(run, split, tmp_path):
    spikes, labels = split
    np.savez(tmp_path / "set.npz", spikes=spikes, labels=labels)
    path = open_run(run).attack_path("x").parent  # the name is a digest of the file
    assert main(["attack", "--run", str(run), "--import-set", str(tmp_path / "set.npz")]) == 0
    record = AttackRecord.load(next(path.glob("imported-*.h5")))
    assert (record.l0 == -1).all() and record.correct_before.all() and (record.sample_index == -1).all()


def test_from_arrays_counts_flips_and_success():
    clean = np.zeros((2, 4, 3), np.uint8)
    adv = clean.copy()
    adv[0, 0, 0] = adv[0, 1, 2] = 1
    record = AttackRecord.from_arrays(adv, [1, 2], [0, 2], clean=clean, pred_clean=[1, 2], targets=[-1, 2])
    assert record.l0.tolist() == [2, 0] and record.success.tolist() == [True, True]
    assert record.l0_at_success.tolist() == [2, 0] and record.iterations.tolist() == [0, 0]


@pytest.mark.parametrize("arrays, key", [
    (lambda s, y: {"indices": np.arange(10)}, "spikes"),
    (lambda s, y: {"spikes": s}, "indices"),
    (lambda s, y: {"spikes": s[..., :5], "indices": np.arange(10)}, "spikes"),
    (lambda s, y: {"spikes": s * 2, "indices": np.arange(10)}, "spikes"),
    (lambda s, y: {"spikes": s, "indices": np.arange(10) + 10**6}, "indices"),
    (lambda s, y: {"spikes": s, "indices": np.arange(9)}, "indices"),
    (lambda s, y: {"spikes": s, "labels": y + 10}, "labels"),
    (lambda s, y: {"spikes": s, "labels": y, "name": "../up"}, "name"),
    (lambda s, y: {"spikes": s, "labels": y, "extra": y}, "extra"),
], ids=["no-spikes", "no-indices", "shape", "non-binary", "out-of-range", "rows", "classes", "name", "unknown"])
def test_bad_sets_name_the_file_and_key(run, split, tmp_path, capsys, arrays, key):
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays(*split))
    code, err = _cli(["attack", "--run", str(run), "--import-set", str(path)], capsys)
    assert code == 2 and len(err) == 1 and str(path) in err[0] and repr(key)[1:-1] in err[0], err
    assert not list(open_run(run).attack_path("x").parent.glob("bad*"))


def test_pickled_objects_are_refused(run, tmp_path, capsys):
    path = tmp_path / "obj.npz"
    np.savez(path, spikes=np.array([{"a": 1}], dtype=object), labels=np.zeros(1, np.int64))
    code, err = _cli(["attack", "--run", str(run), "--import-set", str(path)], capsys)
    assert code == 2 and len(err) == 1 and str(path) in err[0] and "pickled" in err[0]


@pytest.mark.slow
def test_an_imported_set_is_replayed_and_reported(run, split, tmp_path, capsys):
    spikes, _ = split
    np.savez(tmp_path / "set.npz", spikes=_flipped(spikes[:4]), indices=np.arange(4), name="ext")
    assert main(["attack", "--run", str(run), "--import-set", str(tmp_path / "set.npz")]) == 0
    assert main(["replay", "--run", str(run), "--profile", "loihi2-fixed", "--all", "--no-progress"]) == 0
    assert main(["report", "--run", str(run)]) == 0
    assert "ext" in capsys.readouterr().out
    assert open_run(run).attack("ext").attrs["method"] == "imported"


def test_an_attack_on_a_locked_run_directory_is_refused(run, split, tmp_path, capsys):
    from harness.store import run_lock

    np.savez(tmp_path / "set.npz", spikes=split[0], indices=np.arange(10), name="locked")
    with run_lock(run, "harness train"):
        code, err = _cli(["attack", "--run", str(run), "--import-set", str(tmp_path / "set.npz")], capsys)
    assert code == 2 and len(err) == 1 and "in use by" in err[0] and "harness train" in err[0]
    assert not open_run(run).attack_path("locked").exists()
