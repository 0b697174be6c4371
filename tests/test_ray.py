"""The Ray executor: a 3-seed study gives the local executor's artifacts; a task failure is
named with the other cells kept; SIGINT exits 130 with no Ray or Lava process left, and the
rerun finishes without redoing finished tasks. Slow: every Ray run starts a local Ray and two
task servers, each importing torch and Lava (about 5-6 s, 0.6 GB)."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import psutil
from test_interrupt import default_sigint
import pytest

pytest.importorskip("ray")

from harness.experiment import load_experiment, run_experiment  # noqa: E402

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parent.parent

STUDY = """
name = "seeds"
seeds = [0, 1, 2]
profiles = ["loihi2-fixed"]
budgets = [10, 50]
[[runs]]
id = "d"
model = "digits-mlp"
epochs = 1
[[attacks]]
label = "G2S+RSF"
method = "g2s-rsf"
n = 10
iterations = 3
"""


def _harness(*args: str) -> list[str]:
    return [sys.executable, "-m", "harness", *args]


@pytest.fixture(scope="module")
def study(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("study") / "seeds.toml"
    path.write_text(STUDY)
    return path


@pytest.fixture(scope="module")
def local_run(study, tmp_path_factory) -> Path:
    """The study run by the local executor."""
    root = tmp_path_factory.mktemp("local")
    run_experiment(load_experiment(study), root, progress=False, echo=lambda line: None)
    return root


def _plain(value, root: Path):
    """``value`` with run-directory paths made relative and timings (keys with 'seconds') dropped."""
    if isinstance(value, dict):
        return {k: _plain(v, root) for k, v in value.items() if "seconds" not in k}
    if isinstance(value, list):
        return [_plain(v, root) for v in value]
    return value.replace(str(root), "ROOT") if isinstance(value, str) else value


def _h5(path: Path, root: Path) -> dict:
    """Every dataset's bytes and every attribute (paths relative, timings dropped) of an HDF5 file."""
    out = {}
    with h5py.File(path, "r") as f:
        def visit(name, obj):
            attrs = {k: obj.attrs[k].tolist() if hasattr(obj.attrs[k], "tolist") else obj.attrs[k]
                     for k in obj.attrs}
            out[name] = (_plain(attrs, root), obj[()].tobytes() if isinstance(obj, h5py.Dataset) else None)
        visit("/", f)
        f.visititems(visit)
    return out


def assert_same_artifacts(ours: Path, theirs: Path) -> None:
    """Byte-identical datasets of every attack and replay file; identical results.json and model
    cards apart from timings."""
    files = sorted(p.relative_to(theirs) for p in theirs.glob("d-s*/**/*") if p.suffix in (".h5", ".json"))
    assert len([f for f in files if f.parts[1] == "attacks"]) == 3
    assert len([f for f in files if f.parts[1] == "device"]) == 6
    assert len([f for f in files if f.name == "results.json"]) == 3
    for name in files:
        if name.suffix == ".h5":
            assert _h5(ours / name, ours) == _h5(theirs / name, theirs), name
        else:
            assert _plain(json.loads((ours / name).read_text()), ours) == \
                _plain(json.loads((theirs / name).read_text()), theirs), name
    assert (ours / "report.html").is_file()


def test_ray_study_gives_the_local_executors_artifacts(study, local_run, tmp_path):
    root = tmp_path / "ray"
    done = subprocess.run(_harness("run", str(study), "--run", str(root), "--executor", "ray", "--workers", "2",
                                   "--no-progress"), capture_output=True, text=True, timeout=600, cwd=REPO)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "ray: 2 task server(s)" in done.stdout and done.stdout.count("[1/5] train") == 3
    assert "      report: done in" in done.stdout and "(report 1/1 done, plan 13/13)" in done.stdout
    assert_same_artifacts(root, local_run)


def failing_replay(inputs, **kwargs):
    """A stand-in replay task that fails like a broken device run."""
    from harness.errors import DeviceError

    raise DeviceError("loihi2-fixed: the Lava run failed (test)")


def test_ray_task_failure_names_the_cell_and_keeps_the_others(study, tmp_path, monkeypatch):
    from harness.experiment import TaskFailed, build_plan
    from harness.experiment.plan import Task
    from harness.experiment.ray_executor import RayExecutor

    exp = load_experiment(study)
    exp.runs = exp.runs[:2]
    exp.attacks[0].runs = ["d-s0", "d-s1"]
    plan = build_plan(exp, tmp_path, progress=False)
    broken = "replay/loihi2-fixed/d-s1"
    plan = [Task(t.id, t.stage, t.describe, failing_replay, t.deps, t.kwargs, t.cell) if t.id == broken else t
            for t in plan]
    # the task servers unpickle failing_replay from this module
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(Path(__file__).parent), os.environ.get("PYTHONPATH", "")]))
    lines: list[str] = []
    with pytest.raises(TaskFailed) as info:
        RayExecutor(workers=2).run(plan, lines.append)
    assert str(info.value).splitlines()[0].startswith("1 of 9 tasks failed (2 not run")
    assert str(info.value).splitlines()[1] == (f"  {broken} (stage replay, run d-s1): "
                                               "loihi2-fixed: the Lava run failed (test)")
    assert info.value.skipped == ["summarise/d-s1", "report"]
    assert (tmp_path / "d-s0" / "results.json").is_file()  # the other cell finished
    assert (tmp_path / "d-s0" / "device" / "loihi2-fixed" / "clean.h5").is_file()  # and its replays
    assert not (tmp_path / "d-s1" / "results.json").exists()
    assert any(line.startswith(f"      FAILED {broken}") for line in lines)


def _tree(pid: int) -> list[psutil.Process]:
    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []


def _replaying(tree: list[psutil.Process]) -> bool:
    """A task server has a child: the device watchdog's keeper, i.e. a Lava replay runs."""
    for proc in tree:
        try:
            if "harness.experiment.task_worker" in " ".join(proc.cmdline()) and proc.children():
                return True
        except psutil.Error:
            continue
    return False


def _alive(procs: list[psutil.Process]) -> list[str]:
    out = []
    for proc in procs:
        try:
            if proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE:
                out.append(f"{proc.pid} {' '.join(proc.cmdline())[:120]}")
        except psutil.Error:
            continue
    return out


def test_sigint_during_a_ray_study_leaves_no_process_and_the_rerun_keeps_finished_tasks(study, local_run,
                                                                                         tmp_path):
    root = tmp_path / "ray"
    cmd = _harness("run", str(study), "--run", str(root), "--executor", "ray", "--workers", "2", "--no-progress")
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO,
                            start_new_session=True, preexec_fn=default_sigint)
    seen: dict[int, psutil.Process] = {}
    try:
        deadline = time.monotonic() + 300
        while True:
            tree = _tree(proc.pid)
            seen.update({p.pid: p for p in tree})
            if _replaying(tree) and any(root.rglob("model/card.json")):  # a model is finished, a replay runs
                break
            assert proc.poll() is None, f"finished before a replay ran: {proc.communicate()}"
            assert time.monotonic() < deadline, "no replay started"
            time.sleep(0.05)
        time.sleep(0.5)
        seen.update({p.pid: p for p in _tree(proc.pid)})
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err[-3000:]
    assert "interrupted; finished artifacts are kept, rerun to resume" in err
    deadline = time.monotonic() + 10
    while _alive(list(seen.values())) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not _alive(list(seen.values())), "processes left behind"
    assert not [p for p in root.rglob("*") if p.name.endswith(".tmp")]
    finished = {p: p.stat().st_mtime_ns for p in root.rglob("*")  # train_state.pt: an epoch's resume point
                if p.suffix in (".h5", ".pt", ".net") and p.name != "train_state.pt"}
    assert finished, "nothing finished before the interrupt"

    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=REPO)
    assert done.returncode == 0, done.stderr[-3000:]
    assert {p: p.stat().st_mtime_ns for p in finished} == finished  # finished tasks were not redone
    assert "kept: up to date" in done.stdout
    assert_same_artifacts(root, local_run)
