"""The retiming curve of ``harness evaluate --retime-budgets`` (issue 24): robust accuracy per timing
budget D, kept apart from the flip curve, judged offline and on the device profile."""
from __future__ import annotations

import numpy as np
import pytest

from harness.cli import main
from harness.evaluation.evaluate import evaluate
from harness.evaluation.record import format_summary, load_evaluation
from harness.runs import open_run
from test_evaluation import digits  # noqa: F401  (digits-mlp trained for one epoch)


@pytest.fixture(scope="module")
def retimed(digits, tmp_path_factory):
    ensemble = tmp_path_factory.mktemp("ens") / "random.toml"
    ensemble.write_text('name = "random"\n[[attacks]]\nmethod = "random"\n')
    return load_evaluation(evaluate(digits, ensemble, ["loihi2-fixed"], [25], n=8, progress=False,
                                    retime_budgets=[3, 1, 2]))


def test_the_retiming_curve_falls_with_d_and_matches_the_attacks_examples(digits, retimed):
    assert retimed.retime_budgets == [1, 2, 3] and not retimed.errors
    offline = retimed.retime_curve("offline")
    values = [offline[d]["k"] for d in ("1", "2", "3")]
    assert values == sorted(values, reverse=True) and values[0] <= retimed.curve("offline")["0"]["k"]
    assert all(r["n"] == 8 and r["low"] <= r["value"] <= r["high"] for r in offline.values())
    assert retimed.retime_curve("loihi2-fixed") == offline  # the bit-exact profile confirms every verdict
    run = open_run(digits)
    fooled = np.zeros(8, bool)
    for col, d in enumerate((1, 2, 3)):
        record = run.attack(f"retime_inf{d}_k20_n8_s0")
        fooled |= record.success
        robust = retimed.arrays["retime/offline/robust"][:, col]
        assert np.array_equal(robust, record.correct_before & ~fooled)
    assert "retiming D <= 3" in format_summary(retimed)
    assert list(retimed.curve("offline")) == ["0", "25"]  # the flip curve holds flip budgets only


@pytest.mark.parametrize("value, message", [("0,1", "timing budgets must be integers >= 1"),
                                            ("1,x", "timing budgets must be integers >= 1"),
                                            ("2,2", "a timing budget appears twice"),
                                            ("1,99", "D must be < the input's")])
def test_bad_timing_budgets_are_one_line(digits, value, message, capsys):
    assert main(["evaluate", "--run", str(digits), "--retime-budgets", value, "--profile", "loihi2-fixed"]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_results_and_the_report_carry_the_retiming_curve_apart_from_the_judges(retimed):
    from harness.report.robustness import robustness_sections
    from harness.results import robustness_entry
    from harness.results_model import Robustness

    entry = robustness_entry(retimed)
    assert entry.retiming.budgets == [1, 2, 3] and set(entry.verdicts()) == {"offline", "loihi2-fixed"}
    assert entry.retiming.verdicts["loihi2-fixed"]["2"].k == retimed.retime_curve("loihi2-fixed")["2"]["k"]
    again = Robustness.build(entry.to_dict(), "robustness")  # the JSON round trip keeps it out of the judges
    assert set(again.verdicts()) == {"offline", "loihi2-fixed"} and again.retiming.to_dict() == entry.retiming.to_dict()

    class Results:  # the one field robustness_sections reads besides the run's name
        run, robustness = "digits", entry

    (section,) = robustness_sections(Results())
    assert any("every shift <= 3 steps" in str(table.rows) for table in section.tables)


def test_a_retiming_curve_that_rises_is_refused(retimed, tmp_path):
    import h5py

    from harness.errors import DataError

    corrupt = tmp_path / "corrupt.h5"
    corrupt.write_bytes(retimed.path.read_bytes())
    with h5py.File(corrupt, "r+") as f:
        robust = f["retime/offline/robust"][()]
        row = int(np.flatnonzero(~robust[:, -1] & f["offline/clean_correct"][()])[0])
        robust[row, 0], robust[row, -1] = False, True
        f["retime/offline/robust"][...] = robust
    with pytest.raises(DataError, match=f"offline retiming curve rises with the budget at rows {row}"):
        load_evaluation(corrupt)


def test_an_experiment_evaluation_takes_timing_budgets(tmp_path):
    from harness.errors import ConfigError
    from harness.experiment.spec import load_experiment

    path = tmp_path / "e.toml"
    head = 'name = "e"\n[[runs]]\nid = "d"\nmodel = "digits-mlp"\n[[evaluations]]\n'
    path.write_text(head + "retime_budgets = [3, 1]\n")
    assert load_experiment(path).evaluations[0].retime_budgets == [1, 3]
    path.write_text(head)
    assert "retime_budgets" not in load_experiment(path).evaluations[0].to_dict()  # earlier plans unchanged
    for bad in ("[0]", '["x"]', "2"):
        path.write_text(head + f"retime_budgets = {bad}\n")
        with pytest.raises(ConfigError, match=r"\[\[evaluations\]\] #1: 'retime_budgets'"):
            load_experiment(path)
