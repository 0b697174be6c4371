"""Bad input, round 2 (issue 11): reuse keyed on what an artifact was made from, experiment-file
settings named by file/table/key, and profiles known by their name after loading."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from harness.runs import open_run


def harness(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "harness", *args], capture_output=True, text=True, cwd=cwd)


def _tree(root: Path) -> dict[Path, bytes]:
    return {p: p.read_bytes() for p in root.rglob("*") if p.is_file()}


@pytest.mark.slow
def test_an_attack_on_other_data_is_not_returned_for_this_data(tmp_path, nmnist_dir):
    """Defect 1: the same attack settings on a different data folder (one recording cut short) must not
    return the file made from the other data."""
    lines = (nmnist_dir / "test100.txt").read_text().splitlines()
    other = tmp_path / "d"
    other.mkdir()
    for line in lines[1:11]:
        rec = line.split()[0]
        (other / f"{rec}.bs2").symlink_to(nmnist_dir / f"{rec}.bs2")
    first = lines[1].split()[0]
    (other / f"{first}.bs2").unlink()
    (other / f"{first}.bs2").write_bytes((nmnist_dir / f"{first}.bs2").read_bytes()[:5000])
    (other / "test10.txt").write_text("\n".join(lines[:11]) + "\n")
    run = tmp_path / "nm"
    assert harness("train", "--model", "nmnist-mlp", "--data", str(nmnist_dir), "--run", str(run), "--epochs", "1",
                   "--no-progress").returncode == 0
    for data in (other, nmnist_dir):
        done = harness("attack", "--run", str(run), "--data", str(data), "--n", "3", "--iterations", "2", "--no-progress")
        assert done.returncode == 0, done.stderr
    record = open_run(run).attack(open_run(run).attack_ids()[0])
    real = open_run(run).test(n=3, data_path=nmnist_dir)
    assert np.array_equal(record.clean, real.spikes), "the attack file holds the other data's spikes"
    assert int(record.clean[0].sum()) == int(real.spikes[0].sum()) > 1000


def test_a_wrongly_typed_attack_setting_names_file_table_key_type_and_value(tmp_path):
    """Defect 6: `iterations = "many"` said `invalid attack setting ('<' not supported ...)`."""
    exp = tmp_path / "exp.toml"
    exp.write_text('name = "x"\n[[runs]]\nid = "r"\nmodel = "digits-mlp"\n[[attacks]]\nmethod = "g2s"\n'
                   'iterations = "many"\n')
    done = harness("run", str(exp))
    assert done.returncode == 2 and done.stderr.count("\n") == 1
    assert f"{exp} [[attacks]] #1: 'iterations' must be an integer, got 'many'" in done.stderr
    assert not (tmp_path / "runs").exists()


@pytest.mark.slow
def test_an_experiment_names_a_profile_by_path(tmp_path):
    """Defect 7: a profile given by path replayed into device/<name>/ and then the summary looked for
    device/<path>/clean.h5."""
    from harness.config import PROJECT_ROOT

    profile = tmp_path / "profiles" / "my.toml"
    profile.parent.mkdir()
    profile.write_text((PROJECT_ROOT / "hw_profiles" / "loihi2-fixed.toml").read_text()
                       .replace('name = "loihi2-fixed"', 'name = "my-fixed"'))
    exp = tmp_path / "exp.toml"
    exp.write_text('name = "x"\nprofiles = ["profiles/my.toml"]\n[[runs]]\nid = "r"\nmodel = "digits-mlp"\n'
                   'epochs = 1\n')
    done = harness("run", str(exp), "--run", str(tmp_path / "out"), "--no-progress", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    run = open_run(tmp_path / "out" / "r")
    assert run.replayed_profiles() == ["my-fixed"]
    assert '"my-fixed"' in (tmp_path / "out" / "r" / "results.json").read_text()
