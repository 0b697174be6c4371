"""Bad input, round 2 (issue 11): empty splits, broken netx files, corrupt checkpoints,
``--epochs 0``, a file where a directory belongs, a missing profile path, an unwritable run.

Every refusal ends in exit status 2 with one line on stderr naming the file or option, and
leaves the run directory (or output file) as it was.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from harness import cli
from harness.config import resolve_spec
from harness.device.netx_reader import read_network
from harness.errors import ConfigError, DataError, DeviceError, HarnessError
from harness.models import build_network, load_checkpoint, spec_from_dict
from harness.store import RunDir, write_h5

REPO = Path(__file__).resolve().parent.parent

#: A small dense network on N-MNIST frames; exported to netx by the ``netx_file`` fixture.
DENSE_SPEC = {"name": "tiny-dense", "data": {"dataset": "digits", "steps": 4, "input_shape": [1, 8, 8]},
              "neuron": {"threshold": 1.25, "current_decay": 0.25, "voltage_decay": 0.03},
              "layers": [{"type": "dense", "out": 6, "delay": True}, {"type": "dense", "out": 3}]}


def _tree(root: Path) -> dict[str, str] | None:
    """Every file under ``root`` with its sha256 (None when ``root`` does not exist)."""
    if not root.exists():
        return None
    if root.is_file():
        return {"": hashlib.sha256(root.read_bytes()).hexdigest()}
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir"
            for p in sorted(root.rglob("*"))}


def _cli(argv: list[str], capsys) -> tuple[int, str]:
    """Run the CLI in-process; (exit status, stderr)."""
    code = cli.main(argv)
    return code, capsys.readouterr().err


def _cli_subprocess(argv: list[str], cwd: Path) -> subprocess.CompletedProcess:
    """``python -m harness ARGV`` with this checkout first on the path."""
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")
    return subprocess.run([sys.executable, "-m", "harness", *argv], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=300)


def _one_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, f"expected one line on stderr, got:\n{err}"
    assert "Traceback" not in err
    return lines[0]


# ------------------------------------------------------------------ defect 2: empty split
def _nmnist_copy(root: Path, nmnist_dir: Path, test_list: str, n_train: int = 3) -> Path:
    """An N-MNIST folder of ``n_train`` training recordings (symlinks) and the test list ``test_list``."""
    data = root / "d"
    data.mkdir()
    train_lines = (nmnist_dir / "train1K.txt").read_text().splitlines()[:n_train + 1]
    for line in train_lines[1:]:
        sample = line.split()[0]
        (data / f"{sample}.bs2").symlink_to(nmnist_dir / f"{sample}.bs2")
    (data / "train3.txt").write_text("\n".join(train_lines) + "\n")
    (data / "test0.txt").write_text(test_list)
    return data


def test_train_refuses_a_header_only_test_list(tmp_path, nmnist_dir):
    data = _nmnist_copy(tmp_path, nmnist_dir, "#sample #class\n")
    run = tmp_path / "run"
    proc = _cli_subprocess(["train", "--model", "nmnist-mlp", "--data", str(data), "--run", str(run),
                            "--epochs", "1", "--no-progress"], tmp_path)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert _one_line(proc.stderr) == (f"harness train: error: {data / 'test0.txt'}: lists no recording (only a "
                                      f"header, comments or nothing); a split needs at least one "
                                      f"'<sample id> <class>' line")
    assert not run.exists()


def test_train_refuses_a_0_byte_test_list_before_training(tmp_path, nmnist_dir, capsys, monkeypatch):
    data = _nmnist_copy(tmp_path, nmnist_dir, "")
    monkeypatch.setattr("harness.train.train_network", _must_not_run)
    run = tmp_path / "run"
    run.mkdir()
    (run / "keep.txt").write_text("earlier work")
    before = _tree(run)
    code, err = _cli(["train", "--model", "nmnist-mlp", "--data", str(data), "--run", str(run)], capsys)
    assert code == 2 and f"{data / 'test0.txt'}: lists no recording" in _one_line(err)
    assert _tree(run) == before


def test_train_refuses_an_empty_train_list(tmp_path, nmnist_dir, capsys, monkeypatch):
    data = _nmnist_copy(tmp_path, nmnist_dir, "#sample #class\n60001\t7\n")
    (data / "60001.bs2").symlink_to(nmnist_dir / "60001.bs2")
    (data / "train3.txt").write_text("# sample class\n\n")
    monkeypatch.setattr("harness.train.train_network", _must_not_run)
    run = tmp_path / "run"
    code, err = _cli(["train", "--model", "nmnist-mlp", "--data", str(data), "--run", str(run)], capsys)
    assert code == 2 and str(data / "train3.txt") in _one_line(err)
    assert not run.exists()


def test_a_split_of_zero_samples_is_refused_from_any_source(tmp_path):
    from harness.data import load_dataset

    official = tmp_path / "official"
    (official / "Test" / "3").mkdir(parents=True)
    with pytest.raises(DataError, match=r"Test: no <class>/\*\.bin recordings"):
        load_dataset("nmnist", "test", 30, 10.0, path=official)
    with pytest.raises(ConfigError, match="limit must be >= 1, got 0"):
        load_dataset("digits", "test", 16, limit=0)


def _must_not_run(*args, **kwargs):
    raise AssertionError("training started although the input is refused")


# ------------------------------------------------------------------ defect 3: broken netx files
@pytest.fixture(scope="module")
def netx_file(tmp_path_factory) -> Path:
    """A valid netx export of DENSE_SPEC (weights, neurons, axonal delays)."""
    net = build_network(spec_from_dict(DENSE_SPEC, "test"), seed=0)
    with torch.no_grad():
        net(torch.zeros(1, 1, 8, 8, 4))  # SLAYER sets neuron shapes and delays on the first forward pass
    path = tmp_path_factory.mktemp("netx") / "good.net"
    net.export_hdf5(path)
    return path


def _broken_copy(good: Path, where: Path, dataset: str) -> Path:
    """The issue's repro: a copy of ``good`` lacking ``dataset``."""
    path = where / "nw.net"
    shutil.copy(good, path)
    with h5py.File(path, "a") as f:
        del f[dataset]
    return path


def test_reader_names_file_layer_and_missing_weight(tmp_path, netx_file):
    path = _broken_copy(netx_file, tmp_path, "layer/0/weight")
    with pytest.raises(DeviceError, match=rf"{path} layer 0 \('dense'\): .*'weight'.* missing"):
        read_network(path)


@pytest.mark.parametrize("dataset, named", [
    ("layer/1/neuron/vThMant", "'neuron/vThMant'"), ("layer/0/shape", "'shape'"), ("layer/1/type", "'type'"),
    ("layer/0/neuron/type", "'neuron/type'"),
])
def test_reader_names_every_missing_dataset(tmp_path, netx_file, dataset, named):
    path = _broken_copy(netx_file, tmp_path, dataset)
    with pytest.raises(DeviceError, match=rf"{path} layer {dataset.split('/')[1]}\b.*{named}"):
        read_network(path)


@pytest.mark.parametrize("dataset, value, message", [
    ("layer/0/delay", np.array([b"x"] * 6), r"'delay'.*numbers"),
    ("layer/0/weight", np.zeros((5, 7)), r"'weight' of shape \(5, 7\).*6 neurons"),
    ("layer/1/neuron/iDecay", np.arange(3), r"'neuron/iDecay'.*one number"),
    ("layer/0/shape", np.array([0]), r"'shape'.*positive"),
    ("layer/0/weight", np.full((6, 64), np.nan), r"'weight'.*not finite"),
])
def test_reader_names_ill_typed_datasets(tmp_path, netx_file, dataset, value, message):
    path = _broken_copy(netx_file, tmp_path, dataset)
    with h5py.File(path, "a") as f:
        f[dataset] = value
    with pytest.raises(DeviceError, match=rf"{path} layer {dataset.split('/')[1]}\b.*{message}"):
        read_network(path)


def test_replay_cli_refuses_a_network_lacking_its_weight(tmp_path, netx_file, capsys):
    path = _broken_copy(netx_file, tmp_path, "layer/0/weight")
    spikes = tmp_path / "x.npy"
    np.save(spikes, np.zeros((2, 1, 8, 8, 4), np.uint8))
    out = tmp_path / "O.h5"
    code, err = _cli(["replay", "--network", str(path), "--input", str(spikes), "--profile", "loihi2-fixed",
                      "--out", str(out), "--no-progress"], capsys)
    assert code == 2
    line = _one_line(err)
    assert str(path) in line and "layer 0" in line and "'weight'" in line
    assert not out.exists()


def test_replay_run_form_refuses_a_network_lacking_its_weight(tmp_path, netx_file, capsys):
    run = RunDir(tmp_path / "R")
    run.model_dir.mkdir(parents=True)
    shutil.copy(_broken_copy(netx_file, tmp_path, "layer/0/weight"), run.network)
    spec = spec_from_dict(DENSE_SPEC, "test")
    (run.card_file).write_text(json.dumps({"model": spec.name, "spec": spec.to_dict(), "seed": 0, "dataset": {}}))
    before = _tree(run.root)
    code, err = _cli(["replay", "--run", str(run.root), "--profile", "loihi2-fixed", "--no-progress"], capsys)
    assert code == 2
    assert f"{run.network} layer 0 ('dense'): dataset 'weight' is missing" in _one_line(err)
    assert _tree(run.root) == before


def test_half_written_lava_dl_export_is_explained(tmp_path):
    """lava-dl's export_hdf5 before any forward pass dies on the neuron shape (None) after
    writing the first layer's type: the message says how such a file comes about. (The
    harness's own export writes nothing in that case: it builds the file in memory.)"""
    net = build_network(spec_from_dict(DENSE_SPEC, "test"), seed=0)
    path = tmp_path / "half.net"
    with pytest.raises(TypeError):
        net.export_hdf5(path)
    assert not path.exists()
    with h5py.File(path, "w") as f, pytest.raises(TypeError):  # as lava-dl's own scripts write it
        net.blocks[0].export_hdf5(f.create_group("layer").create_group("0"))
    with h5py.File(path) as f:
        assert list(f["layer/0"]) == ["type"]
    with pytest.raises(DeviceError, match=rf"{path} layer 0 \('dense'\): dataset 'shape' is missing; .*export_hdf5.*before any "
                                          r"forward pass"):
        read_network(path)


def test_network_validation_imports_no_lava(tmp_path, netx_file):
    """A broken file is refused by h5py checks alone: Lava (slow to import) is never loaded."""
    path = _broken_copy(netx_file, tmp_path, "layer/1/neuron/vDecay")
    code = ("import sys\nfrom harness.device.netx_reader import read_network\nfrom harness.errors import DeviceError\n"
            f"try:\n    read_network({str(path)!r})\nexcept DeviceError as exc:\n    print(exc)\n"
            "print(sorted(m for m in sys.modules if m.startswith('lava')))\n")
    env = dict(os.environ, PYTHONPATH=str(REPO))
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout
    assert "layer 1 ('dense'): dataset 'neuron/vDecay' is missing" in out and out.strip().endswith("[]")


# ------------------------------------------------------------------ defect 4: corrupt checkpoint
@pytest.fixture()
def untrained_run(tmp_path) -> RunDir:
    """A run directory holding an untrained DENSE_SPEC checkpoint (as train_run writes it)."""
    run = RunDir(tmp_path / "R")
    run.model_dir.mkdir(parents=True)
    net = build_network(spec_from_dict(DENSE_SPEC, "test"), seed=0)
    with torch.no_grad():
        net(torch.zeros(1, 1, 8, 8, 4))
    torch.save({"spec": net.spec.to_dict(), "state_dict": net.state_dict(), "seed": 0}, run.checkpoint)
    return run


def test_attack_refuses_a_garbage_checkpoint(untrained_run, capsys):
    untrained_run.checkpoint.write_bytes(b"garbage\n")  # echo garbage > R/model/checkpoint.pt
    before = _tree(untrained_run.root)
    code, err = _cli(["attack", "--run", str(untrained_run.root), "--n", "2", "--no-progress"], capsys)
    assert code == 2
    assert f"{untrained_run.checkpoint}: not a harness checkpoint" in _one_line(err)
    assert _tree(untrained_run.root) == before


@pytest.mark.parametrize("drop", ["spec", "state_dict"])
def test_checkpoint_lacking_keys_is_named(untrained_run, drop):
    state = torch.load(untrained_run.checkpoint)
    del state[drop]
    torch.save(state, untrained_run.checkpoint)
    with pytest.raises(DataError, match=rf"{untrained_run.checkpoint}: .*lacks '{drop}'"):
        load_checkpoint(untrained_run.checkpoint)


def test_checkpoint_with_foreign_weights_is_named(untrained_run):
    state = torch.load(untrained_run.checkpoint)
    state["state_dict"] = {"blocks.0.synapse.weight": torch.zeros(2, 2)}
    torch.save(state, untrained_run.checkpoint)
    with pytest.raises(DataError, match=rf"{untrained_run.checkpoint}: weights do not fit"):
        load_checkpoint(untrained_run.checkpoint)
    torch.save([1, 2], untrained_run.checkpoint)
    with pytest.raises(DataError, match=rf"{untrained_run.checkpoint}: not a harness checkpoint"):
        load_checkpoint(untrained_run.checkpoint)


# ------------------------------------------------------------------ defect 5: --epochs 0
def test_train_refuses_epochs_0(tmp_path):
    run = tmp_path / "run"
    proc = _cli_subprocess(["train", "--model", "digits-mlp", "--run", str(run), "--epochs", "0",
                            "--no-progress"], tmp_path)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert _one_line(proc.stderr) == "harness train: error: --epochs must be an integer >= 1, got 0"
    assert not run.exists()


def test_train_refuses_negative_epochs_and_a_spec_without_epochs_before_any_work(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr("harness.train.load_split", _must_not_run)
    run = tmp_path / "run"
    code, err = _cli(["train", "--model", "digits-mlp", "--run", str(run), "--epochs", "-3"], capsys)
    assert code == 2 and _one_line(err) == "harness train: error: --epochs must be an integer >= 1, got -3"
    spec = tmp_path / "zero.toml"
    spec.write_text((REPO / "models" / "digits-mlp.toml").read_text().replace("epochs = ", "epochs = 0 #"))
    code, err = _cli(["train", "--model", str(spec), "--run", str(run)], capsys)
    assert code == 2
    assert _one_line(err) == f"harness train: error: {spec} [training]: 'epochs' must be an integer >= 1, got 0"
    assert not run.exists()


# ------------------------------------------------------------------ item 8: smaller ones
def test_a_file_where_a_directory_belongs_is_named(tmp_path):
    run = RunDir(tmp_path / "R")
    run.root.mkdir()
    run.attacks_dir.write_text("")  # a file named `attacks` in the run dir
    with pytest.raises(HarnessError, match=rf"cannot write {run.attack_path('a')}: {run.attacks_dir} is a file, "
                                           r"not a directory"):
        write_h5(run.attack_path("a"), {"x": np.zeros(1)}, {}, kind="attack")
    assert run.attacks_dir.read_text() == ""


def test_a_profile_path_that_does_not_exist_is_file_not_found(tmp_path, capsys):
    missing = tmp_path / "profiles" / "my.toml"
    with pytest.raises(ConfigError, match=rf"^hw_profile {missing}: file not found$"):
        resolve_spec("hw_profiles", missing)
    with pytest.raises(ConfigError, match=r"unknown hw_profile 'no-such'; available: .*loihi2-fixed"):
        resolve_spec("hw_profiles", "no-such")
    spikes = tmp_path / "x.npy"
    np.save(spikes, np.zeros((1, 4, 4), np.uint8))
    code, err = _cli(["replay", "--network", str(tmp_path / "n.net"), "--input", str(spikes), "--profile",
                      str(missing), "--out", str(tmp_path / "o.h5")], capsys)
    assert code == 2 and f"{missing}: file not found" in _one_line(err)


def test_train_into_an_unwritable_place_fails_before_computing(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr("harness.train.load_split", _must_not_run)
    monkeypatch.setattr("harness.train.train_network", _must_not_run)
    blocker = tmp_path / "afile"
    blocker.write_text("")
    code, err = _cli(["train", "--model", "digits-mlp", "--run", str(blocker / "run")], capsys)
    assert code == 2
    assert f"cannot write {blocker / 'run' / 'model'}: {blocker} is a file, not a directory" in _one_line(err)
    if os.geteuid() != 0:  # root ignores permission bits
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        code, err = _cli(["train", "--model", "digits-mlp", "--run", str(locked / "run")], capsys)
        assert code == 2 and f"cannot write {locked / 'run' / 'model'}: Permission denied" in _one_line(err)
