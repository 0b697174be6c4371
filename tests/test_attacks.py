"""The batched attack, its baselines, transfer and the run-directory stage, on a small digits model
trained for a few epochs (a few seconds; the pure functions are in test_attacks_core.py)."""
from __future__ import annotations

import os
import signal

import numpy as np
import pytest
import torch

from harness.attacks import (AttackConfig, AttackRecord, craft, random_flips, run_attack, run_random_baseline,
                             run_transfer, transfer)
from harness.attacks import runner
from harness.attacks.judge import judge
from harness.cli import main
from harness.errors import DataError
from harness.metrics import l0
from harness.models import SpikingNetwork, load_checkpoint, spec_from_dict
from harness.runs import open_run
from harness.store import RunDir
from harness.train import train_run

@pytest.fixture(scope="module")
def digits_run(tmp_path_factory):
    """A digits-mlp run trained for a few epochs (about 90% test accuracy)."""
    run = tmp_path_factory.mktemp("attack") / "digits"
    train_run("digits-mlp", run, seed=0, epochs=4, progress=False)
    return run


@pytest.fixture(scope="module")
def model_and_data(digits_run):
    net = load_checkpoint(RunDir(digits_run).checkpoint)
    data = open_run(digits_run).test(n=70)
    return net, data.spikes, data.labels


@pytest.mark.parametrize("config, batch_sizes", [
    (AttackConfig(iterations=8), (64, 7, 1)),
    (AttackConfig(eta=0.3, iterations=6, attack_threshold=2.0), (64, 7, 1)),
    (AttackConfig(method="rsf", iterations=20, reduce=True), (64, 7)),
    (AttackConfig(eta=0.3, iterations=6, reduce=True), (64, 7)),
], ids=["g2s-rsf", "threshold", "rsf-reduce", "sparse-reduce"])
def test_same_adversarial_spikes_whatever_the_batch_size(model_and_data, config, batch_sizes):
    net, x, y = model_and_data
    x, y = x[:30], y[:30]
    records = [craft(net, x, y, config, batch_size=b) for b in batch_sizes]
    assert records[0].success.sum() >= 5
    for other in records[1:]:
        assert np.array_equal(records[0].adversarial, other.adversarial)
        assert np.array_equal(records[0].iterations, other.iterations)


def test_conv_network_gives_the_same_spikes_whatever_the_batch_size():
    from harness.models import load_spec
    from harness.train import load_split, train_network

    raw = load_spec("digits-mlp").to_dict()
    raw["layers"] = [{"type": "conv", "out": 8, "kernel": 3, "stride": 2, "padding": 1}, {"type": "flatten"},
                     {"type": "dense", "out": 10}]
    spec = spec_from_dict(raw, "digits conv")
    net = train_network(spec, load_split(spec, "train"), seed=0, epochs=3, progress=False)
    test = load_split(spec, "test", limit=30)
    records = [craft(net, test.spikes, test.labels, AttackConfig(iterations=8), batch_size=b) for b in (64, 7, 1)]
    assert records[0].success.sum() >= 5
    assert all(np.array_equal(records[0].adversarial, r.adversarial) for r in records[1:])


@pytest.mark.parametrize("keep", [1.0, 0.1], ids=["dense input", "sparse input"])
def test_batch_invariant_passes_keep_outputs_and_fix_gradients(model_and_data, keep):
    from harness.attacks.invariant import batch_invariant
    from harness.models import make_loss

    net, x, y = model_and_data
    mask = np.random.default_rng(0).random(x.shape) < keep
    x = torch.as_tensor(x * mask, dtype=torch.float32)
    y = torch.as_tensor(y)
    loss = make_loss(net.spec)

    def gradient(xb, yb):
        xb = xb.clone().requires_grad_(True)
        out = net(xb)
        return torch.autograd.grad(loss(out, yb), xb)[0], out.detach()

    plain_grad, plain_out = gradient(x, y)
    with batch_invariant(net):
        grad, out = gradient(x, y)
        singles = torch.cat([gradient(x[i:i + 1], y[i:i + 1])[0] for i in range(len(x))])
        sevens = torch.cat([gradient(x[i:i + 7], y[i:i + 7])[0] for i in range(0, len(x), 7)])
    assert torch.equal(out, plain_out)  # exactly the unchanged model's output spikes
    assert torch.equal(grad, singles) and torch.equal(grad, sevens)
    assert torch.allclose(grad, plain_grad, rtol=1e-4, atol=1e-6 * plain_grad.abs().max().item())
    assert "forward" not in vars(net.spiking_blocks[0].synapse)  # restored


def test_records_are_consistent_with_the_model(model_and_data):
    net, x, y = model_and_data
    record = craft(net, x, y, AttackConfig(iterations=10))
    pred_clean, _ = judge(net, x, y, record.targets)
    assert np.array_equal(record.pred_clean, pred_clean)
    assert np.array_equal(record.correct_before, pred_clean == y)
    pred_adv, won = judge(net, record.adversarial, y, record.targets)
    assert np.array_equal(record.pred_adv, pred_adv) and np.array_equal(record.success, won & record.correct_before)
    assert np.array_equal(record.l0, l0(x, record.adversarial))
    # cost: one pass per iteration plus the judging pass of the last example; a gradient per update
    ok = record.correct_before
    assert np.array_equal(record.forward_passes[ok], record.iterations[ok] + 1)
    assert np.array_equal(record.backward_passes[ok], record.iterations[ok])
    assert np.array_equal(record.forward_passes[~ok], np.ones((~ok).sum())) and not record.queries.any()
    failed = ~record.success
    assert np.array_equal(record.adversarial[failed], x[failed])  # rolled back
    missed = ~record.correct_before
    assert missed.any() and (record.iterations[missed] == 0).all()  # not attacked
    won_rows = record.success
    assert (record.l0_at_success[won_rows] == record.l0[won_rows]).all() and (record.l0_at_success[failed] == -1).all()
    assert ((record.iterations >= 1) & (record.iterations <= 10))[record.correct_before].all()


def test_budget_stops_samples_and_counts_them_failed(model_and_data):
    net, x, y = model_and_data
    record = craft(net, x, y, AttackConfig(max_flips=40))
    assert (record.l0[record.success] <= 40).all()
    stopped = record.correct_before & ~record.success & (record.iterations < 25)
    assert stopped.any() and (record.l0_before_reduction[stopped] > 40).all()


def test_targeted_every_other_class(digits_run):
    net = open_run(digits_run).net
    path = run_attack(digits_run, AttackConfig(iterations=15), targeted="every-other", n=6, progress=False)
    record = AttackRecord.load(path)
    assert len(record) == 54 and np.array_equal(record.sample_index, np.repeat(np.arange(6), 9))
    assert (record.targets != record.labels).all()
    assert (record.pred_adv[record.success] == record.targets[record.success]).all()
    summary = runner.format_summary(record, path)
    assert "target  pairs  success" in summary and record.success.any()


def test_reduction_keeps_examples_adversarial_with_fewer_flips(model_and_data):
    net, x, y = model_and_data
    record = craft(net, x, y, AttackConfig(eta=0.5, reduce=True))
    won = record.success
    assert won.sum() > 10
    assert (record.l0[won] <= record.l0_at_success[won]).all() and (record.l0[won] < record.l0_at_success[won]).any()
    _, still = judge(net, record.adversarial[won], y[won], record.targets[won])
    assert still.all()


def test_threshold_override_leaves_the_model_unchanged(model_and_data):
    net, x, y = model_and_data
    before = net.spiking_blocks[-2].neuron.threshold
    record = craft(net, x, y, AttackConfig(attack_threshold=3.0, loss="cross-entropy", iterations=5))
    assert net.spiking_blocks[-2].neuron.threshold == before
    _, won = judge(net, record.adversarial, y, record.targets)
    assert np.array_equal(won & record.correct_before, record.success)


def test_non_binary_or_misshapen_inputs_are_clear_errors(model_and_data):
    net, x, y = model_and_data
    with pytest.raises(DataError, match="binary"):
        craft(net, x * 2, y, AttackConfig())
    with pytest.raises(DataError, match=r"\(70, 64, 16\).*\(N, 1, 8, 8, 16\)"):
        craft(net, x.reshape(70, 64, 16), y, AttackConfig())


def _rectangular_twin(net: SpikingNetwork, width: float) -> SpikingNetwork:
    """The same weights with the rectangular surrogate of ``width`` (a window on the voltage)."""
    spec = net.spec.to_dict()
    spec["surrogate"] = {"kind": "rectangular", "width": width}
    twin = SpikingNetwork(spec_from_dict(spec, "rectangular twin"))
    twin.load_state_dict(net.state_dict())
    return twin.eval()


def test_rsf_rescues_the_attack_where_gradients_vanish(model_and_data):
    """Voltages live on SLAYER's fixed-point grid; a window narrower than the distance from the
    threshold (+ SLAYER's threshold_eps) to the nearest grid value is missed by every voltage,
    so every input gradient is exactly zero."""
    net, x, y = model_and_data
    x, y = x[:30], y[:30]
    trapped = _rectangular_twin(net, width=1e-4)
    x_in = torch.as_tensor(x, dtype=torch.float32).requires_grad_(True)
    from harness.models import make_loss
    (grad,) = torch.autograd.grad(make_loss(trapped.spec)(trapped(x_in), torch.as_tensor(y)), x_in)
    assert (grad.flatten(1).abs().amax(1) == 0).float().mean() >= 0.9  # gradients vanish for most samples

    g2s_only = craft(trapped, x, y, AttackConfig(method="g2s"))
    ok = g2s_only.correct_before
    assert g2s_only.l0_before_reduction[ok].sum() == 0 and not g2s_only.success.any()
    assert (g2s_only.zero_grad_iterations[ok] == 25).all()

    rescued = craft(trapped, x, y, AttackConfig(method="g2s-rsf"))
    assert rescued.success[ok].mean() >= 0.5
    assert (rescued.rsf_iterations[ok] == rescued.iterations[ok]).all()


def test_random_flips_match_the_attack_l0_and_lose_to_it(model_and_data):
    net, x, y = model_and_data
    attack = craft(net, x, y, AttackConfig())
    noise = random_flips(net, x, y, attack.l0, seed=0)
    attempted = noise.l0_before_reduction
    assert np.array_equal(attempted, attack.l0)
    assert noise.success.sum() < attack.success.sum()
    assert np.array_equal(noise.l0, np.where(noise.success, attack.l0, 0))


def test_transfer_recomputes_success_on_the_judging_model(model_and_data, tmp_path):
    net, x, y = model_and_data
    attack = craft(net, x, y, AttackConfig())
    other_run = tmp_path / "other"
    train_run("digits-mlp", other_run, seed=1, epochs=2, progress=False)
    other = load_checkpoint(RunDir(other_run).checkpoint)
    moved = transfer(attack, other)
    pred_clean, _ = judge(other, x, y, attack.targets)
    assert np.array_equal(moved.correct_before, pred_clean == y)
    _, won = judge(other, attack.adversarial, y, attack.targets)
    assert np.array_equal(moved.success, won & moved.correct_before)
    assert np.array_equal(moved.l0, attack.l0) and 0 < moved.success.sum() <= attack.success.sum()


def test_run_dir_stage_writes_reuses_and_transfers(digits_run, tmp_path):
    config = AttackConfig(iterations=5)
    path = run_attack(digits_run, config, n=20, progress=False)
    assert path.name == "g2s-rsf_u_k5_g0.05_e1_sr_n20_s0.h5"
    record = AttackRecord.load(path)
    assert record.attrs["model"] == "digits-mlp" and record.attrs["params"]["loss"] == "spike-rate"
    assert record.attrs["crafted_on"] == record.attrs["judged_on"]
    mtime = path.stat().st_mtime_ns
    assert run_attack(digits_run, config, n=20, progress=False) == path and path.stat().st_mtime_ns == mtime
    run_attack(digits_run, config, n=20, progress=False, force=True)
    assert path.stat().st_mtime_ns != mtime

    baseline = AttackRecord.load(run_random_baseline(digits_run, path.stem, progress=False))
    assert baseline.attrs["method"] == "random" and baseline.attrs["params"]["reference"] == path.stem

    other_run = tmp_path / "judge"
    other_run.mkdir()
    for name in ("checkpoint.pt", "card.json"):
        (other_run / "model").mkdir(exist_ok=True)
        (other_run / "model" / name).write_bytes((RunDir(digits_run).model_dir / name).read_bytes())
    moved = AttackRecord.load(run_transfer(other_run, path))
    assert moved.attrs["crafted_on"] != moved.attrs["judged_on"] and moved.attrs["crafted_on"].startswith(
        str(digits_run.resolve()))
    assert np.array_equal(moved.success, record.success)  # same weights: same verdicts


def test_sigterm_during_an_attack_leaves_nothing(digits_run, monkeypatch):
    def interrupted(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGTERM)
        raise AssertionError("SIGTERM did not interrupt")

    monkeypatch.setattr(runner, "craft", interrupted)
    before = set(RunDir(digits_run).attacks_dir.glob("*")) if RunDir(digits_run).attacks_dir.exists() else set()
    handler = signal.getsignal(signal.SIGTERM)
    with pytest.raises(KeyboardInterrupt):
        run_attack(digits_run, AttackConfig(iterations=3, seed=9), n=5, progress=False)
    assert set(RunDir(digits_run).attacks_dir.glob("*")) == before
    assert signal.getsignal(signal.SIGTERM) is handler


def test_cli_runs_both_losses_and_the_threshold_override(digits_run, capsys):
    for extra in (["--loss", "cross-entropy"], ["--attack-threshold", "2.5"], ["--method", "rsf", "--max-flip-rate", "0.1"]):
        assert main(["attack", "--run", str(digits_run), "--n", "8", "--iterations", "3", "--no-progress", *extra]) == 0
        out = capsys.readouterr().out
        assert "success" in out and "file:" in out
    assert main(["attack", "--run", str(digits_run), "--method", "random", "--no-progress"]) == 2
    assert "--match" in capsys.readouterr().err
    assert main(["attack", "--run", str(digits_run / "nope"), "--no-progress"]) == 2
    assert "harness train" in capsys.readouterr().err


def test_ann_twin_attacks_and_transfer_both_ways(digits_run):
    from harness.attacks.ann import RateANN, ann_comparison, bim, fgsm, format_comparison, pgd

    attack_path = run_attack(digits_run, AttackConfig(iterations=10), n=30, progress=False)
    path, result = ann_comparison(digits_run, snn_attack=attack_path.stem, eps=(0.05, 0.2), n=30, epochs=3,
                                  progress=False)
    assert path.parent.name == "ann" and (path.parent / "model.pt").exists()
    assert result["clean"]["ann_accuracy"] > 0.5
    rows = {(r["method"], r["eps"]): r for r in result["ann_white_box"]}
    assert set(rows) == {(m, e) for m in ("fgsm", "bim", "pgd") for e in (0.05, 0.2)}
    for method in ("fgsm", "bim", "pgd"):  # a larger eps fools the ANN at least as often
        assert rows[(method, 0.2)]["ann_success_rate"] >= rows[(method, 0.05)]["ann_success_rate"]
    assert rows[("pgd", 0.2)]["ann_success_rate"] > 0.5
    assert 0 <= result["snn_to_ann"]["transfer_rate"] <= 1
    assert "transfer rate" in format_comparison(result)
    assert ann_comparison(digits_run, snn_attack=attack_path.stem, eps=(0.05, 0.2), n=30, epochs=3,
                          progress=False)[0].stat().st_mtime_ns == path.stat().st_mtime_ns  # reused

    net = load_checkpoint(RunDir(digits_run).checkpoint)
    model = RateANN(net.spec)
    x = torch.rand(8, 1, 8, 8)
    y = torch.zeros(8, dtype=torch.long)
    for adv in (fgsm(model, x, y, 0.1), bim(model, x, y, 0.1), pgd(model, x, y, 0.1, torch.Generator().manual_seed(0))):
        assert (adv - x).abs().max() <= 0.1 + 1e-6 and adv.min() >= 0 and adv.max() <= 1


def test_existing_files_newer_schema_is_refused_and_corrupt_one_recomputed(digits_run):
    import h5py
    from harness.errors import SchemaError

    config = AttackConfig(iterations=2, seed=5)
    path = run_attack(digits_run, config, n=4, progress=False)
    path.write_bytes(b"not hdf5")
    assert AttackRecord.load(run_attack(digits_run, config, n=4, progress=False)).attrs["attack_id"] == path.stem
    with h5py.File(path, "a") as f:
        f.attrs["schema_version"] = 99
    with pytest.raises(SchemaError, match="schema_version 99"):
        run_attack(digits_run, config, n=4, progress=False)
