"""The package's shape: import layering without cycles, one place that opens a run, one reuse rule,
a profile loaded once per replay (docs/architecture.md)."""
from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pytest

from harness import cli

PACKAGE = Path(__file__).resolve().parent.parent / "harness"


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(p): p for p in PACKAGE.rglob("*.py")}


def _resolve(module: str, is_package: bool, node: ast.ImportFrom) -> str:
    """The absolute name of ``from <level dots><node.module> import ...`` inside ``module``."""
    if node.level == 0:
        return node.module or ""
    base = module.split(".") if is_package else module.split(".")[:-1]
    base = base[:len(base) - node.level + 1]
    return ".".join(base + ([node.module] if node.module else []))


def _runtime_nodes(tree: ast.AST):
    """Every node of ``tree`` except those under ``if TYPE_CHECKING:`` (imports for annotations only)."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.If) and ast.unparse(node.test) in ("TYPE_CHECKING", "typing.TYPE_CHECKING"):
            yield from (n for child in node.orelse for n in [child, *_runtime_nodes(child)])
            continue
        yield node
        yield from _runtime_nodes(node)


def imports_of(module: str) -> set[str]:
    """harness modules imported by ``module`` when it runs (module level and inside functions)."""
    path = MODULES[module]
    out = set()
    for node in _runtime_nodes(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = _resolve(module, path.name == "__init__.py", node)
            names = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in MODULES else base for alias in node.names]
        else:
            continue
        out |= {name for name in names if name in MODULES and name != module}
    return out


GRAPH = {module: imports_of(module) for module in MODULES}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on_stack, out = {}, {}, [], set(), []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_no_import_cycle_in_the_package():
    assert _cycles(GRAPH) == []


def test_no_import_cycle_between_the_packages():
    """Sub-packages and top-level modules (harness.attacks, harness.runs, ...) form layers too."""
    def unit(module: str) -> str:
        return ".".join(module.split(".")[:2])

    units: dict[str, set[str]] = {}
    for module, imports in GRAPH.items():
        units.setdefault(unit(module), set()).update(unit(i) for i in imports if unit(i) != unit(module))
    assert _cycles(units) == []


def test_the_cycle_detector_finds_a_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_the_device_backend_knows_nothing_of_attacks_runs_or_stages():
    upper = ("harness.attacks", "harness.runs", "harness.stages", "harness.experiment", "harness.results",
             "harness.report", "harness.train")
    offending = {module: sorted(i for i in imports if i.startswith(upper))
                 for module, imports in GRAPH.items() if module.startswith("harness.device")}
    assert {m: i for m, i in offending.items() if i} == {}


def _calls(name: str) -> dict[str, int]:
    """module -> number of calls of a function called ``name``."""
    counts = {}
    for module, path in MODULES.items():
        tree = ast.parse(path.read_text())
        n = sum(isinstance(node, ast.Call) and getattr(node.func, "id", getattr(node.func, "attr", None)) == name
                for node in ast.walk(tree))
        if n:
            counts[module] = n
    return counts


def test_only_runs_loads_a_checkpoint_or_reads_a_card():
    assert set(_calls("load_checkpoint")) == {"harness.runs"}
    readers = {module for module, path in MODULES.items()
               for node in ast.walk(ast.parse(path.read_text()))
               if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "read_json"
               and "card" in ast.unparse(node.args[0] if node.args else node)}
    assert readers == {"harness.runs"}
    assert not [m for m, p in MODULES.items() if m != "harness.store" and '"card.json"' in p.read_text()]


def test_one_reuse_mechanism():
    """Every stage that keeps an existing artifact decides it through store.cached."""
    users = set(_calls("cached"))
    assert {"harness.train", "harness.attacks.runner", "harness.attacks.ann.model", "harness.attacks.ann.compare",
            "harness.stages.replay"} <= users
    assert not [m for m, p in MODULES.items() if "_up_to_date" in p.read_text() or "_existing(" in p.read_text()]


def _fake_replay(network_file, spikes, profile, **options):
    from harness.device.output import DeviceOutput

    n, steps = len(spikes), spikes.shape[-1]
    zeros = np.zeros(n, dtype=np.int64)
    return DeviceOutput(rasters=np.zeros((n, 10, steps), np.uint8), counts=np.zeros((n, 10), np.int64),
                        predictions=zeros - 1, layer_counts=np.zeros((n, 2), np.int64), input_spikes=zeros,
                        synops=zeros, neuron_updates=zeros, energy_j=np.zeros(n), layer_names=["a", "b"],
                        wall_seconds=0.0, lanes=1, profile=profile, sample_mode="fresh")


def test_a_profile_is_loaded_once_per_replay(tmp_path, monkeypatch):
    import harness.device.profiles as profiles

    loads = []
    real = profiles.load_profile
    monkeypatch.setattr(profiles, "load_profile", lambda name: loads.append(name) or real(name))
    monkeypatch.setattr("harness.stages.replay.replay", _fake_replay)
    network = Path(__file__).resolve().parent.parent / ".venv/lib/python3.10/site-packages/tests/lava/lib/dl/netx/tiny.net"
    np.save(tmp_path / "x.npy", np.zeros((3, 3, 8, 8, 5), np.uint8))
    assert cli.main(["replay", "--network", str(network), "--input", str(tmp_path / "x.npy"), "--profile",
                     "loihi2-fixed", "--out", str(tmp_path / "o.h5"), "--no-progress"]) == 0
    assert loads == ["loihi2-fixed"]


@pytest.mark.slow
def test_a_profile_is_loaded_once_per_replay_of_a_run(tmp_path, monkeypatch):
    import harness.device.profiles as profiles
    from harness.train import train_run

    train_run("digits-mlp", tmp_path / "r", epochs=1, progress=False)
    loads = []
    real = profiles.load_profile
    monkeypatch.setattr(profiles, "load_profile", lambda name: loads.append(name) or real(name))
    monkeypatch.setattr("harness.stages.replay.replay", _fake_replay)
    assert cli.main(["replay", "--run", str(tmp_path / "r"), "--profile", "loihi2-fixed", "--no-progress"]) == 0
    assert loads == ["loihi2-fixed"]
