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


def test_sparse_rs_resamples_m_current_flips_for_m_unflipped_elements_and_keeps_k():
    """Sparse-RS's sampling and acceptance, pinned on a tiny scorer: every candidate has exactly
    K flips, m of the current ones undone and m unflipped elements flipped (m from the p
    schedule), and it replaces the current set only on a strict margin drop or a success."""
    import torch

    from harness.attacks.methods.sparse_rs import search
    from harness.attacks.query import QueryConfig

    clean = (np.arange(2 * 3 * 8).reshape(2, 3, 8) % 5 == 0).astype(np.uint8)
    good = set(range(10))  # flipping these lowers class 0's count; class 1 stays at 25

    def counts(candidate):
        hits = len(good & set(np.flatnonzero(candidate.reshape(-1) != clean.reshape(-1)).tolist()))
        return np.array([30 - hits, 25, 0], np.int64)

    k, queries = 8, 300
    config = QueryConfig(max_flips=k, queries=queries, p_init=0.5)
    row = search(clean, 0, -1, config, torch.Generator().manual_seed(3))
    candidate, current, best, asked, accepted, equal_rejected = next(row), None, None, 1, 0, 0
    try:
        while True:
            flips = set(np.flatnonzero(candidate.reshape(-1) != clean.reshape(-1)).tolist())
            assert len(flips) == k
            answer = counts(candidate)
            if current is not None:
                m = max(int(resampled_share(0.5, asked - 1, queries) * k), 1)
                assert len(current - flips) == m and len(flips - current) == m
            margin = int(answer[0] - answer[1])
            if current is None or margin < best or margin < 0:
                current, best, accepted = flips, margin, accepted + 1
            elif margin == best:
                equal_rejected += 1
            candidate = row.send(answer)
            asked += 1
    except StopIteration as stop:
        result = stop.value
    assert set(np.flatnonzero(result.adversarial.reshape(-1) != clean.reshape(-1)).tolist()) == current
    assert best < 0 and result.queries == asked and accepted > 2 and equal_rejected > 0


def test_query_records_summarise_their_queries_in_the_cli_and_the_report(proven):
    from dataclasses import replace
    from types import SimpleNamespace

    from harness.attacks.runner import format_summary
    from harness.report.sections import queries_section

    record = _attack(proven, "sparse-rs", n=12, queries=60, max_flips=120)
    q = record.query_stats()
    won = record.success & record.correct_before
    assert q["query_budget"] == 60 and list(q["success_by_queries"]) == [1, 3, 6, 12, 30, 60]
    assert q["success_by_queries"][60] == (int(won.sum()), int(record.correct_before.sum()))
    assert q["median_queries"] == np.median(record.queries[won])
    text = format_summary(record)
    assert "queries (twin oracle, loihi2-fixed; at most 60 per row): median" in text
    assert f"<=60: {int(won.sum())}/{int(record.correct_before.sum())}" in text
    section = queries_section(SimpleNamespace(name="digits", attacks={"a": record}), {"a": "Sparse-RS"})
    assert section.tables[0].rows[0][:3] == ["Sparse-RS", "twin (loihi2-fixed)", "60"]
    assert section.figures[0].png.startswith(b"\x89PNG")
    assert not replace(record, attrs={**record.attrs, "params": {"iterations": 25}}).is_query  # a gradient attack's
