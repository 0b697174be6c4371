"""Training: a short run beats chance, artifacts are complete, the export loads in netx,
and an interrupted training resumes to the same weights."""
from __future__ import annotations

import json

import h5py
import pytest
import torch

from harness.models import load_checkpoint, load_spec
from harness.train import evaluate, load_split, train_network, train_run


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory):
    run = tmp_path_factory.mktemp("run")
    card = train_run("digits-mlp", run, seed=0, epochs=3, progress=False)
    return run, card


def test_short_training_beats_chance_and_writes_card(digits_run):
    run, card = digits_run
    assert card["test_accuracy"] > 0.5  # chance is 0.1
    on_disk = json.loads((run / "model" / "card.json").read_text())
    for key in ("model", "spec", "seed", "dataset", "steps", "train_accuracy", "test_accuracy",
                "training_seconds", "versions"):
        assert key in on_disk
    assert on_disk["versions"]["lava-dl"] == "0.6.0"
    assert not (run / "model" / "train_state.pt").exists()
    assert not [p for p in (run / "model").iterdir() if p.name.endswith(".tmp")]


def test_checkpoint_reproduces_card_accuracy(digits_run):
    run, card = digits_run
    net = load_checkpoint(run / "model" / "checkpoint.pt")
    spec = load_spec("digits-mlp")
    assert evaluate(net, load_split(spec, "test", seed=0)) == pytest.approx(card["test_accuracy"])


def test_export_loads_in_netx(digits_run):
    from lava.lib.dl import netx

    run, _ = digits_run
    with h5py.File(run / "model" / "network.net") as f:
        assert sorted(f["layer"].keys()) == ["0", "1"]
        assert f["layer/0/weight"].shape == (128, 64)
    net = netx.hdf5.Network(net_config=str(run / "model" / "network.net"), reset_interval=16, reset_offset=1)
    assert net.inp.shape == (64,) and net.out.shape == (10,)


def test_resume_gives_identical_weights(tmp_path, interrupt_training):
    spec = load_spec("digits-mlp")
    data = load_split(spec, "train", seed=0).subset(slice(0, 200))
    straight = train_network(spec, data, seed=1, epochs=3, progress=False)
    state = tmp_path / "train_state.pt"
    with interrupt_training(2):  # Ctrl-C right after epoch 2's state is saved
        train_network(spec, data, seed=1, epochs=3, state_path=state, progress=False)
    assert torch.load(state)["epoch"] == 2
    resumed = train_network(spec, data, seed=1, epochs=3, state_path=state, progress=False)
    for (name, a), (_, b) in zip(straight.state_dict().items(), resumed.state_dict().items()):
        assert torch.equal(a, b), name
