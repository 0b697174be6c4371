"""Threat models of the flip attacks (issue 24): add-only never removes a spike, delete-only never
adds one, the default threat is unchanged. The small digits model of the attack tests; seconds."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from harness.attacks import AttackConfig, craft
from harness.attacks.baselines import random_flip_inputs
from harness.attacks.randomness import row_generators
from harness.attacks.runner import attack_id
from harness.attacks.threats import allowed_update
from harness.errors import ConfigError
from harness.runs import open_run
from test_attack_science import model_and_data  # noqa: F401  (the digits model and 30 test samples)
from test_attacks import digits_run  # noqa: F401  (the digits model of the attack tests, trained per module)


def test_allowed_update_masks_only_the_forbidden_flips():
    clean = torch.tensor([[0.0, 0.0, 1.0, 1.0]])
    update = torch.tensor([[1.0, -1.0, 1.0, -1.0]])
    assert allowed_update(clean, update, "flips").tolist() == [[1, -1, 1, -1]]
    assert allowed_update(clean, update, "add-only").tolist() == [[1, -1, 1, 0]]  # the clean spike stays
    assert allowed_update(clean, update, "delete-only").tolist() == [[0, -1, 1, -1]]  # no new spike


def test_unknown_threat_is_refused_and_only_non_default_threats_tag_the_id():
    with pytest.raises(ConfigError, match="threat"):
        AttackConfig(threat="retime")
    base = attack_id(AttackConfig(), None, 10, "spike-rate")
    assert attack_id(AttackConfig(threat="flips"), None, 10, "spike-rate") == base
    assert "threat" not in AttackConfig().to_dict()
    assert attack_id(AttackConfig(threat="add-only"), None, 10, "spike-rate") == base.replace("_sr_", "_add_sr_")
    assert attack_id(AttackConfig(threat="delete-only"), None, 10, "spike-rate") == base.replace("_sr_", "_del_sr_")


@pytest.mark.parametrize("method", ["g2s-rsf", "g2s", "rsf"])
def test_add_only_removes_no_spike_and_delete_only_adds_none(model_and_data, method):
    net, x, y = model_and_data
    added = craft(net, x, y, AttackConfig(method=method, iterations=8, gamma=0.2, threat="add-only"))
    deleted = craft(net, x, y, AttackConfig(method=method, iterations=8, gamma=0.2, threat="delete-only"))
    assert (added.adversarial >= added.clean).all() and (added.adversarial > added.clean).any()
    assert (deleted.adversarial <= deleted.clean).all() and (deleted.adversarial < deleted.clean).any()


def test_default_threat_gives_the_same_spikes_as_before(model_and_data):
    net, x, y = model_and_data
    a = craft(net, x, y, AttackConfig(iterations=5))
    b = craft(net, x, y, AttackConfig(iterations=5, threat="flips"))
    assert np.array_equal(a.adversarial, b.adversarial)


@pytest.mark.parametrize("threat", ["add-only", "delete-only"])
def test_random_flips_honour_the_threat_and_flips_draw_as_before(threat):
    clean = (np.random.default_rng(0).random((3, 40)) < 0.4).astype(np.uint8)
    l0 = np.array([0, 5, 10])
    noisy = random_flip_inputs(clean, l0, row_generators(0, [0, 1, 2]), threat)
    assert ((noisy != clean).sum(1) == l0).all()
    assert (noisy >= clean).all() if threat == "add-only" else (noisy <= clean).all()
    assert np.array_equal(random_flip_inputs(clean, l0, row_generators(0, [0, 1, 2]), "flips"),
                          random_flip_inputs(clean, l0, row_generators(0, [0, 1, 2])))
    with pytest.raises(ValueError, match="threat"):
        random_flip_inputs(clean, np.array([40, 0, 0]), row_generators(0, [0, 1, 2]), threat)


def test_cli_records_the_threat_and_the_random_baseline_inherits_it(digits_run):
    from harness.cli import main

    args = ["attack", "--run", str(digits_run), "--n", "6", "--iterations", "4", "--no-progress"]
    assert main([*args, "--threat", "delete-only"]) == 0
    run = open_run(digits_run)
    ident = attack_id(AttackConfig(iterations=4, threat="delete-only"), None, 6, "spike-rate")
    assert run.attack(ident).attrs["threat"] == "delete-only"
    assert main(["attack", "--run", str(digits_run), "--method", "random", "--match", ident, "--no-progress"]) == 0
    baseline = run.attack(f"random_s0_{ident}")
    assert baseline.attrs["threat"] == "delete-only" and (baseline.adversarial <= baseline.clean).all()
    with pytest.raises(SystemExit) as stop:
        main([*args, "--threat", "retime"])
    assert stop.value.code == 2
