"""Bring your own network (issue 12): a network made by a lava-dl script outside the harness goes
import -> attack -> replay -> report in four commands, and a NIR graph goes import -> replay."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import netx_families as families
from harness import cli
from harness.netx_twin import twin_from_netx
from harness.runs import open_run

STEPS = 16


@pytest.mark.slow
def test_a_lava_dl_network_in_four_commands(tmp_path, capsys):
    path = tmp_path / "theirs.net"
    _, shape = families.build("conv_bias", path, steps=STEPS)  # strided padded conv, bias, per-layer neurons
    spikes = families.random_spikes(shape, 12, STEPS, seed=3)
    with torch.no_grad():
        labels = twin_from_netx(path, STEPS, input_shape=shape)(torch.as_tensor(spikes, dtype=torch.float32))
    np.save(tmp_path / "x.npy", spikes)
    np.save(tmp_path / "y.npy", labels.sum(-1).argmax(1).numpy())
    run = str(tmp_path / "run")
    assert cli.main(["import", "--network", str(path), "--run", run, "--input", str(tmp_path / "x.npy"),
                     "--labels", str(tmp_path / "y.npy"), "--dt-ms", "1"]) == 0
    assert "100.0% identical rasters, 100.0% agreement" in capsys.readouterr().out
    assert cli.main(["attack", "--run", run, "--iterations", "3", "--no-progress"]) == 0  # margin: the default
    assert cli.main(["replay", "--run", run, "--profile", "loihi2-fixed", "--all", "--no-progress"]) == 0
    assert cli.main(["report", "--run", run]) == 0
    assert open_run(run).attack_ids()[0].split("_")[-3] == "mg"  # the margin objective
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    assert results["model"]["imported"] is True and results["model"]["train_accuracy"] is None
    device = results["attacks"][0]["device"]["loihi2-fixed"]
    offline = results["attacks"][0]["offline"]
    assert device["success_rate"] == offline["success_rate"]  # the twin is the device: white box is honest
    assert (tmp_path / "run" / "model" / "network.net").read_bytes() == path.read_bytes()


@pytest.mark.slow
def test_a_nir_graph_is_imported_through_netx_and_proven(tmp_path, capsys):
    import nir

    from test_interop_nir import _hand_graph

    rng = np.random.default_rng(0)
    graph = _hand_graph(rng, n_in=20, n_out=4)
    nir.write(tmp_path / "g.nir", graph)
    spikes = (rng.random((8, 20, STEPS)) < 0.4).astype(np.uint8)
    np.save(tmp_path / "x.npy", spikes)
    np.save(tmp_path / "y.npy", np.arange(8) % 4)
    assert cli.main(["import", "--nir", str(tmp_path / "g.nir"), "--run", str(tmp_path / "run"), "--input",
                     str(tmp_path / "x.npy"), "--labels", str(tmp_path / "y.npy"), "--dt-ms", "1",
                     "--allow-silent"]) == 0  # a random hand-written graph: its outputs tie
    captured = capsys.readouterr()
    out = captured.out
    assert "WARNING: the device is silent or tied" in captured.err
    assert "100.0% identical rasters" in out and "float graph vs device prediction agreement" in out
    card = open_run(tmp_path / "run").card
    nir_card = card["provenance"]["nir"]
    assert (nir_card["source"], nir_card["source_detected"], nir_card["source_reset"], nir_card["device_reset"]) == (
        "nir", False, "zero", "zero")
    assert 0 <= nir_card["agreement"]["prediction_agreement"] <= 1


@pytest.mark.slow
def test_an_experiment_run_can_import_a_network(tmp_path, nmnist_dir):
    from harness.experiment import load_experiment, run_experiment

    families.build("nmnist_conv", tmp_path / "theirs.net", steps=30)
    exp_file = tmp_path / "exp.toml"
    exp_file.write_text(f'name = "byo"\ndata = "{nmnist_dir}"\nprofiles = ["loihi2-fixed"]\n'
                        '[[runs]]\nid = "theirs"\nnetwork = "theirs.net"\n'
                        '[[attacks]]\nmethod = "g2s-rsf"\nloss = "margin"\nn = 4\niterations = 2\n')
    lines: list[str] = []
    run_experiment(load_experiment(exp_file), tmp_path / "out", progress=False, echo=lines.append)
    results = json.loads((tmp_path / "out" / "theirs" / "results.json").read_text())
    assert results["model"]["imported"] is True and results["attacks"][0]["n_attacked"] == 4
    assert "loihi2-fixed" in results["clean"]["device"]
    lines.clear()
    run_experiment(load_experiment(exp_file), tmp_path / "out", progress=False, echo=lines.append)
    assert sum("kept: up to date" in line for line in lines) == 5  # import, attack, replay, summarise, report
