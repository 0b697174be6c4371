"""results.json's hardware block and the report's neurocore section on a real replay (issue 13)."""
from __future__ import annotations

import json

import numpy as np
import pytest

from harness.report import write_run_report
from harness.results_model import Results
from harness.stages import replay_run
from harness.train import train_run


@pytest.mark.slow
def test_hardware_block_is_consistent_with_the_replay(tmp_path):
    run = tmp_path / "r"
    train_run("digits-mlp", run, epochs=1, progress=False)
    for profile in ("loihi2-fixed", "loihi1"):
        replay_run(run, profile, progress=False)
    write_run_report(run)
    results = Results.from_dict(json.loads((run / "results.json").read_text()))
    from harness.runs import open_run

    for profile in ("loihi2-fixed", "loihi1"):
        hw = results.hardware[profile]
        assert hw.mapping.cores == 2 and [layer.cores for layer in hw.mapping.layers] == [1, 1]
        device = open_run(run).replay(profile, "clean").arrays
        assert hw.clean.synops == pytest.approx(device["synops"].mean())           # per-core sums = the total
        assert sum(hw.clean.per_core.synops) == pytest.approx(hw.clean.synops)
        assert hw.clean.spikes_per_layer == pytest.approx(device["layer_counts"].mean(axis=0).tolist())
        assert 0 < hw.neurobench.device_activation_sparsity < 1 and hw.neurobench.weight_bias_bytes > 0
    assert results.hardware["loihi1"].clean.hop_energy_j > 0 == results.hardware["loihi2-fixed"].clean.hop_energy_j
    report = (run / "report.md").read_text()
    assert "### Neurocores on loihi1" in report and (run / "figures" / "cores-r-loihi1.png").is_file()
    assert np.isfinite(results.hardware["loihi1"].clean.energy_j)
