"""Bad input, round 3 (issue 20): no code runs from a run directory, nothing is written outside
the chosen folder, declared sizes are checked before anything is allocated, and no number is
silently wrong.

Every refusal ends in exit status 2 with one line on stderr naming the file, key or flag, and
leaves the run directory as it was.
"""
from __future__ import annotations

import errno
import hashlib
import math
import os
import shutil
import textwrap
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings, strategies as st

from harness import cli
from harness.config import resolve_spec
from harness.device.netx_reader import read_network
from harness.device.profiles import profile_from_dict
from harness.errors import ConfigError, DataError, DeviceError, HarnessError
from harness.experiment.spec import load_experiment
from harness.models import load_spec, spec_from_dict
from harness.results_model import Results
from harness.runs import open_run
from harness.settings import MODEL_RANGES, PROFILE_RANGES, folder_name
from harness.store import RunDir, read_json, read_torch, run_lock
from harness.train import train_network, train_run

REPO = Path(__file__).resolve().parent.parent
#: What torch.utils.cpp_extension prints on import on a machine without CUDA (lava-dl imports it).
TORCH_BANNER = "No CUDA runtime is found"


def _tree(root: Path) -> dict[str, str] | None:
    """Every file under ``root`` with its sha256 (None when ``root`` does not exist)."""
    if not root.exists():
        return None
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir"
            for p in sorted(root.rglob("*"))}


def _cli(argv: list[str], capsys) -> tuple[int, str]:
    """Run the CLI in-process; (exit status, the one line on stderr)."""
    code = cli.main(argv)
    err = capsys.readouterr().err
    lines = [line for line in err.strip().splitlines() if not line.startswith(TORCH_BANNER)]
    assert len(lines) == 1 and "Traceback" not in err, f"expected one line on stderr, got:\n{err}"
    return code, lines[0]


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """A digits-mlp run trained for one epoch (a few seconds), with its results and report."""
    run = tmp_path_factory.mktemp("round3") / "R"
    train_run("digits-mlp", run, seed=0, epochs=1, progress=False)
    assert cli.main(["report", "--run", str(run)]) == 0
    return run


@pytest.fixture()
def run_copy(trained, tmp_path) -> Path:
    """A private copy of the trained run."""
    return Path(shutil.copytree(trained, tmp_path / "R"))


# ------------------------------------------------------------------ 1. a run directory runs no code
class _Payload:
    """Pickles as a call of ``os.system`` that creates ``marker``: what a hostile checkpoint holds."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def _poison(path: Path, marker: Path) -> None:
    """Rewrite the torch file ``path`` with the payload added beside its real content."""
    state = read_torch(path, "test file", "")
    torch.save({**state, "note": _Payload(marker)}, path)


def test_the_payload_runs_code_when_fully_unpickled(run_copy, tmp_path):
    """Control: the poisoned checkpoint does run code under torch.load's old default."""
    marker = tmp_path / "marker"
    _poison(RunDir(run_copy).checkpoint, marker)
    torch.load(RunDir(run_copy).checkpoint, weights_only=False)
    assert marker.exists()


@pytest.mark.parametrize("command", [
    ["report", "--run", "{run}"],
    ["attack", "--run", "{run}", "--n", "2", "--iterations", "2", "--no-progress"],
    ["ann", "--run", "{run}", "--n", "2", "--no-progress"],
    ["export", "--nir", "--run", "{run}", "{out}"],
    ["replay", "--run", "{run}", "--profile", "loihi2-fixed", "--no-progress"],
], ids=lambda argv: argv[0])
def test_a_poisoned_checkpoint_runs_no_code(run_copy, tmp_path, capsys, command):
    marker, checkpoint = tmp_path / "marker", RunDir(run_copy).checkpoint
    _poison(checkpoint, marker)
    before = _tree(run_copy)
    code, line = _cli([a.format(run=run_copy, out=tmp_path / "g.nir") for a in command], capsys)
    assert not marker.exists()
    assert code == 2 and f"{checkpoint}: refused as a harness checkpoint" in line and "could run code" in line
    assert _tree(run_copy) == before


def test_open_run_net_refuses_a_poisoned_checkpoint(run_copy, tmp_path):
    marker = tmp_path / "marker"
    _poison(RunDir(run_copy).checkpoint, marker)
    with pytest.raises(DataError, match=rf"{RunDir(run_copy).checkpoint}: refused .*retrain with"):
        open_run(run_copy).net
    assert not marker.exists()


def test_training_resume_refuses_a_poisoned_state(tmp_path):
    """A train_state.pt holding a payload is refused, not unpickled (harness train resumes from it)."""
    spec = load_spec("digits-mlp")
    state = tmp_path / "train_state.pt"
    torch.save({"seed": 0, "spec": spec.to_dict(), "epoch": 1, "note": _Payload(tmp_path / "marker")}, state)
    from harness.train import load_split

    with pytest.raises(DataError, match=rf"{state}: refused as a training state.*delete {state}"):
        train_network(spec, load_split(spec, "train", limit=8), 0, 1, state_path=state, progress=False)
    assert not (tmp_path / "marker").exists()


def test_harness_writes_torch_files_that_load_with_weights_only(trained, tmp_path):
    """The checkpoint and the resume state hold tensors and plain values only."""
    read_torch(RunDir(trained).checkpoint, "harness checkpoint", "")
    spec = load_spec("digits-mlp")
    from harness.train import load_split

    state = tmp_path / "train_state.pt"
    train_network(spec, load_split(spec, "train", limit=8), 0, 1, state_path=state, progress=False)
    assert read_torch(state, "training state", "")["epoch"] == 1


def test_an_old_numpy_twin_checkpoint_is_refused_with_a_retrain_line(tmp_path):
    """A twin checkpoint written before version 2 (numpy arrays inside) gets one clear line."""
    from harness.netx_twin import load_twin

    path = tmp_path / "checkpoint.pt"
    torch.save({"kind": "netx-twin", "version": 1, "layers": [{"bias": np.zeros(3)}]}, path)
    with pytest.raises(DataError, match=rf"{path}: refused as a netx twin checkpoint: .*numpy.*re-import"):
        load_twin(path)


# ------------------------------------------------------------------ 2. names that become paths
@pytest.mark.parametrize("name", ["/tmp/X", "../X", "a/b", "..", ".", ".hidden", "", " x", "a\\b", "x" * 300, 3])
def test_folder_names_refuse_anything_but_a_plain_name(name):
    with pytest.raises(ConfigError, match="must be a plain folder name"):
        folder_name(name, "'id'")


def _experiment(tmp_path: Path, name: str = "ok", run: str = 'id = "r"\nmodel = "digits-mlp"') -> Path:
    path = tmp_path / "exp" / "e.toml"
    path.parent.mkdir(exist_ok=True)
    path.write_text(f'name = {name!r}\n[[runs]]\n{run}\n'.replace("'", '"'))
    return path


@pytest.mark.parametrize("name, run, key", [
    (str(Path("/tmp") / "harness-escape"), 'id = "r"\nmodel = "digits-mlp"', "'name'"),
    ("ok", 'id = "../escape"\nmodel = "digits-mlp"', "'id'"),
    ("ok", 'id = "../escape"\nnetwork = "n.net"', "'id'"),
], ids=["absolute-name", "run-id", "network-run-id"])
def test_no_name_from_an_experiment_escapes_its_folder(tmp_path, capsys, monkeypatch, name, run, key):
    exp = _experiment(tmp_path, name, run)
    (exp.parent / "n.net").write_bytes(b"")
    monkeypatch.chdir(tmp_path)
    before = _tree(tmp_path)
    code, line = _cli(["run", str(exp), "--no-progress"], capsys)
    assert code == 2 and str(exp) in line and f"{key} must be a plain folder name" in line
    assert _tree(tmp_path) == before and not Path("/tmp/harness-escape").exists()


def test_a_profile_name_cannot_leave_the_device_folder(tmp_path):
    raw = _profile_raw()
    raw["name"] = "../../escape"
    with pytest.raises(ConfigError, match=r"p.toml: 'name' must be a plain folder name"):
        profile_from_dict(raw, "p.toml")


# ------------------------------------------------------------------ 3. memory bombs
def _dense_net(path: Path, weight_shape=(10, 64), in_features: int | None = 64, **weight) -> Path:
    """A one-layer dense netx file whose weight declares ``weight_shape`` (storage left unallocated)."""
    with h5py.File(path, "w") as f:
        layer = f.create_group("layer/0")
        layer["type"] = np.bytes_("dense")
        layer["shape"] = np.array([weight_shape[0]])
        if in_features is not None:
            layer["inFeatures"] = in_features
        layer.create_dataset("weight", shape=weight_shape, dtype=np.int8, **weight)
        neuron = layer.create_group("neuron")
        neuron["type"] = np.bytes_("CUBA")
        for key, value in (("vThMant", 80), ("iDecay", 1024), ("vDecay", 128)):
            neuron[key] = value
    return path


def test_a_declared_giant_weight_is_refused_before_reading(tmp_path, capsys):
    path = _dense_net(tmp_path / "bomb.net", (128, 3_000_000), in_features=3_000_000, chunks=(1, 1024))
    assert path.stat().st_size < 100_000
    with pytest.raises(DeviceError, match=r"bomb.net layer 0 \('dense'\): 'weight' of shape \(128, 3000000\) holds "
                                          r"384,000,000 elements, above the limit of 268,435,456 \(HARNESS_MAX_ELEMENTS"):
        read_network(path)
    code, line = _cli(["map", "--network", str(path), "--profile", "loihi2-fixed"], capsys)
    assert code == 2 and "bomb.net layer 0" in line


def test_a_weight_that_ignores_in_features_is_refused(tmp_path):
    path = _dense_net(tmp_path / "n.net", (10, 3000), in_features=64)
    with pytest.raises(DeviceError, match=r"'weight' of shape \(10, 3000\) does not fit 10 neurons x inFeatures 64"):
        read_network(path)


def test_the_size_limit_is_a_setting(tmp_path, monkeypatch):
    path = _dense_net(tmp_path / "n.net", (10, 64), in_features=64, data=np.ones((10, 64), np.int8))
    read_network(path)
    monkeypatch.setenv("HARNESS_MAX_ELEMENTS", "100")
    with pytest.raises(DeviceError, match="holds 640 elements, above the limit of 100"):
        read_network(path)
    monkeypatch.setenv("HARNESS_MAX_ELEMENTS", "lots")
    with pytest.raises(ConfigError, match="^HARNESS_MAX_ELEMENTS must be an integer >= 1, got 'lots'$"):
        read_network(path)


def test_a_conv_padding_beyond_the_kernel_is_refused(tmp_path):
    path = tmp_path / "conv.net"
    with h5py.File(path, "w") as f:
        layer = f.create_group("layer/0")
        layer["type"] = np.bytes_("conv")
        layer["shape"] = np.array([2, 6, 6])
        layer["weight"] = np.ones((2, 1, 3, 3), np.int8)
        for key, value in (("stride", [1, 1]), ("padding", [100_000, 100_000]), ("dilation", [1, 1]), ("groups", 1)):
            layer[key] = value
        neuron = layer.create_group("neuron")
        neuron["type"] = np.bytes_("CUBA")
        for key, value in (("vThMant", 80), ("iDecay", 1024), ("vDecay", 128)):
            neuron[key] = value
    with pytest.raises(DeviceError, match=r"conv.net layer 0 \('conv'\): 'padding' \[100000, 100000\] must be below "
                                          r"the kernel's extent \[3, 3\]"):
        read_network(path, input_shape=(1, 8, 8))


@pytest.mark.parametrize("flags, message", [
    (["--sensor-size", "100000", "100000", "2", "--steps", "16"], "one binned sample .* holds 320,000,000,000 elements"),
    (["--sensor-size", "34", "34", "2", "--steps", "1000000000"], "holds 2,312,000,000,000 elements"),
    (["--sensor-size", "34", "34", "2", "--steps", "16", "--dt-ms", "0.0001"], "--dt-ms 0.0001 .* rounds to 0 us"),
    (["--sensor-size", "34", "34", "2", "--steps", "16", "--dt-ms", "inf"], "--dt-ms must be a finite number > 0, got inf"),
    (["--sensor-size", "34", "34", "2", "--steps", "16", "--dt-ms", "0"], "--dt-ms must be a finite number > 0, got 0.0"),
    (["--sensor-size", "34", "34", "2", "--steps", "0"], "--steps must be an integer >= 1, got 0"),
    (["--sensor-size", "0", "34", "2", "--steps", "16"], "--sensor-size must be three positive integers"),
], ids=["sensor", "steps", "dt-rounds-to-0", "dt-inf", "dt-0", "steps-0", "sensor-0"])
def test_binning_flags_are_checked_before_anything_is_allocated(tmp_path, capsys, flags, message):
    events = np.zeros(3, dtype=[("x", "<i8"), ("y", "<i8"), ("t", "<i8"), ("p", "<i8")])
    np.save(tmp_path / "e.npy", events)
    network = _dense_net(tmp_path / "n.net", (10, 2312), in_features=2312, data=np.ones((10, 2312), np.int8))
    code, line = _cli(["replay", "--network", str(network), "--input", str(tmp_path / "e.npy"), "--profile",
                       "loihi2-fixed", "--out", str(tmp_path / "o.h5"), *flags], capsys)
    assert code == 2
    assert __import__("re").search(message, line), line
    assert not (tmp_path / "o.h5").exists()


# ------------------------------------------------------------------ 5. silently wrong numbers
def _spec_raw() -> dict:
    return {"name": "t", "data": {"dataset": "digits", "steps": 16, "dt_ms": 1.0, "input_shape": [1, 8, 8]},
            "neuron": {"threshold": 1.25, "current_decay": 0.25, "voltage_decay": 0.03, "tau_grad": 0.03,
                       "scale_grad": 3},
            "surrogate": {"kind": "slayer", "width": 1.0},
            "layers": [{"type": "dense", "out": 12}, {"type": "dense", "out": 10}],
            "training": {"lr": 0.01, "batch_size": 32, "epochs": 2, "true_rate": 0.5, "false_rate": 0.03}}


@pytest.mark.parametrize("table, key, value, message", [
    ("neuron", "threshold", 0, r"\[neuron\]: 'threshold' must be a finite number > 0, got 0"),
    ("neuron", "threshold", -1, "'threshold' must be a finite number > 0, got -1"),
    ("neuron", "threshold", math.nan, "'threshold' must be a finite number > 0, got nan"),
    ("neuron", "threshold", math.inf, "'threshold' must be a finite number > 0, got inf"),
    ("neuron", "current_decay", 2.0, r"'current_decay' must be a finite number in \[0, 1\], got 2.0"),
    ("neuron", "voltage_decay", -0.5, r"'voltage_decay' must be a finite number in \[0, 1\], got -0.5"),
    ("neuron", "tau_grad", math.nan, "'tau_grad' must be a finite number > 0, got nan"),
    ("data", "dt_ms", -1, r"\[data\]: 'dt_ms' must be a finite number > 0, got -1"),
    ("data", "steps", 2, r"'steps' = 2 is too short for 2 spiking layers: .* give steps >= 3"),
    ("training", "lr", math.nan, r"\[training\]: 'lr' must be a finite number > 0, got nan"),
    ("training", "lr", -0.1, "'lr' must be a finite number > 0, got -0.1"),
    ("training", "true_rate", math.nan, r"'true_rate' must be a finite number in \[0, 1\], got nan"),
    ("training", "batch_size", 0, "'batch_size' must be an integer >= 1, got 0"),
])
def test_model_spec_numbers_are_checked_with_their_range(table, key, value, message):
    raw = _spec_raw()
    raw[table][key] = value
    with pytest.raises(ConfigError, match=rf"spec.toml .*{message}"):
        spec_from_dict(raw, "spec.toml")


def test_a_layer_neuron_override_is_checked_too():
    raw = _spec_raw()
    raw["layers"][0]["neuron"] = {"threshold": math.nan}
    with pytest.raises(ConfigError, match="spec.toml layer 0 neuron: 'threshold' must be a finite number > 0, got nan"):
        spec_from_dict(raw, "spec.toml")


def test_an_experiment_spec_override_is_checked(tmp_path, capsys):
    exp = _experiment(tmp_path, run='id = "r"\nmodel = "digits-mlp"\nspec = { neuron = { threshold = nan } }')
    code, line = _cli(["run", str(exp), "--no-progress"], capsys)
    assert code == 2 and f"{exp} [[runs]] #1 (model 'digits-mlp' with overrides) [neuron]: 'threshold' must be a " \
                         "finite number > 0, got nan" in line


def _profile_raw() -> dict:
    from harness.config import load_toml

    return load_toml(resolve_spec("hw_profiles", "loihi2-noisy"))


@pytest.mark.parametrize("table, key, value", [
    ("energy", "synaptic_op_j", math.nan), ("energy", "spike_j", math.inf), ("noise", "jitter_steps", -1),
])
def test_profile_numbers_are_checked_with_their_range(table, key, value):
    raw = _profile_raw()
    raw.setdefault(table, {})[key] = value
    with pytest.raises(ConfigError, match=rf"p.toml \[{table}\]: '?{key}'? must be"):
        profile_from_dict(raw, "p.toml")


def test_a_jitter_of_t_or_more_steps_is_refused_at_replay():
    from harness.device.noise import InputNoise

    with pytest.raises(ConfigError, match=r"jitter_steps = 40 is not below the input's T = 16 steps"):
        InputNoise(jitter_steps=40).apply(np.ones((2, 4, 16), np.uint8))


_HOSTILE = st.one_of(st.sampled_from([math.nan, math.inf, -math.inf, 0, 0.0, -1, -1e300, 1e300, 10 ** 30, -(10 ** 30),
                                      True, 2 ** 63]),
                     st.floats(allow_nan=True, allow_infinity=True), st.integers(-10 ** 20, 10 ** 20))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_any_number_in_a_spec_or_profile_is_refused_clearly_or_accepted(data):
    """Validation only (no network is built): a clear ConfigError or a valid object, nothing else."""
    raw, tables = _spec_raw(), dict(MODEL_RANGES)
    table = data.draw(st.sampled_from(sorted(tables)), "table")
    key = data.draw(st.sampled_from(sorted(tables[table])), "key")
    target = raw["layers"][0] if table == "layers" else raw.setdefault(table, {})
    if key in ("kernel", "stride", "padding"):
        raw["layers"][0] = target = {"type": "conv", "out": 4, "kernel": 3}
        raw["layers"].insert(1, {"type": "flatten"})
    target[key] = data.draw(_HOSTILE, "value")
    try:
        spec_from_dict(raw, "spec.toml")
    except ConfigError as exc:
        assert str(exc).startswith("spec.toml") and "\n" not in str(exc)
    profile = _profile_raw()
    table = data.draw(st.sampled_from(sorted(PROFILE_RANGES)), "profile table")
    key = data.draw(st.sampled_from(sorted(PROFILE_RANGES[table])), "profile key")
    profile.setdefault(table, {"neurons_per_core": 4} if table == "chip" else {})[key] = data.draw(_HOSTILE, "value")
    try:
        profile_from_dict(profile, "p.toml")
    except ConfigError as exc:
        assert str(exc).startswith("p.toml") and "\n" not in str(exc)


# ------------------------------------------------------------------ 6. results.json read back
@pytest.mark.parametrize("edit, message", [
    (lambda r: r["clean"]["offline"]["accuracy_ci"].update(k=999), r"accuracy_ci: k = 999 successes of n = \d+ trials"),
    (lambda r: r["clean"]["offline"]["accuracy_ci"].update(value=0.99), r"accuracy_ci: value = 0.99 does not follow"),
    (lambda r: r["clean"]["offline"]["accuracy_ci"].update(low=0.0), r"accuracy_ci: low = 0.0 does not follow"),
], ids=["k-above-n", "value", "interval"])
def test_a_tampered_results_file_is_named_by_compare(run_copy, trained, capsys, edit, message):
    results = RunDir(run_copy).results
    data = read_json(results)
    edit(data)
    results.write_text(__import__("json").dumps(data))
    before = _tree(run_copy)
    with pytest.raises(DataError, match=rf"{results}/clean/offline/{message}"):
        Results.load(results)
    code, line = _cli(["compare", str(trained), str(run_copy)], capsys)
    assert code == 2 and str(results) in line and "edited or damaged" in line
    assert _tree(run_copy) == before


# ------------------------------------------------------------------ 7. imported spikes that do not fit
def test_import_refuses_spikes_that_do_not_fit_the_network(tmp_path, capsys):
    network = _dense_net(tmp_path / "base.net", (10, 64), in_features=64, data=np.ones((10, 64), np.int8))
    np.save(tmp_path / "x.npy", np.zeros((20, 1, 8, 8, 16), np.uint8))
    np.save(tmp_path / "y.npy", np.zeros(20, np.int64))
    code, line = _cli(["import", "--network", str(network), "--run", str(tmp_path / "R"), "--input",
                       str(tmp_path / "x.npy"), "--labels", str(tmp_path / "y.npy"), "--dt-ms", "1"], capsys)
    assert code == 2
    assert f"shape (20, 1, 8, 8, 16) (one sample: (1, 8, 8) x T) do not fit {network}, which takes (N, 64, T)" in line
    assert _tree(tmp_path / "R") in (None, {})


# ------------------------------------------------------------------ 8. a full disk
def _full_disk(monkeypatch, when=lambda path: True) -> None:
    """Every write of a file for which ``when(path)`` holds fails as on a full filesystem."""
    write = Path.write_bytes

    def refuse(self, data):
        if when(self):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(self))
        return write(self, data)

    monkeypatch.setattr(Path, "write_bytes", refuse)


def test_training_onto_a_full_disk_says_so_and_leaves_no_network(tmp_path, capsys, monkeypatch):
    """The netx file is the write that fails (the checkpoint fits): exit 2, no half-written file."""
    run = RunDir(tmp_path / "R")
    _full_disk(monkeypatch, lambda path: path.name.startswith(".network.net"))
    code, line = _cli(["train", "--model", "digits-mlp", "--run", str(run.root), "--epochs", "1",
                       "--no-progress"], capsys)
    assert (code, line) == (2, f"harness train: error: cannot write {run.network}: no space left on device")
    assert sorted(p.name for p in run.model_dir.iterdir()) == ["checkpoint.pt", "train_state.pt"]


def test_the_netx_export_never_writes_hdf5_to_the_disk_itself(tmp_path, monkeypatch):
    """HDF5 builds the file in memory: a failing disk write is a plain OSError, never a crash in HDF5."""
    from harness.models import build_network

    net = build_network(load_spec("digits-mlp"), 0)
    with torch.no_grad():
        net(torch.zeros(1, 1, 8, 8, 16))
    _full_disk(monkeypatch)
    with pytest.raises(HarnessError, match=rf"cannot write {tmp_path / 'n.net'}: no space left on device"):
        net.export_hdf5(tmp_path / "n.net")
    assert list(tmp_path.iterdir()) == []


def test_a_report_onto_a_full_disk_says_so_and_writes_nothing(run_copy, capsys, monkeypatch):
    for name in ("results.json", "report.md", "report.html"):
        (run_copy / name).unlink()
    before = _tree(run_copy)
    _full_disk(monkeypatch)
    code, line = _cli(["report", "--run", str(run_copy)], capsys)
    assert code == 2 and line.startswith(f"harness report: error: cannot write {run_copy}/")
    assert line.endswith(": no space left on device")
    assert _tree(run_copy) == before


# ------------------------------------------------------------------ 9. one process per run directory
def test_a_second_training_of_a_busy_run_directory_is_refused(tmp_path, capsys):
    run = tmp_path / "R"
    with run_lock(run, "harness train"):
        before = _tree(run)
        code, line = _cli(["train", "--model", "digits-mlp", "--run", str(run), "--epochs", "1", "--no-progress"],
                          capsys)
        assert code == 2
        assert f"{run} is in use by pid {os.getpid()} (harness train) (lock {run / '.harness.lock'})" in line
        assert _tree(run) == before
    assert not (run / ".harness.lock").exists()


def test_a_second_study_in_a_busy_folder_is_refused(tmp_path, capsys):
    exp = _experiment(tmp_path)
    with run_lock(tmp_path / "study", "harness run"):
        code, line = _cli(["run", str(exp), "--run", str(tmp_path / "study"), "--no-progress"], capsys)
    assert code == 2 and f"{tmp_path / 'study'} is in use by pid {os.getpid()} (harness run)" in line
    assert list((tmp_path / "study").iterdir()) == []


def test_the_lock_is_released_when_its_holder_dies(tmp_path):
    """flock: a holder killed with SIGKILL leaves a lock file behind that no longer locks."""
    import subprocess
    import sys

    code = (f"from harness.store import run_lock\nimport os\nwith run_lock({str(tmp_path)!r}, 'killed'):\n"
            "    os.kill(os.getpid(), 9)\n")
    subprocess.run([sys.executable, "-c", code], env=dict(os.environ, PYTHONPATH=str(REPO)))
    assert (tmp_path / ".harness.lock").exists()
    with run_lock(tmp_path, "next"):
        pass


@pytest.mark.parametrize("change, message", [
    (lambda raw: raw["data"].update(steps=10 ** 9), r"\[data\]: one sample \('input_shape' x 'steps'\) of shape "
                                                    r"\(1, 8, 8, 1000000000\) holds 64,000,000,000 elements"),
    (lambda raw: raw["layers"][0].update(out=10 ** 8), r"layer 0: the weights of shape \(100000000, 64\)"),
], ids=["steps", "layer"])
def test_a_spec_too_large_to_allocate_is_refused_before_any_network_is_built(change, message):
    raw = _spec_raw()
    change(raw)
    with pytest.raises(ConfigError, match=rf"spec.toml {message}"):
        spec_from_dict(raw, "spec.toml")
