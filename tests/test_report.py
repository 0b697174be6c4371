"""Summary (results.json), figures and report rendering on a small synthetic run directory.

The fixture writes a run directory exactly as docs/artifacts.md describes it: a tiny untrained
digits model (so the clean comparison with SLAYER runs for real) and hand-made attack and
replay files whose numbers every summary figure can be checked against by hand.
"""
from __future__ import annotations

import base64
import json
import os
import re
import shutil
import subprocess
from io import BytesIO
from pathlib import Path

import jsonschema
import numpy as np
import pytest

from harness.attacks import AttackRecord
from harness.errors import DataError, StageMissing
from harness.report import write_run_report
from harness.report.render import Figure, Section, Table, to_html, to_markdown
from harness.report.sections import Labels
from harness.report.studies import STUDIES, study_section
from harness.results import build_results, load_run, load_schema, validate_results, write_results
from harness.store import RunDir, write_h5, write_json

T = 4                   # time steps of the tiny model
N_ROWS = 6              # attacked rows: samples 0..5 of the test split
LAYERS = 2
PROFILE = "loihi2-fixed"
BUDGETS = (1, 3, 10)
TINY_SPEC = {"name": "tiny", "data": {"dataset": "digits", "steps": T, "input_shape": [1, 8, 8]},
             "neuron": {"threshold": 1.25, "current_decay": 0.25, "voltage_decay": 0.03},
             "layers": [{"type": "dense", "out": 12}, {"type": "dense", "out": 10}]}


def _replay_arrays(predictions, rasters, layer_scale: float) -> dict[str, np.ndarray]:
    """Device datasets for given predictions and output rasters (N, K, T)."""
    n = len(predictions)
    layer_counts = (np.full((n, LAYERS), 10) * layer_scale).astype(np.int64)
    return {"output_rasters": rasters, "output_counts": rasters.sum(-1).astype(np.int64),
            "predictions": np.asarray(predictions, np.int64), "layer_counts": layer_counts,
            "synops": layer_counts.sum(1) * 5, "energy_j": layer_counts.sum(1) * 1e-9}


def _write_replay(run: RunDir, input_id: str, arrays: dict) -> None:
    write_h5(run.device(PROFILE, input_id), arrays,
             {"profile": PROFILE, "network": str(run.network), "input": input_id, "wall_seconds": 0.5,
              "n_samples": len(arrays["predictions"]), "layer_names": ["layer 0", "layer 1"]}, kind="device")


def _write_attack(run: RunDir, attack_id: str, test, targeted: bool) -> AttackRecord:
    """Rows 0..5; rows 4, 5 misclassified before; successes on rows 0, 1, 2 with 1, 2, 8 flips; the
    failed row 3 met all-zero gradients and (targeted: stalls tracked, window 5) stalled."""
    labels = test.labels[:N_ROWS]
    clean = test.spikes[:N_ROWS]
    adv = clean.copy()
    l0 = np.array([1, 2, 8, 0, 0, 0])
    for row, flips in enumerate(l0):
        adv[row].reshape(-1)[:flips] ^= 1
    success = np.array([1, 1, 1, 0, 0, 0], bool)
    correct = np.array([1, 1, 1, 1, 0, 0], bool)
    targets = (labels + 1) % 10 if targeted else np.full(N_ROWS, -1)
    pred_clean = np.where(correct, labels, (labels + 2) % 10)
    record = AttackRecord(
        clean=clean, adversarial=adv, labels=labels, targets=targets, sample_index=np.arange(N_ROWS),
        pred_clean=pred_clean, pred_adv=np.where(success, (labels + 1) % 10, pred_clean), correct_before=correct,
        success=success, l0=l0, l0_before_reduction=l0 * 2, l0_at_success=np.where(success, l0 * 2, -1),
        iterations=np.array([1, 2, 3, 25, 0, 0]), rsf_iterations=np.array([0, 1, 2, 5, 0, 0]),
        zero_grad_iterations=np.array([0, 1, 2, 5, 0, 0]),
        stalled=np.array([0, 0, 0, 1, 0, 0], bool) if targeted else None,  # untargeted: stalls not tracked
        attrs={"attack_id": attack_id, "method": "g2s-rsf", "targeted": "random" if targeted else "",
               "params": {"iterations": 25, "gamma": 0.05}, "model": "tiny", "crafted_on": "here",
               "judged_on": "here", "seed": 0, "dataset": test.metadata(), **({"stall_window": 5} if targeted else {})})
    record.save(run.attack_path(attack_id))
    return record


def _build_run(root: Path) -> Path:
    """A run of a tiny untrained digits model: card, checkpoint, two attacks, one profile.

    The device's clean replay copies SLAYER's outputs except 2 predictions and 3 rasters; on
    the attacked rows the device gets sample 3 wrong when clean, and the adversarial replay
    fools rows 0 and 3 only (row 0: an offline success that transfers; row 1, 2: do not).
    """
    import torch

    from harness.stages.measure import offline_outputs
    from harness.models import build_network, spec_from_dict
    from harness.train import load_split

    spec = spec_from_dict(TINY_SPEC, "tiny spec")
    run = RunDir(root / "tiny")
    net = build_network(spec, seed=0).eval()
    run.model_dir.mkdir(parents=True)
    torch.save({"spec": spec.to_dict(), "state_dict": net.state_dict(), "seed": 3}, run.checkpoint)
    test = load_split(spec, "test", seed=3)
    write_json(run.card_file, {
        "model": "tiny", "spec": spec.to_dict(), "seed": 3, "epochs": 2, "steps": T, "train_accuracy": 0.9,
        "test_accuracy": 0.75, "dataset": {**test.metadata(), "path": None, "n_train": 1437, "n_test": len(test)}})
    offline = offline_outputs(net, test.spikes)
    pred, rasters = offline.predictions.copy(), offline.rasters.copy()
    pred[:2] = (test.labels[:2] + 1) % 10
    rasters[:3, 0, 0] ^= 1
    _write_replay(run, "clean", _replay_arrays(pred, rasters, 1.0))
    for attack_id, targeted in (("untargeted", False), ("targeted", True)):
        record = _write_attack(run, attack_id, test, targeted)
        clean_pred = record.labels.copy()
        clean_pred[3] = (clean_pred[3] + 1) % 10
        adv_pred = record.labels.copy()
        adv_pred[[0, 3]] = record.targets[[0, 3]] if targeted else (record.labels[[0, 3]] + 1) % 10
        no_raster = np.zeros((N_ROWS, 10, T), np.uint8)
        arrays = _replay_arrays(adv_pred, no_raster, 1.5)
        arrays.update({f"clean/{k}": v for k, v in _replay_arrays(clean_pred, no_raster, 1.0).items()})
        _write_replay(run, attack_id, {**arrays, "labels": record.labels, "targets": record.targets,
                                       "sample_index": record.sample_index})
    write_json(run.root / "ann" / "comparison_absolute_s0_c0_untargeted.json", _ann_comparison())
    return run.root


def _ann_comparison() -> dict:
    """An SNN vs ANN comparison in the layout of harness.attacks.ann.ann_comparison."""
    rows = [{"method": m, "eps": e, "eps_rate": e, "ann_accuracy": 0.5, "ann_success_rate": 0.1 * i + e,
             "median_equivalent_events": 40.0 * e, "to_snn": {"accuracy": 0.8, "success_rate": e / 2},
             **({"snn_success_at_equal_l0": 0.3} if m == "pgd" else {})}
            for i, m in enumerate(("fgsm", "bim", "pgd")) for e in (0.05, 0.2)]
    return {"settings": {"snn_attack": "untargeted", "eps": [0.05, 0.2], "eps_scale": "absolute", "seed": 0},
            "model": "tiny", "mean_rate": 0.3, "max_rate": 1.0,
            "clean": {"snn_accuracy": 0.9, "snn_accuracy_rate_coded": 0.85, "ann_accuracy": 0.95},
            "ann_white_box": rows,
            "snn_to_ann": {"attack_id": "untargeted", "rows": 6, "ann_accuracy_clean": 0.9, "snn_success_rate": 0.75,
                           "ann_success_rate": 0.2, "transfer_rate": 0.25, "median_l0": 2.0},
            "seconds": 1.5}


@pytest.fixture(scope="module")
def built_run(tmp_path_factory) -> Path:
    return _build_run(tmp_path_factory.mktemp("built"))


@pytest.fixture
def fake_run(built_run, tmp_path) -> Path:
    """A fresh copy of the synthetic run directory (tests may write into it)."""
    return Path(shutil.copytree(built_run, tmp_path / built_run.name))


def test_offline_summary_counts_only_correct_rows(fake_run):
    results = build_results(load_run(fake_run), budgets=BUDGETS)
    attack = {a["id"]: a for a in results["attacks"]}["untargeted"]
    assert attack["n_attacked"] == 6 and attack["n_correct_before"] == 4
    offline = attack["offline"]
    assert offline["success_rate"] == pytest.approx(3 / 4)
    assert offline["mean_l0"] == pytest.approx((1 + 2 + 8) / 3)
    assert offline["median_l0"] == 2
    assert offline["median_l0_before_reduction"] == 4
    assert offline["rsf_iterations"] == 0 + 1 + 2 + 5
    assert offline["success_by_budget"] == {"1": 0.25, "3": 0.5, "10": 0.75}
    assert attack["targeted"] is False and attack["target_mode"] is None and attack["crafted_on"] is None
    targeted = {a["id"]: a for a in results["attacks"]}["targeted"]
    assert targeted["targeted"] is True and targeted["target_mode"] == "random"


def test_clean_device_summary_compares_with_slayer(fake_run):
    results = build_results(load_run(fake_run), budgets=BUDGETS)
    clean = results["clean"]["device"][PROFILE]
    assert clean["n_samples"] == 360
    assert clean["agreement"] == pytest.approx(1 - 2 / 360)
    assert clean["raster_exact"] == pytest.approx(1 - 3 / 360)


def test_attack_device_summary_follows_the_device_definitions(fake_run):
    results = build_results(load_run(fake_run), budgets=BUDGETS)
    for attack in results["attacks"]:
        device = attack["device"][PROFILE]
        # correct on the device when clean: rows 0, 1, 2, 4, 5; fooled there: row 0 only
        assert device["n_correct_clean"] == 5
        assert device["success_rate"] == pytest.approx(1 / 5), attack["id"]
        # offline successes among them: rows 0, 1, 2; only row 0 fools the device
        assert device["transfer_rate"] == pytest.approx(1 / 3), attack["id"]
        assert device["accuracy"] == pytest.approx(4 / 6), attack["id"]
        assert device["activity_change"] == pytest.approx(1.5)
        assert device["energy_change"] == pytest.approx(1.5)
        assert device["success_by_budget"] == {"1": 0.2, "3": 0.2, "10": 0.2}


def test_ann_comparison_goes_into_results_without_timing(fake_run):
    results = build_results(load_run(fake_run), budgets=BUDGETS)
    (ann,) = results["ann"]
    assert ann["comparison"] == "comparison_absolute_s0_c0_untargeted" and "seconds" not in ann
    assert ann["snn_to_ann"]["transfer_rate"] == 0.25


@pytest.mark.parametrize("study", sorted(STUDIES))
def test_every_study_adds_its_table_and_figure(built_run, study):
    from PIL import Image

    art = load_run(built_run)
    section = study_section(study, {"tiny": (art, build_results(art, BUDGETS))}, Labels(untargeted="G2S+RSF"))
    assert section.title.startswith("Study: ") and section.tables and section.figures
    assert all(table.rows for table in section.tables)
    for fig in section.figures:
        Image.open(BytesIO(fig.png)).load()


def test_results_validate_and_are_written_once(fake_run):
    run = RunDir(fake_run)
    results = write_results(load_run(fake_run), budgets=BUDGETS)
    validate_results(json.loads(run.results.read_text()), run.results)
    assert results["seed"] == 3 and results["budgets"] == list(BUDGETS)
    digest = results["model"].pop("spec_digest")
    assert re.fullmatch(r"[0-9a-f]{64}", digest)  # the spec less the seed: tells variants of one model apart
    assert results["model"] == {"name": "tiny", "T": T, "train_accuracy": 0.9, "test_accuracy": 0.75,
                                "loss": "spike-rate", "surrogate": "slayer", "epochs": 2}
    before = run.results.stat().st_mtime_ns
    write_results(load_run(fake_run), budgets=BUDGETS)
    assert run.results.stat().st_mtime_ns == before


@pytest.mark.parametrize("path", [("seed",), ("model", "T"), ("clean", "offline", "accuracy"),
                                  ("attacks", 0, "offline", "success_by_budget"),
                                  ("attacks", 0, "device", PROFILE, "transfer_rate")])
def test_schema_rejects_a_missing_required_field(fake_run, path):
    results = build_results(load_run(fake_run), budgets=BUDGETS)
    validate_results(results, "synthetic")
    node = results
    for key in path[:-1]:
        node = node[key]
    del node[path[-1]]
    with pytest.raises(DataError, match=f"'{path[-1]}' is a required property"):
        validate_results(results, "synthetic")


def test_schema_rejects_a_rate_outside_0_1(fake_run):
    results = build_results(load_run(fake_run), budgets=BUDGETS)
    results["attacks"][0]["offline"]["success_rate"] = 1.5
    with pytest.raises(DataError, match="attacks/0/offline/success_rate"):
        validate_results(results, "synthetic")


def test_schema_lists_the_issue_fields():
    schema = load_schema()
    assert set(schema["required"]) >= {"schema_version", "seed", "versions", "dataset", "model", "clean", "attacks"}
    attack = schema["$defs"]["attack"]
    assert set(attack["required"]) >= {"id", "method", "targeted", "parameters", "n_attacked", "n_correct_before",
                                       "offline", "device"}
    jsonschema.Draft202012Validator.check_schema(schema)


def test_missing_card_names_the_command(tmp_path):
    with pytest.raises(StageMissing, match="harness train"):
        load_run(tmp_path)


def test_report_of_an_experiment_directory_points_at_its_runs(fake_run, capsys):
    from harness.cli import main

    (fake_run.parent / "config.toml").write_text('name = "x"\n')
    assert main(["report", "--run", str(fake_run.parent)]) == 2
    err = capsys.readouterr().err
    assert "is an experiment directory" in err and str(fake_run) in err


def test_report_cli_writes_results_and_report(fake_run, capsys):
    from harness.cli import main

    assert main(["report", "--run", str(fake_run), "--budgets", "3", "1"]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == f"report: {fake_run / 'report.html'}"
    assert json.loads((fake_run / "results.json").read_text())["budgets"] == [1, 3]


def test_markdown_and_html_share_the_content():
    png = _tiny_png()
    sections = [Section("Result", ["A `code` & <b>text</b>."], [Table(["a", "b|c"], [["1", "2"]], "cap")],
                        [Figure("fig-1", png, "caption one")])]
    md = to_markdown("Title", sections)
    assert "![caption one](figures/fig-1.png)" in md and "| a | b\\|c |" in md
    page = to_html("Title", sections)
    assert "<code>code</code> &amp; &lt;b&gt;text&lt;/b&gt;." in page
    assert base64.b64encode(png).decode() in page


def _tiny_png() -> bytes:
    from PIL import Image

    buffer = BytesIO()
    Image.new("RGB", (2, 2), "red").save(buffer, format="PNG")
    return buffer.getvalue()


def _embedded_images(page: str) -> list[str]:
    return re.findall(r"<img [^>]*src=\"([^\"]*)\"", page)


@pytest.fixture(scope="module")
def rendered(built_run, tmp_path_factory) -> Path:
    """A copy of the synthetic run with its report written once; the path of report.html."""
    run = Path(shutil.copytree(built_run, tmp_path_factory.mktemp("rendered") / built_run.name))
    return write_run_report(run, budgets=BUDGETS)


def test_report_embeds_every_figure_as_a_decodable_png(rendered):
    from PIL import Image

    fake_run = rendered.parent
    page = rendered.read_text()
    sources = _embedded_images(page)
    assert len(sources) == len(list((fake_run / "figures").glob("*.png"))) >= 7
    for src in sources:
        assert src.startswith("data:image/png;base64,"), src[:40]
        image = Image.open(BytesIO(base64.b64decode(src.split(",", 1)[1])))
        image.load()
        assert image.width > 100 and image.height > 100
    assert "http://" not in page and "https://" not in page  # nothing to fetch
    md = (fake_run / "report.md").read_text()
    for name in re.findall(r"\]\((figures/[^)]+\.png)\)", md):
        assert (fake_run / name).is_file()


def test_rerendering_an_unchanged_report_touches_no_file(rendered):
    fake_run = rendered.parent
    files = sorted(p for p in fake_run.rglob("*") if p.is_file())
    stamps = {p: p.stat().st_mtime_ns for p in files}
    write_run_report(fake_run, budgets=BUDGETS)
    assert {p: p.stat().st_mtime_ns for p in sorted(p for p in fake_run.rglob("*") if p.is_file())} == stamps


CHROMIUM = shutil.which("chromium") or ("/usr/bin/chromium" if os.path.exists("/usr/bin/chromium") else None)


@pytest.mark.skipif(CHROMIUM is None, reason="headless Chromium not installed (optional in CI)")
def test_headless_chromium_renders_the_report(rendered, tmp_path):
    from PIL import Image

    html_path = rendered
    shot = tmp_path / "shot.png"
    subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync", "--no-first-run",
                    f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1200,2000",
                    f"--screenshot={shot}", html_path.resolve().as_uri()],
                   check=True, capture_output=True, timeout=120)
    image = np.asarray(Image.open(shot).convert("L"))
    assert image.shape == (2000, 1200)
    # a rendered report is not a blank page: text and figures give dark pixels
    assert (image < 128).mean() > 0.005


def test_threshold_study_pools_seeds_and_keeps_attacks_apart_that_differ_only_in_mode(built_run):
    """Study 3's attacks differ in threshold mode alone: each keeps its own row and line, the
    seeds of a variant are pooled (k/n summed) and a raised threshold is tested against the trained one."""
    import copy

    art = load_run(built_run)
    base = build_results(art, BUDGETS)
    untargeted = next(a for a in base["attacks"] if a["id"] == "untargeted")
    labels = Labels(untargeted="G2S+RSF")
    attacks = [untargeted]
    for mode in ("scale-surrogate", "fixed-surrogate"):
        raised = copy.deepcopy(untargeted)
        raised["id"] = f"raised-{mode}"
        raised["parameters"] = {**raised["parameters"], "attack_threshold": 9.0, "threshold_mode": mode}
        art.attacks[raised["id"]] = art.attacks["untargeted"]
        labels[raised["id"]] = f"G2S+RSF, threshold 9, {mode}"
        attacks.append(raised)
    runs = {}
    for seed in (0, 1):
        results = copy.deepcopy({**base, "attacks": attacks})
        results["seed"] = seed
        runs[f"tiny-s{seed}"] = (art, results)
    section = study_section("threshold", runs, labels)
    pooled, per_run = section.tables
    assert len(pooled.rows) == 3 and len(per_run.rows) == 6
    k, n = untargeted["offline"]["success_rate_ci"]["k"], untargeted["offline"]["success_rate_ci"]["n"]
    by_attack = {row[1]: row for row in pooled.rows}
    assert set(by_attack) == {"G2S+RSF", "G2S+RSF, threshold 9, scale-surrogate", "G2S+RSF, threshold 9, fixed-surrogate"}
    assert all(row[0].endswith("(tiny)") and row[2] == "2" for row in pooled.rows)  # one variant, two seeds
    assert all(f"{2 * k}/{2 * n}" in row[4] for row in pooled.rows)
    assert by_attack["G2S+RSF"][5] == "" and "+0.0 pt, p = 1" in by_attack["G2S+RSF, threshold 9, fixed-surrogate"][5]
    assert {row[2] for row in per_run.rows} == set(by_attack)
