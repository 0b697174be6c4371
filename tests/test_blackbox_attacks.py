"""Query attacks (Sparse-RS, pointwise) and their oracles on a tiny trained network (digits-mlp)."""
from __future__ import annotations

import numpy as np
import pytest

from harness.attacks.interface import Job
from harness.attacks.methods.sparse_rs import resampled_share
from harness.attacks.oracles import TwinOracle, open_oracle
from harness.attacks.query import fooled, flip
from harness.attacks.registry import get
from harness.cli import main
from harness.device import device_session
from harness.metrics import margin_of_counts
from harness.records import AttackRecord
from harness.runs import open_run
from harness.stages.replay import replay_run
from harness.train import train_run


@pytest.fixture(scope="module")
def proven(tmp_path_factory):
    """digits-mlp trained one epoch, with its clean replay on loihi2-fixed (the twin oracle's proof)."""
    run = tmp_path_factory.mktemp("bb") / "run"
    train_run("digits-mlp", run, seed=0, epochs=1, progress=False)
    replay_run(run, "loihi2-fixed", progress=False)
    return run


def _attack(run, method, batch_size=128, **values) -> AttackRecord:
    job = Job(run, batch_size=batch_size, force=True, progress=False)
    return AttackRecord.load(get(method).run(job, values))


def test_the_p_schedule_is_sparse_rs_l0():
    assert [resampled_share(0.3, it, 10000) for it in (0, 1, 50, 51, 200, 201, 8000, 8001)] == \
        [0.3, 0.15, 0.15, 0.075, 0.075, 0.06, 0.02, 0.015]
    assert resampled_share(0.3, 1, 1000) == 0.15  # it' = 10


def test_margin_of_counts_untargeted_and_targeted():
    counts = np.array([[5, 3, 1], [2, 2, 0], [1, 4, 2]])
    assert margin_of_counts(counts, [0, 0, 0]).tolist() == [2, 0, -3]
    assert margin_of_counts(counts, [0, 0, 0], [-1, 1, 2]).tolist() == [2, 0, 2]


@pytest.mark.slow
def test_both_oracles_give_the_same_examples_and_the_session_answers_queries(proven):
    twin = [_attack(proven, m, n=8, queries=40, max_flips=m_flips, oracle="twin")
            for m, m_flips in (("sparse-rs", 150), ("pointwise", 300))]
    device = [_attack(proven, m, n=8, queries=40, max_flips=m_flips, oracle="device")
              for m, m_flips in (("sparse-rs", 150), ("pointwise", 300))]
    assert any(r.success.any() for r in twin)
    for a, b in zip(twin, device):
        assert a.adversarial.tobytes() == b.adversarial.tobytes()
        assert a.queries.tolist() == b.queries.tolist() and a.success.tolist() == b.success.tolist()
    run = open_run(proven)
    spikes, labels = run.test(6).spikes, run.test(6).labels
    with device_session(run.network_file, "loihi2-fixed", lanes=4) as dev:
        counts = dev.output_counts(spikes)
        assert counts.tolist() == dev.counts(spikes).tolist() == dev.replay(spikes).output_counts.tolist()
        assert dev.margin(spikes, labels).tolist() == margin_of_counts(counts, labels).tolist()
    assert counts.tolist() == TwinOracle(run.net).counts(spikes).tolist()


def test_sparse_rs_does_not_depend_on_the_rows_attacked_together(proven):
    together = _attack(proven, "sparse-rs", n=12, queries=60, max_flips=120)
    apart = _attack(proven, "sparse-rs", batch_size=5, n=12, queries=60, max_flips=120)
    fewer = _attack(proven, "sparse-rs", batch_size=3, n=7, queries=60, max_flips=120)
    assert together.correct_before.sum() > 2 and (together.queries > 1).any()
    assert together.adversarial.tobytes() == apart.adversarial.tobytes()
    assert together.queries.tolist() == apart.queries.tolist()
    assert fewer.adversarial.tobytes() == together.adversarial[:7].tobytes()
    won = together.success
    assert (together.l0[won] == 120).all() and (together.queries[~won & together.correct_before] == 60).all()


def test_pointwise_examples_are_misclassified_and_minimal(proven):
    record = _attack(proven, "pointwise", n=8, queries=1000, max_flips=1000)
    oracle = TwinOracle(open_run(proven).net)
    rows = np.flatnonzero(record.success & (record.queries < 1000))
    assert len(rows) >= 2
    for i in rows:
        clean, adv, label = record.clean[i], record.adversarial[i], int(record.labels[i])
        assert fooled(oracle.counts(adv[None])[0], label, -1)
        flips = np.flatnonzero((adv != clean).reshape(-1))
        reverts = np.stack([flip(adv, [e]) for e in flips])
        assert not any(fooled(c, label, -1) for c in oracle.counts(reverts)), f"row {i} is not minimal"


@pytest.mark.parametrize("flags, message", [
    (["--method", "sparse-rs", "--queries", "0"], "--queries must be >= 1, got 0"),
    (["--method", "sparse-rs", "--max-flips", "1024"], "--max-flips 1024: K must be smaller than the input's 1,024"),
    (["--method", "pointwise", "--oracle", "chip"], "--oracle must be one of twin, device, got 'chip'"),
    (["--method", "pointwise", "--p-init", "0.1"], "--p-init is not a setting of method 'pointwise'"),
])
def test_bad_query_settings_get_one_line(proven, flags, message, capsys):
    assert main(["attack", "--run", str(proven), "--n", "4", "--no-progress", *flags]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]


def test_the_twin_oracle_without_a_proof_is_refused(tmp_path, capsys):
    train_run("digits-mlp", tmp_path / "run", seed=0, epochs=1, progress=False)
    assert main(["attack", "--run", str(tmp_path / "run"), "--method", "sparse-rs", "--max-flips", "50", "--n", "4"]) == 2
    err = capsys.readouterr().err.strip()
    assert "--oracle twin: no proof" in err and "harness replay --run" in err and "--clean" in err
    with pytest.raises(Exception, match="no proof"):
        open_oracle(open_run(tmp_path / "run"), "twin", "loihi2-fixed")


def test_an_imported_run_uses_its_import_proof_on_that_profile_only(tmp_path):
    from harness.attacks.oracles import check_twin_proof
    from harness.errors import ConfigError
    from harness.store import write_json

    (tmp_path / "model").mkdir()
    write_json(tmp_path / "model" / "card.json", {"kind": "imported", "twin_device": {
        "profile": "loihi2-fixed", "raster_exact": 1.0, "agreement": 1.0, "sample_mode": "fresh"}})
    run = open_run(tmp_path)
    check_twin_proof(run, "loihi2-fixed")
    with pytest.raises(ConfigError, match="proves its twin on 'loihi2-fixed', not on 'loihi2-noisy'"):
        check_twin_proof(run, "loihi2-noisy")
