"""Grids in experiment files (seeds, model lists, attack setting lists), plan progress and task
failures of the local executor. Fast: nothing is trained."""
from __future__ import annotations

from pathlib import Path

import pytest
import tomli

from harness.errors import ConfigError, DataError
from harness.experiment import LocalExecutor, Task, TaskFailed, build_plan, load_experiment, write_config
from harness.experiment.executor import PlanState
from harness.experiment.tasks import TaskResult

RUNS = """
name = "grid"
{top}
[[runs]]
id = "a"
model = "digits-mlp"
{run}
"""


def _load(tmp_path: Path, text: str, data: Path | None = None):
    path = tmp_path / "exp.toml"
    path.write_text(text)
    return load_experiment(path, data=data)


def test_top_level_seeds_expand_every_run_without_a_seed(tmp_path):
    exp = _load(tmp_path, RUNS.format(top="seeds = [0, 2, 1]", run="") + '[[runs]]\nid = "b"\nmodel = "digits-mlp"\n'
                + 'seed = 7\n')
    assert [(r.id, r.seed, r.group) for r in exp.runs] == [("a-s0", 0, "a"), ("a-s2", 2, "a"), ("a-s1", 1, "a"),
                                                            ("b", 7, None)]


def test_run_seeds_and_model_lists_expand_in_order(tmp_path):
    exp = _load(tmp_path, RUNS.format(top="", run="seeds = [3, 4]").replace(
        'model = "digits-mlp"', 'model = ["digits-mlp", "nmnist-mlp"]'), data=tmp_path)
    assert [(r.id, r.model, r.seed) for r in exp.runs] == [
        ("a-digits-mlp-s3", "digits-mlp", 3), ("a-digits-mlp-s4", "digits-mlp", 4),
        ("a-nmnist-mlp-s3", "nmnist-mlp", 3), ("a-nmnist-mlp-s4", "nmnist-mlp", 4)]
    assert {r.group for r in exp.runs} == {"a"}


def test_attack_lists_expand_into_labelled_tables_on_every_cell(tmp_path):
    exp = _load(tmp_path, RUNS.format(top="seeds = [0, 1]", run="") + """
[[attacks]]
label = "sparse"
method = "g2s-rsf"
eta = [1.0, 0.05]
iterations = [25, 100]
reduce = true
[[attacks]]
method = "random"
label = "random"
reference = "sparse"
""")
    labels = [a.label for a in exp.attacks]
    assert labels[:4] == ["sparse (eta=1.0, iterations=25)", "sparse (eta=1.0, iterations=100)",
                          "sparse (eta=0.05, iterations=25)", "sparse (eta=0.05, iterations=100)"]
    assert [(a.config.eta, a.config.iterations, a.config.reduce) for a in exp.attacks[:4]] == [
        (1.0, 25, True), (1.0, 100, True), (0.05, 25, True), (0.05, 100, True)]
    # a random baseline of a grid: one per combination, at that combination's L0
    assert labels[4:] == [f"random{label[len('sparse'):]}" for label in labels[:4]]
    assert [a.reference for a in exp.attacks[4:]] == labels[:4]
    assert all(a.runs == ["a-s0", "a-s1"] for a in exp.attacks) and {a.group for a in exp.attacks} == {"sparse",
                                                                                                       "random"}


def test_targeted_list_labels_and_untouched_tables(tmp_path):
    exp = _load(tmp_path, RUNS.format(top="", run="") + """
[[attacks]]
method = "g2s"
targeted = ["every-other", "random"]
[[attacks]]
method = "g2s"
""")
    assert [(a.label, a.targeted, a.group) for a in exp.attacks] == [
        ("g2s (targeted=every-other)", "every-other", "g2s"), ("g2s (targeted=random)", "random", "g2s"),
        ("g2s untargeted", None, None)]


def test_plan_ids_are_stable_and_name_the_cells(tmp_path):
    text = RUNS.format(top='seeds = [0, 1]\nprofiles = ["loihi2-fixed"]', run="") + \
        '[[attacks]]\nlabel = "G"\nmethod = "g2s"\nn = 4\niterations = [2, 3]\n'
    first, second = (build_plan(_load(tmp_path, text), tmp_path / "out") for _ in range(2))
    assert [t.id for t in first] == [t.id for t in second]
    ids = [t.id for t in first]
    assert ids[:2] == ["train/a-s0", "train/a-s1"] and "attack/a-s1/G (iterations=3)" in ids
    assert "replay/loihi2-fixed/a-s0" in ids and ids[-1] == "report"
    assert {t.cell for t in first if t.id != "report"} == {"a-s0", "a-s1"}


def test_run_references_name_a_group_or_one_cell(tmp_path):
    base = RUNS.format(top="", run="seeds = [0, 1]") + '[[runs]]\nid = "b"\nmodel = "digits-mlp"\n'
    exp = _load(tmp_path, base + '[[attacks]]\nmethod = "g2s"\nruns = ["a"]\n[[attacks]]\nmethod = "g2s"\n'
                'label = "t"\nruns = ["b"]\ncrafted_on = "a-s1"\n[[ann]]\nruns = ["a-s0"]\n')
    assert exp.attacks[0].runs == ["a-s0", "a-s1"] and exp.attacks[1].crafted_on == "a-s1"
    assert exp.ann[0].runs == ["a-s0"]
    with pytest.raises(ConfigError, match=r"\[\[attacks\]\] #1: crafted_on 'a' stands for 2 runs \(a-s0, a-s1\)"):
        _load(tmp_path, base + '[[attacks]]\nmethod = "g2s"\nruns = ["b"]\ncrafted_on = "a"\n')


@pytest.mark.parametrize("top, run, tables, message", [
    ("seeds = []", "", "", r"exp.toml: 'seeds' is an empty list"),
    ("seeds = [1, 1]", "", "", r"exp.toml: 'seeds' lists a value twice"),
    ('seeds = [0, "x"]', "", "", r"exp.toml: 'seeds' must be a list of integers >= 0"),
    ("", "seed = 1\nseeds = [2]", "", r"\[\[runs\]\] #1: give 'seed' or 'seeds', not both"),
    ("", "seeds = [-1]", "", r"\[\[runs\]\] #1: 'seeds' must be a list of integers >= 0"),
    ("", "", '[[attacks]]\nmethod = "g2s"\neta = []\n', r"\[\[attacks\]\] #1: 'eta' is an empty list"),
    ("", "", '[[attacks]]\nmethod = "g2s-rsf"\ngamma = [0.1, 2.0]\n', r"\[\[attacks\]\] #1: 'gamma' must be in \(0, 1\]"),
    ("", "", '[[attacks]]\nmethod = "g2s"\nruns = ["z"]\n', r"\[\[attacks\]\] #1: run 'z' is not one of"),
    ("", "", '[[attacks]]\nmethod = "g2s"\nlabel = 3\n', r"\[\[attacks\]\] #1: 'label' must be a string"),
])
def test_grid_errors_name_the_file_table_and_key(tmp_path, top, run, tables, message):
    with pytest.raises(ConfigError, match=message) as info:
        _load(tmp_path, RUNS.format(top=top, run=run) + tables)
    assert str(info.value).startswith(str(tmp_path / "exp.toml"))


def test_model_lists_are_checked(tmp_path):
    with pytest.raises(ConfigError, match=r"\[\[runs\]\] #1: 'model' lists a value twice"):
        _load(tmp_path, RUNS.format(top="", run="").replace('"digits-mlp"', '["digits-mlp", "digits-mlp"]'))
    with pytest.raises(ConfigError, match="unknown model 'nope'"):
        _load(tmp_path, RUNS.format(top="", run="").replace('"digits-mlp"', '["digits-mlp", "nope"]'))
    with pytest.raises(ConfigError, match=r"#2: run ids must be unique; 'a' is used twice"):
        _load(tmp_path, RUNS.format(top="seeds = [0]", run="") + '[[runs]]\nid = "a"\nmodel = "digits-mlp"\n')
    with pytest.raises(DataError, match="N-MNIST data folder"):  # a model list is checked cell by cell
        path = tmp_path / "exp.toml"
        path.write_text(RUNS.format(top="", run="").replace('"digits-mlp"', '["digits-mlp", "nmnist-mlp"]'))
        load_experiment(path, data=tmp_path / "missing")


def test_config_toml_records_each_cell_and_its_group(tmp_path):
    exp = _load(tmp_path, RUNS.format(top="seeds = [0, 1]", run="") + '[[attacks]]\nmethod = "g2s"\nn = [4, 8]\n')
    write_config(exp, tmp_path / "out")
    config = tomli.loads((tmp_path / "out" / "config.toml").read_text())
    assert [(r["id"], r["seed"], r["group"]) for r in config["runs"]] == [("a-s0", 0, "a"), ("a-s1", 1, "a")]
    assert [(a["label"], a["n"], a["group"]) for a in config["attacks"]] == [
        ("g2s untargeted (n=4)", 4, "g2s untargeted"), ("g2s untargeted (n=8)", 8, "g2s untargeted")]


# ------------------------------------------------------------------ executor: progress and failures
def write_task(path: Path, text: str, inputs) -> TaskResult:
    """A task writing ``text`` (and its inputs' outputs) to ``path``."""
    path.write_text(text + "".join(f"+{r.output.name}" for r in inputs.values()))
    return TaskResult(path, f"wrote {path.name}")


def failing_task(message: str, inputs) -> TaskResult:
    from harness.errors import DataError

    raise DataError(message)


def buggy_task(inputs) -> TaskResult:
    return {}["missing"]


def fake_plan(tmp_path: Path) -> list[Task]:
    """Two cells (x, y): a train-like task and a dependant each; y's first task fails; a report."""
    def write(task_id, stage, cell, deps=()):
        return Task(task_id, stage, task_id, write_task, tuple(deps), {"path": tmp_path / task_id.replace("/", "_"),
                                                                       "text": task_id}, cell=cell)
    return [write("train/x", "train", "x"),
            Task("train/y", "train", "train y", failing_task, (), {"message": "y.h5: no such file"}, cell="y"),
            write("attack/x/a", "attack", "x", ["train/x"]),
            write("attack/y/a", "attack", "y", ["train/y"]),
            Task("attack/x/b", "attack", "bug", buggy_task, ("train/x",), {}, cell="x"),
            write("report", "report", None, ["attack/x/a", "attack/y/a"])]


def test_local_executor_keeps_other_cells_and_names_each_failure(tmp_path):
    lines: list[str] = []
    with pytest.raises(TaskFailed) as info:
        LocalExecutor().run(fake_plan(tmp_path), lines.append)
    message = str(info.value)
    assert message.splitlines()[0] == ("2 of 6 tasks failed (2 not run: they need a failed task's output); "
                                       "the other tasks finished and their artifacts are kept:")
    assert "  train/y (stage train, run y): y.h5: no such file" in message
    assert "  attack/x/b (stage attack, run x): KeyError: 'missing'" in message
    assert [t.id for t, _, _ in info.value.failures] == ["train/y", "attack/x/b"]
    assert info.value.failures[1][2].startswith("Traceback") and info.value.failures[0][2] == ""
    assert info.value.skipped == ["attack/y/a", "report"]
    assert (tmp_path / "attack_x_a").read_text() == "attack/x/a+train_x"  # the other cell finished
    assert not (tmp_path / "attack_y_a").exists() and not (tmp_path / "report").exists()
    assert any(line.startswith("      FAILED train/y (stage train, run y): y.h5") for line in lines)


def test_progress_lines_count_tasks_per_stage_and_plan(tmp_path):
    plan = [t for t in fake_plan(tmp_path) if t.id in ("train/x", "attack/x/a")]
    lines: list[str] = []
    results = LocalExecutor().run(plan, lines.append)
    assert set(results) == {"train/x", "attack/x/a"}
    assert lines[0] == "[1/5] train train/x ... (train 0/1 done, plan 0/2)"
    assert lines[1].startswith("      train/x: done in 0 s; wrote train_x (train 1/1 done, plan 1/2)")
    assert lines[3].endswith("(attack 1/1 done, plan 2/2)")


def test_plan_state_starts_a_task_only_after_its_dependencies(tmp_path):
    state = PlanState(fake_plan(tmp_path))
    assert [t.id for t in state.ready()] == ["train/x", "train/y"]
    first = state.ready()[0]
    state.start(first)
    assert [t.id for t in state.ready()] == ["train/y"]  # attack/x/* wait for train/x
    state.finish(first, TaskResult(tmp_path))
    assert [t.id for t in state.ready()] == ["train/y", "attack/x/a", "attack/x/b"]
    with pytest.raises(ValueError, match="plan out of order at attack/x/a"):
        PlanState(fake_plan(tmp_path)[2:])


def test_the_grid_example_of_the_docs_loads_as_documented(tmp_path):
    import re

    docs = (Path(__file__).resolve().parent.parent / "docs" / "experiments.md").read_text()
    example = re.search(r"## Grids.*?```toml\n(.*?)```", docs, re.S).group(1)
    exp = _load(tmp_path, 'name = "doc"\n' + example, data=tmp_path)
    assert [r.id for r in exp.runs][::3] == ["mlp-digits-mlp-s0", "mlp-nmnist-mlp-s0", "fixed"]
    assert exp.runs[-1].seed == 7 and len(exp.runs) == 7
    labels = [a.label for a in exp.attacks]
    assert len(labels) == 8 and labels[1] == "G2S+RSF (eta=1.0, iterations=100)"
    assert labels[4] == "random (eta=1.0, iterations=25)"
    assert exp.attacks[5].reference == "G2S+RSF (eta=1.0, iterations=100)"


@pytest.mark.parametrize("options, message", [
    (["--workers", "2"], "--address and --workers need --executor ray"),
    (["--address", "auto"], "--address and --workers need --executor ray"),
    (["--executor", "ray", "--workers", "0"], "--workers must be >= 1, got 0"),
])
def test_cli_executor_options_are_checked_in_one_line(tmp_path, capsys, options, message):
    from harness.cli import main

    path = tmp_path / "exp.toml"
    path.write_text(RUNS.format(top="", run=""))
    assert main(["run", str(path), "--run", str(tmp_path / "out"), *options]) == 2
    assert capsys.readouterr().err.strip() == f"harness run: error: {message}"
    assert not (tmp_path / "out").exists()


def test_a_twin_oracle_query_attack_waits_for_one_clean_replay_per_run(tmp_path):
    text = ('name = "q"\n[[runs]]\nid = "a"\nmodel = "digits-mlp"\nseeds = [0, 1]\n'
            '[[attacks]]\nmethod = "sparse-rs"\nqueries = 10\n[[attacks]]\nmethod = "pointwise"\n'
            '[[attacks]]\nmethod = "rsf"\n[[attacks]]\nmethod = "sparse-rs"\noracle = "device"\nlabel = "dev"\n')
    (tmp_path / "q.toml").write_text(text)
    plan = {t.id: t for t in build_plan(load_experiment(tmp_path / "q.toml"), tmp_path / "run")}
    proofs = sorted(t for t in plan if t.startswith("proof/"))
    assert proofs == ["proof/loihi2-fixed/a-s0", "proof/loihi2-fixed/a-s1"]
    assert "proof/loihi2-fixed/a-s0" in plan["attack/a-s0/sparse-rs untargeted"].deps
    assert "proof/loihi2-fixed/a-s0" in plan["attack/a-s0/pointwise untargeted"].deps
    assert not any(d.startswith("proof/") for d in plan["attack/a-s0/rsf untargeted"].deps + plan["attack/a-s0/dev"].deps)
