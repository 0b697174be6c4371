"""Robust accuracy (harness evaluate): the stored verdict replays, and the trust flags fire."""
from __future__ import annotations

import json

import h5py
import numpy as np
import pytest

from harness.cli import main
from harness.device.backend import replay
from harness.errors import ConfigError, DataError
from harness.evaluation import evaluate as evaluate_module
from harness.evaluation.ensemble import load_ensemble
from harness.evaluation.evaluate import evaluate, parse_budgets
from harness.evaluation.record import load_evaluation
from harness.experiment.spec import load_experiment
from harness.store import read_h5
from harness.train import train_run

BUDGETS = [5, 10, 25, 50]


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    """digits-mlp trained for one epoch."""
    run = tmp_path_factory.mktemp("digits")
    train_run("digits-mlp", run, seed=0, epochs=1, progress=False)
    return run


@pytest.fixture(scope="module")
def quick(digits):
    """The quick ensemble on 24 rows, judged offline and on loihi2-fixed."""
    return evaluate(digits, "quick", ["loihi2-fixed"], BUDGETS, n=24, progress=False)


def _ensemble(tmp_path, text: str):
    path = tmp_path / "ensemble.toml"
    path.write_text(text)
    return path


def test_every_row_counted_broken_replays_from_the_file_alone(digits, quick):
    arrays, attrs = read_h5(quick, kind="evaluation")
    clean, labels, keys = arrays["clean"], arrays["labels"], arrays["sample_index"]
    robust, correct = arrays["loihi2-fixed/robust"], arrays["loihi2-fixed/clean_correct"]
    example, min_l0 = arrays["loihi2-fixed/example"], arrays["loihi2-fixed/min_l0"]
    broken = correct & ~robust[:, -1]
    assert broken.sum() >= 3  # the test means something
    out = replay(digits / "model" / "network.net", example[broken], "loihi2-fixed", sample_keys=keys[broken])
    assert (out.predictions != labels[broken]).all()
    l0 = (example[broken] != clean[broken]).reshape(broken.sum(), -1).sum(axis=1)
    assert (l0 == min_l0[broken]).all()
    for col, budget in enumerate(attrs["budgets"]):
        at_b = correct & ~robust[:, col]
        assert (min_l0[at_b] <= budget).all() and (min_l0[at_b] >= 0).all()
        assert (robust[:, col] == (correct & ((min_l0 < 0) | (min_l0 > budget)))).all()


def test_the_curve_falls_and_starts_at_clean_accuracy(quick):
    evaluation = load_evaluation(quick)
    for verdict in ("offline", "loihi2-fixed"):
        values = [r["k"] for r in evaluation.curve(verdict).values()]
        assert values == sorted(values, reverse=True)
    assert not evaluation.errors


def test_rerun_reuses_the_file(digits, quick):
    before = quick.stat().st_mtime_ns
    assert evaluate(digits, "quick", ["loihi2-fixed"], BUDGETS, n=24, progress=False) == quick
    assert quick.stat().st_mtime_ns == before


def test_a_weak_gradient_attack_before_random_flips_is_flagged(digits, tmp_path):
    weak = _ensemble(tmp_path, 'name = "weak"\n[[attacks]]\nmethod = "g2s"\niterations = 1\neta = 1e-4\n'
                               '[[attacks]]\nmethod = "random"\n')
    path = evaluate(digits, weak, [], [50, 100, 200, 400], n=24, progress=False)
    flags = load_evaluation(path).attrs["flags"]
    assert [f["code"] for f in flags if f["level"] == "warning"][:1] == ["weak-gradient"]
    assert "gradient attacks may be weak or masked here" in flags[0]["message"]


def test_a_curve_that_rises_is_refused(digits, quick, tmp_path, capsys):
    corrupt = digits / "evaluations" / "corrupt.h5"
    corrupt.write_bytes(quick.read_bytes())
    with h5py.File(corrupt, "r+") as f:
        robust = f["offline/robust"][()]
        row = int(np.flatnonzero(~robust[:, 0] & f["offline/clean_correct"][()])[0])
        robust[row, -1] = True
        f["offline/robust"][...] = robust
    with pytest.raises(DataError, match=f"rises with the budget at rows {row}"):
        load_evaluation(corrupt)
    corrupt.unlink()


def test_offline_and_device_disagreeing_on_a_bit_exact_profile_is_an_error(digits, monkeypatch, capsys):
    real = evaluate_module.DeviceJudge.predictions

    def altered(self, spikes, rows):
        preds = real(self, spikes, rows).copy()
        preds[rows == 3] = (preds[rows == 3] + 1) % 10
        return preds

    monkeypatch.setattr(evaluate_module.DeviceJudge, "predictions", altered)
    code = main(["evaluate", "--run", str(digits), "--ensemble", "quick", "--n", "8", "--budgets", "10,50",
                 "--no-progress"])
    out = capsys.readouterr().out
    assert code == 2
    assert "error: offline and device verdicts disagree on the bit-exact profile loihi2-fixed at rows 3 " in out


@pytest.mark.parametrize("budgets, message", [("10,x", "budgets must be integers >= 1"),
                                              ("0,10", "budgets must be integers >= 1"),
                                              ("10,10", "a budget appears twice")])
def test_bad_budgets_are_one_line(digits, budgets, message, capsys):
    assert main(["evaluate", "--run", str(digits), "--budgets", budgets]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


@pytest.mark.parametrize("text, message", [
    ('[[attacks]]\nmethod = "nope"\n', "unknown attack method 'nope'"),
    ('[[attacks]]\nmethod = "g2s-rsf"\nmatch = "x"\n', "'match' is not a setting of method 'g2s-rsf'"),
    ('[[attacks]]\nmethod = "g2s-rsf"\neta = -1\n', "'eta'"),
    ('[[attacks]]\nmethod = "energy"\n', "cannot join an ensemble"),
    ('[[attacks]]\nmethod = "random"\nmatch = "x"\n', "unknown key(s) match"),
    ('name = "x"\n', "needs at least one [[attacks]] table"),
])
def test_bad_ensembles_name_the_file_and_key(tmp_path, text, message):
    with pytest.raises(ConfigError) as info:
        load_ensemble(_ensemble(tmp_path, text))
    assert message in str(info.value) and "ensemble.toml" in str(info.value)


def test_unknown_ensemble_lists_the_shipped_ones():
    with pytest.raises(ConfigError, match="unknown ensemble 'fast'; available: quick, standard"):
        load_ensemble("fast")


def test_ensembles_run_gradient_attacks_first(tmp_path):
    ensemble = load_ensemble(_ensemble(tmp_path, '[[attacks]]\nmethod = "random"\n[[attacks]]\nmethod = "g2s"\n'))
    assert [m.method for m in ensemble.members] == ["g2s", "random"]
    assert parse_budgets("50, 10") == [10, 50]


def test_report_opens_with_the_headline_and_results_hold_the_curve(digits, quick, capsys):
    assert main(["report", "--run", str(digits), "--evaluation", quick.stem]) == 0
    results = json.loads((digits / "results.json").read_text())["robustness"]
    assert results["evaluation"] == quick.stem and results["budgets"] == BUDGETS
    device = results["loihi2-fixed"]["robust_accuracy_ci"]
    assert device["0"]["n"] == 24 and [device[str(b)]["k"] for b in BUDGETS] == sorted(
        [device[str(b)]["k"] for b in BUDGETS], reverse=True)
    report = (digits / "report.md").read_text()
    first = report.split("\n## ")[1]
    assert first.startswith("Robust accuracy") and "robust accuracy on loihi2-fixed at L0 <= 50: " in first
    assert "ensemble:" + quick.stem in (digits / "results.csv").read_text()


def test_report_refuses_an_unknown_evaluation(digits, quick, capsys):
    assert main(["report", "--run", str(digits), "--evaluation", "nope"]) == 2
    assert "--evaluation nope: no such evaluation" in capsys.readouterr().err


def test_experiment_evaluations_are_checked(tmp_path):
    path = tmp_path / "e.toml"
    path.write_text('name = "e"\n[[runs]]\nid = "d"\nmodel = "digits-mlp"\n[[evaluations]]\nensemble = "fast"\n')
    with pytest.raises(ConfigError, match=r"\[\[evaluations\]\] #1: 'ensemble': unknown ensemble 'fast'"):
        load_experiment(path)
    path.write_text('name = "e"\n[[runs]]\nid = "d"\nmodel = "digits-mlp"\n[[evaluations]]\nbudgets = [0]\n')
    with pytest.raises(ConfigError, match=r"'budgets': budgets must be integers >= 1"):
        load_experiment(path)


def test_compare_overlays_robust_accuracy(digits, quick, tmp_path, capsys):
    assert main(["report", "--run", str(digits), "--evaluation", quick.stem]) == 0
    assert main(["compare", str(digits), "--csv", str(tmp_path / "c.csv")]) == 0
    out = capsys.readouterr().out
    assert "| loihi2-fixed | L0 <= 50 |" in out.split("robust accuracy, worst case")[1]
    assert (tmp_path / "c-robust.png").read_bytes()[:4] == b"\x89PNG"


def test_query_attacks_ask_the_twin_under_the_clean_replay_proof_else_the_device(digits, tmp_path, monkeypatch):
    """The evaluation's clean replay is the twin oracle's proof; without it the device answers, with
    the same verdicts (the twin is proven to answer as the device does)."""
    ensemble = _ensemble(tmp_path, 'name = "q"\n[[attacks]]\nmethod = "sparse-rs"\nmax_flips = 25\nqueries = 20\n'
                                   '[[attacks]]\nmethod = "pointwise"\nqueries = 20\n')
    twin = load_evaluation(evaluate(digits, ensemble, ["loihi2-fixed"], [25], n=8, progress=False))
    twin_arrays = dict(twin.arrays)
    assert twin.attrs["query_oracle"] == {"oracle": "twin", "profile": "loihi2-fixed",
                                          "proof": "clean replay raster-exact on all 8 evaluated rows"}
    assert [step["rows_attacked"] for step in twin.attrs["cascade"]] == [8, 8] and not twin.errors
    assert (digits / "attacks" / "sparse-rs_u_b25_q20_p0.3_twin-loihi2-fixed_n8_s0.h5").exists()
    monkeypatch.setattr(evaluate_module, "mismatched_rows", lambda net, spikes, rasters: np.array([5]))
    device = evaluate(digits, ensemble, ["loihi2-fixed"], [25], n=8, progress=False, force=True)
    assert load_evaluation(device).attrs["query_oracle"]["proof"] == \
        "clean replay differs from the offline network at 1 of 8 rows"
    assert (digits / "attacks" / "pointwise_u_b2000_q20_device-loihi2-fixed_n8_s0.h5").exists()
    for key in ("loihi2-fixed/robust", "loihi2-fixed/example", "offline/min_l0"):
        assert read_h5(device, kind="evaluation")[0][key].tobytes() == twin_arrays[key].tobytes()


@pytest.mark.slow
def test_energy_attacks_have_their_own_table_and_no_success_row(tmp_path_factory):
    from harness.attacks import AttackConfig, run_attack, run_random_baseline
    from harness.report import write_run_report
    from harness.stages.replay import replay_sets

    run = tmp_path_factory.mktemp("energy")
    train_run("digits-mlp", run, seed=0, epochs=1, progress=False)
    sponge = run_attack(run, AttackConfig(loss="energy", energy_objective="synops", iterations=2, eta=0.05), n=12,
                        progress=False).stem
    baseline = run_random_baseline(run, sponge, progress=False).stem
    plain = run_attack(run, AttackConfig(iterations=2), n=12, progress=False).stem
    replay_sets(run, "loihi2-fixed", ["clean", sponge, baseline, plain], progress=False)
    report = write_run_report(run).with_suffix(".md").read_text()
    success = report.split("### Attack success and budget")[1].split("###")[0]
    device = report.split("### On the device")[1].split("###")[0]
    energy = report.split("### Energy attacks: what the chip spends")[1].split("###")[0]
    assert plain in success and sponge not in success and baseline not in success and sponge not in device
    for quantity in ("device energy (J)", "synaptic operations", "hidden-layer spikes (the network's own)"):
        row = next(line for line in energy.splitlines() if quantity in line)
        assert row.count("x [") == 2  # to clean and to random flips, each with its interval
