"""Experiment files: validation with clear errors, resolved config, and one real end-to-end run."""
from __future__ import annotations

import base64
import json
import re
from io import BytesIO
from pathlib import Path

import h5py
import jsonschema
import pytest
import tomli

from harness.cli import main
from harness.config import PROJECT_ROOT
from harness.errors import ConfigError, DataError
from harness.experiment import load_experiment, merge, run_experiment, write_config
from harness.results import load_schema

SHIPPED = sorted((PROJECT_ROOT / "experiments").glob("*.toml"))

MINIMAL = """
name = "tiny"
[[runs]]
id = "a"
model = "digits-mlp"
"""


def _write(tmp_path: Path, text: str, name: str = "exp.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


@pytest.mark.parametrize("path", SHIPPED, ids=[p.stem for p in SHIPPED])
def test_every_shipped_experiment_is_valid(path, nmnist_dir):
    exp = load_experiment(path, data=nmnist_dir)
    assert exp.runs and exp.name == path.stem


def test_demo_is_the_issue_pipeline():
    exp = load_experiment("demo")
    assert [r.model for r in exp.runs] == ["digits-mlp"] and exp.profiles == ["loihi2-fixed"]
    methods = {(a.method, a.targeted) for a in exp.attacks}
    assert {("g2s-rsf", None), ("g2s-rsf", "every-other"), ("random", None)} <= methods


def test_defaults_and_spec_overrides(tmp_path):
    exp = load_experiment(_write(tmp_path, MINIMAL + """
epochs = 3
spec = { surrogate = { kind = "rectangular", width = 0.5 }, training = { loss = "cross-entropy" } }
[[attacks]]
method = "g2s"
"""))
    run = exp.runs[0]
    assert exp.budgets == [10, 20, 50, 100, 200, 500, 1000, 2000] and exp.seed == 0 and exp.profiles == []
    assert run.epochs == 3 and run.seed == 0
    assert run.spec["surrogate"] == {"kind": "rectangular", "width": 0.5}
    assert run.spec["training"]["loss"] == "cross-entropy" and run.spec["training"]["lr"] == 0.01  # rest kept
    attack = exp.attacks[0]
    assert attack.label == "g2s untargeted" and attack.runs == ["a"] and attack.config.iterations == 25


@pytest.mark.parametrize("extra, message", [
    ('colour = "red"\n', r"unknown key\(s\) colour"),
    ('study = "speed"\n', r"study 'speed' unknown; available: methods"),
    ('budgets = [10, -5]\n', r"budgets must be a non-empty list of positive integers"),
    ('profiles = ["loihi9"]\n', r"unknown hw_profile 'loihi9'; available: .*loihi2-fixed"),
])
def test_top_level_errors_name_the_file_and_key(tmp_path, extra, message):
    path = _write(tmp_path, extra + MINIMAL)
    with pytest.raises(ConfigError, match=message) as info:
        load_experiment(path)
    assert str(info.value).startswith(str(path))


@pytest.mark.parametrize("tables, message", [
    ('[[attacks]]\nmethod = "g2s-rsf"\ngamma = 2.0\n', r"\[\[attacks\]\] #1: 'gamma' must be in \(0, 1\]"),
    ('[[attacks]]\nmethod = "g2s"\ngamma = 0.1\n', r"\[\[attacks\]\] #1: 'gamma' is not a setting of method 'g2s'"),
    ('[[attacks]]\nmethod = "transfer"\n', r"\[\[attacks\]\] #1: method 'transfer' cannot be a table"),
    ('[[attacks]]\nmethod = "fgsm"\n', r"#1: unknown attack method 'fgsm'"),
    ('[[attacks]]\nmethod = "g2s"\ntargeted = "some"\n', r"targeted 'some' unknown; available: every-other"),
    ('[[attacks]]\nmethod = "g2s"\nruns = ["b"]\n', r"run 'b' is not one of this experiment's runs \(a\)"),
    ('[[attacks]]\nmethod = "random"\nreference = "x"\n', r"reference 'x' must be the label of an earlier"),
    ('[[attacks]]\nmethod = "g2s"\n[[attacks]]\nmethod = "g2s"\n', r"#2: label 'g2s untargeted' is used twice"),
    ('[[attacks]]\nmethod = "g2s"\nitertions = 5\n', r"#1: unknown key\(s\) itertions"),
])
def test_attack_errors_name_the_table(tmp_path, tables, message):
    with pytest.raises(ConfigError, match=message):
        load_experiment(_write(tmp_path, MINIMAL + tables))


def test_a_registered_method_keeps_its_name_and_settings(tmp_path):
    exp = load_experiment(_write(tmp_path, MINIMAL + '[[attacks]]\nmethod = "energy"\niterations = 3\n'))
    plan = exp.attacks[0]
    assert plan.method == "energy" and plan.config.method == "g2s-rsf" and plan.config.loss == "energy"


def test_a_non_iterative_attack_is_a_table_with_its_checked_settings(tmp_path):
    tables = ('[[attacks]]\nmethod = "sda"\nmax_passes = 500\nthreat = ["flips", "delete-only"]\n'
              '[[attacks]]\nmethod = "spikefool"\nn = 5\n[[attacks]]\nmethod = "sparse-rs"\nqueries = 50\n')
    exp = load_experiment(_write(tmp_path, MINIMAL + tables))
    sda, sda_del, spikefool, srs = exp.attacks
    assert sda.config is None and sda.settings == {"max_passes": 500, "threat": "flips", "seed": 0}
    assert sda_del.settings["threat"] == "delete-only" and spikefool.n == 5 and srs.settings["queries"] == 50
    with pytest.raises(ConfigError, match=r"#1: --gamma|#1: 'gamma' is not a setting of method 'sda'"):
        load_experiment(_write(tmp_path, MINIMAL + '[[attacks]]\nmethod = "sda"\ngamma = 0.1\n'))


@pytest.mark.parametrize("table, message", [
    ('[[ann]]\nsnn_attack = "nope"\n', r"\[\[ann\]\] #1: snn_attack 'nope' must be the label of an \[\[attacks\]\]"),
    ('[[ann]]\neps = [0.1, 0]\n', r"'eps' must be a non-empty list of positive numbers"),
    ('[[ann]]\neps_scale = "log"\n', r"eps_scale 'log' unknown; available: absolute, mean-rate"),
])
def test_ann_errors_name_the_table(tmp_path, table, message):
    with pytest.raises(ConfigError, match=message):
        load_experiment(_write(tmp_path, MINIMAL + '[[attacks]]\nmethod = "g2s"\n' + table))


def test_run_errors_name_the_run(tmp_path):
    bad_loss = MINIMAL + 'spec = { training = { loss = "hinge" } }\n'
    with pytest.raises(ConfigError, match=r"\[\[runs\]\] #1 \(model 'digits-mlp' with overrides\).*loss 'hinge'"):
        load_experiment(_write(tmp_path, bad_loss))
    twice = MINIMAL + '[[runs]]\nid = "a"\nmodel = "digits-mlp"\n'
    with pytest.raises(ConfigError, match="run ids must be unique"):
        load_experiment(_write(tmp_path, twice))
    with pytest.raises(ConfigError, match="unknown model 'nope'; available: digits-mlp"):
        load_experiment(_write(tmp_path, MINIMAL.replace('model = "digits-mlp"', 'model = "nope"')))


def test_unknown_experiment_lists_the_shipped_ones():
    with pytest.raises(ConfigError, match="unknown experiment 'nope'; available: .*demo"):
        load_experiment("nope")


def test_nmnist_data_folder_is_checked_and_overridable(tmp_path):
    text = MINIMAL.replace("digits-mlp", "nmnist-mlp")
    with pytest.raises(DataError, match=r"N-MNIST data folder .*missing not found; .*--data PATH"):
        load_experiment(_write(tmp_path, text), data=tmp_path / "missing")
    (tmp_path / "here").mkdir()
    assert load_experiment(_write(tmp_path, text), data=tmp_path / "here").data == (tmp_path / "here").resolve()
    relative = load_experiment(_write(tmp_path, 'data = "."\n' + MINIMAL))
    assert relative.data == PROJECT_ROOT.resolve()  # relative paths start at the repository root


def test_merge_replaces_values_and_merges_tables():
    base = {"a": {"x": 1, "y": 2}, "layers": [1, 2], "k": 1}
    assert merge(base, {"a": {"y": 3}, "layers": [9]}) == {"a": {"x": 1, "y": 3}, "layers": [9], "k": 1}
    assert base["a"]["y"] == 2  # the base is not modified


def test_config_toml_records_the_resolved_experiment(tmp_path):
    exp = load_experiment(_write(tmp_path, 'seed = 4\n' + MINIMAL + '[[attacks]]\nmethod = "g2s"\n'))
    write_config(exp, tmp_path / "out")
    config = tomli.loads((tmp_path / "out" / "config.toml").read_text())
    assert config["seed"] == 4 and config["runs"][0]["seed"] == 4
    assert config["runs"][0]["spec"]["data"]["dataset"] == "digits"
    assert config["attacks"][0]["settings"]["seed"] == 4
    assert {"python", "harness", "lava-nc", "lava-dl", "torch"} <= set(config["versions"])
    stamp = (tmp_path / "out" / "config.toml").stat().st_mtime_ns
    write_config(exp, tmp_path / "out")
    assert (tmp_path / "out" / "config.toml").stat().st_mtime_ns == stamp


def test_cli_reports_a_bad_experiment_in_one_line(tmp_path, capsys):
    assert main(["run", str(_write(tmp_path, "name = 1\n"))]) == 2
    err = capsys.readouterr().err
    assert err.startswith("harness run: error:") and "missing required key(s): runs" in err


SMALL = """
name = "e2e"
seed = 0
budgets = [5, 20, 100]
profiles = ["loihi2-fixed"]
study = "methods"

[[runs]]
id = "digits"
model = "digits-mlp"
epochs = 2

[[runs]]
id = "other"
model = "digits-mlp"
epochs = 2
seed = 1

[[attacks]]
label = "G2S+RSF"
method = "g2s-rsf"
n = 40
iterations = 10
runs = ["digits"]

[[attacks]]
label = "random"
method = "random"
reference = "G2S+RSF"
runs = ["digits"]

[[attacks]]
label = "transfer"
method = "g2s-rsf"
n = 40
iterations = 10
runs = ["digits"]
crafted_on = "other"
"""


def _decode_images(page: str) -> int:
    from PIL import Image

    sources = re.findall(r'<img [^>]*src="([^"]*)"', page)
    for src in sources:
        assert src.startswith("data:image/png;base64,")
        Image.open(BytesIO(base64.b64decode(src.split(",", 1)[1]))).load()
    return len(sources)


@pytest.mark.slow
def test_small_experiment_end_to_end_and_rerun_touches_nothing(tmp_path):
    """train -> attack -> replay -> results.json -> report on digits; then a rerun changes no file."""
    exp = load_experiment(_write(tmp_path, SMALL))
    lines: list[str] = []
    report = run_experiment(exp, tmp_path / "run", progress=False, echo=lines.append)
    assert report == tmp_path / "run" / "report.html"
    assert [line.split()[0] for line in lines if line.startswith("[")] == (
        ["[1/5]"] * 2 + ["[2/5]"] * 3 + ["[3/5]"] * 2 + ["[4/5]"] * 2 + ["[5/5]"])  # one replay task per run
    results = json.loads((tmp_path / "run" / "digits" / "results.json").read_text())
    jsonschema.validate(results, load_schema())
    assert [a["method"] for a in results["attacks"]] == ["g2s-rsf", "random", "g2s-rsf"]
    assert results["clean"]["device"]["loihi2-fixed"]["agreement"] == 1.0  # bit-exact replay
    attack, _, transfer = results["attacks"]
    assert attack["n_attacked"] == 40 and list(attack["offline"]["success_by_budget"]) == ["5", "20", "100"]
    assert attack["device"]["loihi2-fixed"]["transfer_rate"] in (1.0, None)  # same quantized model
    assert attack["crafted_on"] is None and "other" in transfer["crafted_on"]
    assert _decode_images(report.read_text()) >= 8
    assert (tmp_path / "run" / "report.md").is_file() and (tmp_path / "run" / "config.toml").is_file()

    files = {p: p.stat().st_mtime_ns for p in (tmp_path / "run").rglob("*") if p.is_file()}
    before = (tmp_path / "run" / "digits" / "results.json").read_bytes()
    lines.clear()
    run_experiment(exp, tmp_path / "run", progress=False, echo=lines.append)
    assert {p: p.stat().st_mtime_ns for p in (tmp_path / "run").rglob("*") if p.is_file()} == files
    assert (tmp_path / "run" / "digits" / "results.json").read_bytes() == before
    assert sum("kept: up to date" in line for line in lines) == 10

    # reproducibility: the same experiment and seed from scratch elsewhere give byte-identical
    # adversarial spikes and the same results.json, up to the run directory's path (which a
    # transfer set's id hashes to name its source run)
    run_experiment(exp, tmp_path / "again", progress=False, echo=lambda line: None)

    def attack_files(root):
        return {re.sub(r"-[0-9a-f]{6}\.h5$", ".h5", str(p.relative_to(root))): p for p in root.rglob("attacks/*.h5")}

    first, second = attack_files(tmp_path / "run"), attack_files(tmp_path / "again")
    assert len(first) == 4 and first.keys() == second.keys()  # 2 attacks + random baseline on digits, 1 on other
    for key, path in first.items():
        with h5py.File(path) as a, h5py.File(second[key]) as b:
            assert a["adversarial"][()].tobytes() == b["adversarial"][()].tobytes(), key

    def normalised(text, root):
        return re.sub(r"_from_other-[0-9a-f]{6}", "_from_other", text.replace(str(root), "ROOT"))

    assert normalised((tmp_path / "again" / "digits" / "results.json").read_text(), tmp_path / "again") == \
        normalised(before.decode(), tmp_path / "run")
