"""``harness replay`` in its stand-alone form, on a network made by lava-dl outside this project."""
from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest

from harness import cli
from harness.device.lowering import input_order, output_order
from harness.device.netx_reader import read_network
from harness.device.watchdog import run_supervised
from harness.store import read_h5

TINY_NET = Path(__file__).resolve().parent.parent / ".venv/lib/python3.10/site-packages/tests/lava/lib/dl/netx/tiny.net"


def _stock_netx(path: Path, stream: np.ndarray, steps: int) -> np.ndarray:
    """Output spikes (K, total steps) of stock ``netx.hdf5.Network`` fed ``stream`` (n, total steps),
    one sample after another with netx's own reset (an Input layer: reset_offset 0): the
    ``interval`` sample mode."""
    from lava.lib.dl import netx
    from lava.magma.core.run_conditions import RunSteps
    from lava.magma.core.run_configs import Loihi2SimCfg
    from lava.proc.io.sink import RingBuffer as Sink
    from lava.proc.io.source import RingBuffer as Source

    net = netx.hdf5.Network(net_config=str(path), reset_interval=steps, reset_offset=0)
    total = stream.shape[-1]
    source = Source(data=stream.reshape(*net.in_layer.neuron.a_in.shape, total).astype(np.int32))
    source.s_out.connect(net.in_layer.neuron.a_in)  # netx feeds an Input layer's neurons directly
    sink = Sink(shape=net.out.shape, buffer=total)
    net.out.connect(sink.a_in)
    try:
        net.run(condition=RunSteps(num_steps=total), run_cfg=Loihi2SimCfg(select_tag="fixed_pt"))
        return sink.data.get().reshape(-1, total)
    finally:
        net.stop()


@pytest.mark.slow
def test_a_lava_dl_network_replays_like_stock_netx(tmp_path, capsys):
    network = read_network(TINY_NET)  # lava-dl's own test network: Input layer, two conv layers with bias
    n, steps = 6, 12
    spikes = (np.random.default_rng(0).random((n, *network.input_shape, steps)) < 0.3).astype(np.uint8)
    np.save(tmp_path / "spikes.npy", spikes)
    out = tmp_path / "out.h5"
    assert cli.main(["replay", "--network", str(TINY_NET), "--input", str(tmp_path / "spikes.npy"),
                     "--profile", "loihi2-fixed", "--out", str(out), "--lanes", "4", "--sample-mode", "interval"]) == 0
    assert f"6 samples replayed on loihi2-fixed (interval samples)" in capsys.readouterr().out
    arrays, attrs = read_h5(out, kind="device")
    assert "SLAYER's order" in attrs["layout"] and attrs["lanes"] == 4 and attrs["sample_mode"] == "interval"

    flat = spikes.reshape(n, -1, steps)[:, input_order(network)]
    stream = flat.transpose(1, 0, 2).reshape(flat.shape[1], n * steps)
    stock = run_supervised(_stock_netx, TINY_NET, stream, steps, timeout=300, what="stock netx")
    expected = stock.reshape(-1, n, steps).transpose(1, 0, 2)[:, output_order(network)]
    # those steps still carry the previous sample in stock's concatenated run; a fresh network
    # (stock's first sample, and every window of the replay) shows its bias-driven transient there
    expected[..., :network.synaptic_depth] = expected[0, :, :network.synaptic_depth]
    assert expected.sum() > 0
    assert np.array_equal(arrays["output_rasters"], expected)
    assert arrays["output_rasters"].shape == (6, 36, 12)

    again = ["replay", "--network", str(TINY_NET), "--input", str(tmp_path / "spikes.npy"), "--profile",
             "loihi2-fixed", "--out", str(out)]
    assert cli.main([*again, "--sample-mode", "interval"]) == 0
    assert "is up to date" in capsys.readouterr().out
    assert cli.main(again) == 0  # the default, fresh, is another replay: its identity differs
    assert "(fresh samples)" in capsys.readouterr().out and read_h5(out, kind="device")[1]["sample_mode"] == "fresh"


def _run(args: list[str], capsys) -> tuple[int, str]:
    code = cli.main(["replay", *args])
    return code, capsys.readouterr().err


def test_stand_alone_input_errors_name_the_problem(tmp_path, capsys):
    base = ["--network", str(TINY_NET), "--profile", "loihi2-fixed", "--out", str(tmp_path / "o.h5")]
    np.save(tmp_path / "two.npy", np.full((2, 3, 16, 16, 5), 2, dtype=np.uint8))
    code, err = _run(base + ["--input", str(tmp_path / "two.npy")], capsys)
    assert code == 2 and "spikes must be binary (0/1), found values [2]" in err
    np.save(tmp_path / "shape.npy", np.zeros((2, 3, 15, 16, 5), dtype=np.uint8))
    code, err = _run(base + ["--input", str(tmp_path / "shape.npy")], capsys)
    assert code == 2 and "(2, 3, 15, 16, 5)" in err and "takes (3, 16, 16) per time step" in err
    with h5py.File(tmp_path / "in.h5", "w") as f:
        f["events"] = np.zeros((1, 3, 16, 16, 5), dtype=np.uint8)
    code, err = _run(base + ["--input", str(tmp_path / "in.h5")], capsys)
    assert code == 2 and "no dataset 'spikes'; datasets: events" in err
    code, err = _run(base + ["--input", str(tmp_path / "in.h5"), "--dataset", "events", "--lanes", "0"], capsys)
    assert code == 2 and "--lanes must be >= 1" in err
    code, err = _run(base + ["--input", str(tmp_path / "missing.npy")], capsys)
    assert code == 2 and "missing.npy: file not found" in err


def test_replay_needs_a_run_or_all_stand_alone_files(tmp_path, capsys):
    code, err = _run(["--profile", "loihi2-fixed", "--network", str(TINY_NET)], capsys)
    assert code == 2 and "give --run RUN_DIR, or all of --network, --input and --out" in err
    code, err = _run(["--profile", "loihi3", "--run", str(tmp_path)], capsys)
    assert code == 2 and "unknown hw_profile 'loihi3'; available: loihi1, loihi2-fixed, loihi2-fixed-denoise, loihi2-fixed-refractory, loihi2-float, loihi2-noisy" in err


@pytest.mark.slow
def test_event_files_and_labels_replay_like_the_dense_spikes(tmp_path, capsys):
    """tonic-style events (.npz, t in microseconds) binned with --sensor-size/--steps/--dt-ms replay to the
    same output as the dense spikes they came from; --labels adds the device accuracy."""
    from harness.data import dense_to_events, save_events

    network = read_network(TINY_NET)
    c, h, w = network.input_shape
    n, steps = 4, 10
    spikes = (np.random.default_rng(1).random((n, c, h, w, steps)) < 0.3).astype(np.uint8)
    labels = np.arange(n) % 2
    np.save(tmp_path / "dense.npy", spikes)
    np.save(tmp_path / "labels.npy", labels)
    save_events(tmp_path / "events.npz", [dense_to_events(s, dt_ms=2.0) for s in spikes], labels)
    common = ["--network", str(TINY_NET), "--profile", "loihi2-fixed", "--no-progress"]
    assert cli.main(["replay", *common, "--input", str(tmp_path / "dense.npy"), "--out", str(tmp_path / "a.h5")]) == 0
    assert cli.main(["replay", *common, "--input", str(tmp_path / "events.npz"), "--sensor-size", str(w), str(h),
                     str(c), "--steps", str(steps), "--dt-ms", "2", "--labels", str(tmp_path / "labels.npy"),
                     "--out", str(tmp_path / "b.h5")]) == 0
    dense, _ = read_h5(tmp_path / "a.h5", kind="device")
    events, _ = read_h5(tmp_path / "b.h5", kind="device")
    assert np.array_equal(dense["output_rasters"], events["output_rasters"])
    assert np.array_equal(events["labels"], labels)
    correct = int((events["predictions"] == labels).sum())
    assert f"device accuracy {100 * correct / n:.1f}% ({correct} of {n}" in capsys.readouterr().out


def test_an_event_file_without_binning_names_the_flags(tmp_path, capsys):
    from harness.data.events import make_events, save_events

    save_events(tmp_path / "e.npy", make_events([1], [2], [30], [0]))
    code = cli.main(["replay", "--network", str(TINY_NET), "--input", str(tmp_path / "e.npy"), "--profile",
                     "loihi2-fixed", "--out", str(tmp_path / "o.h5")])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "holds events (x, y, t, p); give --sensor-size" in err
    assert not (tmp_path / "o.h5").exists()
