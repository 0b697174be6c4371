"""Bring your own network: a netx file becomes a normal run directory.

:func:`import_netx` builds the twin (:mod:`harness.netx_twin`) from the file alone,
proves it against the device (:func:`prove_twin`: its output spikes against the
``loihi2-fixed`` replay of the import's test data; anything short of 100% identical rasters
is refused with the reason, nothing written), and writes (each file atomically, the card last):

- ``model/network.net``: the given file, byte-identical;
- ``model/checkpoint.pt``: the twin (:func:`harness.netx_twin.load_twin` reads it);
- ``model/test.h5``: the import's test data (spikes, labels: the run's test split from then on);
- ``model/card.json``: provenance instead of training figures (fields: :func:`import_netx`), with
  the twin's ``spec`` so that every stage reads an imported run as it reads a trained one.
"""
from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..errors import DataError, HarnessError
from ..metrics import accuracy, predict
from ..data import SpikeSet
from ..runs import open_run
from ..store import RunDir, digest_arrays, digest_file, identity, stored_identity, write_bytes, write_h5, write_json
from ..versions import numeric_versions
from ..netx_twin import FRESH, NetxTwin, twin_from_netx

PROOF_PROFILE = "loihi2-fixed"
CARD_KIND = "imported"
#: The import's test data inside ``model/`` (HDF5 kind :data:`TEST_DATA_KIND`: spikes, labels).
TEST_DATA = "test.h5"
TEST_DATA_KIND = "test-split"


class ImportRefused(HarnessError):
    """The network cannot be twinned exactly (the message says where the twin and the device part)."""


@dataclass
class TwinProof:
    """The twin against the device on the same samples.

    Attributes:
        n_samples: N.
        raster_exact: fraction of samples whose (K, T) output rasters are identical.
        agreement: fraction of samples with the same prediction (tie rule of harness.metrics.predict).
        layer_spikes: (L,) spikes each layer of the twin emitted over all samples.
        first_mismatch: (sample, output neuron, step) of the first differing raster element, or None.
        twin_predictions, device_predictions: (N,) int64.
        sample_mode: how samples met the device's network (the twin's own mode).
    """

    n_samples: int
    raster_exact: float
    agreement: float
    layer_spikes: list[int]
    first_mismatch: tuple[int, int, int] | None
    twin_predictions: np.ndarray
    device_predictions: np.ndarray
    sample_mode: str

    @property
    def exact(self) -> bool:
        return self.raster_exact == 1.0 and self.agreement == 1.0

    def summary(self) -> dict:
        """JSON-friendly figures (for the card)."""
        return {"profile": PROOF_PROFILE, "sample_mode": self.sample_mode, "n_samples": self.n_samples, "raster_exact": self.raster_exact,
                "agreement": self.agreement, "layer_spikes": self.layer_spikes,
                "first_mismatch": None if self.first_mismatch is None else list(self.first_mismatch)}


def twin_outputs(twin: NetxTwin, spikes: np.ndarray, batch_size: int = 64) -> tuple[np.ndarray, list[int]]:
    """The twin's output rasters (N, K, T) uint8 and each layer's total spikes, no gradient."""
    from ..train import forward_batches

    rasters, totals = [], np.zeros(len(twin.layers), dtype=np.int64)
    for layers in forward_batches(twin, spikes, batch_size):
        rasters.append(layers[-1].numpy().astype(np.uint8))
        totals += [int(out.sum()) for out in layers]
    return np.concatenate(rasters), totals.tolist()


def prove_twin(twin: NetxTwin, network_file: str | Path, spikes: np.ndarray, *, lanes: int | None = None,
               timeout: float | None = None) -> TwinProof:
    """Compare the twin's output spikes with the ``loihi2-fixed`` replay of ``network_file``
    under the twin's sample mode (``fresh`` or ``interval``).

    Args:
        twin: the twin (of ``network_file``).
        spikes: (N, *input_shape, T) binary spikes in SLAYER's layout.
        lanes, timeout: passed to :func:`harness.device.backend.replay`.
    """
    from ..device.backend import check_spikes, replay

    spikes = check_spikes(spikes)
    device = replay(network_file, spikes, PROOF_PROFILE, lanes=lanes, timeout=timeout, sample_mode=twin.sample_mode)
    rasters, layer_spikes = twin_outputs(twin, spikes)
    same = (rasters == device.rasters).reshape(len(spikes), -1).all(axis=1)
    differ = np.argwhere(rasters != device.rasters)
    twin_pred = predict(rasters.sum(-1))
    return TwinProof(n_samples=len(spikes), raster_exact=float(same.mean()),
                     agreement=float(np.mean(twin_pred == device.predictions)), layer_spikes=layer_spikes,
                     first_mismatch=tuple(int(i) for i in differ[0]) if len(differ) else None,
                     twin_predictions=twin_pred, device_predictions=device.predictions, sample_mode=twin.sample_mode)


def _load_array(value, what: str) -> np.ndarray:
    """An array given directly or as a .npy file."""
    if isinstance(value, (str, Path)):
        path = Path(value)
        if not path.exists():
            raise DataError(f"{what}: {path} not found")
        try:
            return np.load(path, allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise DataError(f"{what}: {path} is not a readable .npy array ({exc})") from None
    return np.asarray(value)


def load_test_data(data=None, spikes=None, labels=None, steps: int | None = None, dt_ms: float | None = None,
                   limit: int | None = None) -> tuple[np.ndarray, np.ndarray, dict]:
    """The import's test data: an N-MNIST folder (``data``), or ``spikes`` and ``labels``.

    N-MNIST: the test split binned to ``steps`` (default 30) bins of ``dt_ms`` (default 10 ms),
    sensor (2, 34, 34). Arrays (or .npy files): spikes (N, C, T) or (N, C, H, W, T) binary,
    labels (N,) ints; T comes from the array (``steps``, when given, must agree) and ``dt_ms``
    (ms per step) must be given.

    Returns:
        spikes, labels and a description for the card (source, shape, dt_ms, n).
    """
    from ..data import load_nmnist
    from ..device.backend import check_spikes

    if (data is None) == (spikes is None):
        raise DataError("import test data: give either an N-MNIST folder (data) or spikes with labels, not "
                        f"{'both' if data is not None else 'neither'}")
    if data is not None:
        test = load_nmnist(data, "test", steps=steps or 30, dt_ms=dt_ms or 10.0, limit=limit)
        return test.spikes, test.labels, {**test.metadata(), "source": str(Path(data).resolve()), "n": len(test)}
    if labels is None:
        raise DataError("import test data: spikes given without labels")
    source = str(Path(spikes).resolve()) if isinstance(spikes, (str, Path)) else "array"
    spikes = check_spikes(_load_array(spikes, "import spikes"))[:limit]
    labels = _load_array(labels, "import labels")
    if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
        raise DataError(f"import labels must be (N,) integers, got shape {labels.shape} dtype {labels.dtype}")
    labels = labels[:limit].astype(np.int64)
    if len(labels) != len(spikes):
        raise DataError(f"import data: {len(spikes)} spike samples but {len(labels)} labels")
    if steps is not None and steps != spikes.shape[-1]:
        raise DataError(f"import data: spikes have T = {spikes.shape[-1]} steps, but steps = {steps} was given")
    if dt_ms is None or not dt_ms > 0:
        raise DataError(f"import data: spike arrays do not say how long a step is; give dt_ms > 0 (got {dt_ms})")
    frame = spikes.shape[1:-1]
    sensor = (frame[2], frame[1], frame[0]) if len(frame) == 3 else (frame[0], 1, 1)  # (W, H, P)
    given = SpikeSet(spikes, labels, dataset="imported", encoding="given", dt_ms=float(dt_ms), sensor_size=sensor)
    return spikes, labels, {**given.metadata(), "source": source, "n": len(spikes)}


def _checkpoint_bytes(twin: NetxTwin) -> bytes:
    buffer = io.BytesIO()
    torch.save(twin.checkpoint(), buffer)
    return buffer.getvalue()


def _layer_card(twin: NetxTwin) -> list[dict]:
    return [{"name": layer.name, "kind": layer.kind, "shape": list(layer.shape), "vThMant": layer.threshold,
             "iDecay": layer.current_decay, "vDecay": layer.voltage_decay, "bias": bool(layer.bias.any()),
             "max_delay": 0 if layer.delay is None else int(layer.delay.max()), "weight_exp": layer.weight_exp}
            for layer in twin.layers]


def _identity(source: Path, spikes: np.ndarray, labels: np.ndarray, dataset: dict, input_shape, name,
              provenance, sample_mode: str) -> str:
    """What an import is made from: the file's bytes, the test data as fed, the import's settings
    (the sample mode its proof ran under included), versions."""
    return identity(stage="import", network_sha256=digest_file(source), test_sha256=digest_arrays(spikes, labels),
                    dt_ms=dataset["dt_ms"], input_shape=None if input_shape is None else list(input_shape), name=name,
                    provenance=provenance or {}, sample_mode=sample_mode, versions=numeric_versions())


def _kept(run: RunDir, source: Path, data, spikes, labels, steps, dt_ms, limit, input_shape, name,
          provenance, sample_mode: str) -> dict | None:
    """The card of ``run`` when it was imported from this file and data (then nothing is redone), else None."""
    try:
        test_spikes, test_labels, dataset = load_test_data(data, spikes, labels, steps, dt_ms, limit)
    except HarnessError:
        return None
    if stored_identity(run.card_file) != _identity(source, test_spikes, test_labels, dataset, input_shape, name,
                                                   provenance, sample_mode):
        return None
    return open_run(run.root).card


def _imported_from(run: RunDir, source: Path) -> bool:
    """Whether ``run`` holds an import of the file ``source`` (the same bytes), whatever its settings."""
    try:
        card = open_run(run.root).card
    except HarnessError:
        return False
    return card.get("kind") == CARD_KIND and card.get("source", {}).get("sha256") == digest_file(source)


def import_netx(network_file: str | Path, run_dir: str | Path, *, data=None, spikes=None, labels=None,
                steps: int | None = None, dt_ms: float | None = None, input_shape=None, name: str | None = None,
                limit: int | None = None, lanes: int | None = None, force: bool = False,
                provenance: dict | None = None, sample_mode: str = FRESH) -> dict:
    """Import a netx network into ``run_dir`` (module docstring), proven on its test data.

    Args:
        network_file: the netx HDF5 file (any lava-dl export the device replay supports).
        run_dir: the run directory to write (``model/`` inside it).
        data / spikes, labels / steps, dt_ms, limit: test data (:func:`load_test_data`).
        input_shape: SLAYER (C, H, W) of one frame for a conv network without an Input layer
            (default: the test spikes' frame shape).
        name: the model's name (default: the file's stem).
        lanes: replay lanes for the proof (default: from size and memory).
        force: replace an existing ``model/`` (otherwise refused, so nothing is overwritten,
            unless it is an import of the same file made with other data or settings: that one
            is imported and proved again).
        provenance: more about where the network came from (e.g. the NIR graph it was made
            from and its quantization agreement), stored in the card as ``provenance``.
        sample_mode: how samples meet the network, for the twin and its proof: ``"fresh"``
            (netx's defaults, a freshly loaded network per sample) or ``"interval"``.
    Returns:
        The card, as written to ``model/card.json``: ``kind`` ("imported"), ``model``,
        ``source`` {path, sha256, bytes}, ``steps``, ``dt_ms``, ``sample_mode``, ``input_shape``, ``n_classes``,
        ``layers`` (per layer: name, kind, shape, vThMant, iDecay, vDecay, bias, max_delay,
        weight_exp), ``loss`` (the attack loss and its targets), ``dataset`` (the test data),
        ``test_accuracy`` (the twin, offline), ``device_accuracy`` (loihi2-fixed),
        ``twin_device`` (:meth:`TwinProof.summary`), ``versions``, ``files``.
    Raises:
        ImportRefused: the twin does not reproduce the device exactly (nothing written).
        DeviceError: unreadable file or unsupported layer/neuron (named); DataError: bad data.
        HarnessError: ``model/`` exists and ``force`` is not set.
    """
    from ..versions import package_versions

    source = Path(network_file)
    if not source.is_file():
        raise DataError(f"{source}: network file not found")
    run = RunDir(run_dir)
    if run.card_file.exists() and not force:
        kept = _kept(run, source, data, spikes, labels, steps, dt_ms, limit, input_shape, name, provenance,
                     sample_mode)
        if kept is not None:
            return kept
        if not _imported_from(run, source):
            raise HarnessError(f"{run.card_file} exists: {run.root} already holds a model (not imported from this "
                               "file); replace it with --force")
        # the same file imported with other data or settings, or before a setting existed: prove it again
    test_spikes, test_labels, dataset = load_test_data(data, spikes, labels, steps, dt_ms, limit)
    if not len(test_spikes):
        raise DataError("import test data holds no sample")
    ident = _identity(source, test_spikes, test_labels, dataset, input_shape, name, provenance, sample_mode)
    frame = tuple(test_spikes.shape[1:-1])
    twin = twin_from_netx(source, test_spikes.shape[-1], dt_ms=dataset["dt_ms"],
                          input_shape=tuple(input_shape) if input_shape is not None else frame, name=name,
                          sample_mode=sample_mode)
    if frame != tuple(twin.input_shape):  # what the attack and the replay of the run will demand
        raise DataError(f"import test spikes of shape {tuple(test_spikes.shape)} (one sample: {frame} x T) do not "
                        f"fit {source}, which takes (N, {', '.join(map(str, (*twin.input_shape, 'T')))}); "
                        f"reshape them to {(len(test_spikes), *twin.input_shape, test_spikes.shape[-1])}")
    if int(test_labels.max()) >= twin.n_classes or int(test_labels.min()) < 0:
        raise DataError(f"import labels must lie in 0..{twin.n_classes - 1} (the network's outputs), "
                        f"found {int(test_labels.min())}..{int(test_labels.max())}")
    proof = prove_twin(twin, source, test_spikes, lanes=lanes)
    if not proof.exact:
        sample, neuron, step = proof.first_mismatch or (-1, -1, -1)
        raise ImportRefused(f"{source}: the twin does not reproduce the device: {proof.raster_exact:.1%} identical "
                            f"output rasters, {proof.agreement:.1%} prediction agreement on {proof.n_samples} "
                            f"samples (first difference: sample {sample}, output {neuron}, step {step}); not imported")
    content = source.read_bytes()
    card = {
        "kind": CARD_KIND, "format": "netx", "model": twin.spec.name,
        "source": {"path": str(source.resolve()), "sha256": hashlib.sha256(content).hexdigest(), "bytes": len(content)},
        "steps": twin.steps, "dt_ms": twin.dt_ms, "sample_mode": twin.sample_mode, "input_shape": list(twin.input_shape),
        "n_classes": twin.n_classes, "layers": _layer_card(twin),
        "loss": {"name": "margin", "note": "the default attack loss of an imported network: the margin on output "
                                           "spike counts (best other class minus the true class), through the "
                                           "twin's surrogate; --loss spike-rate uses the twin's spec targets "
                                           f"(true rate {twin.spec.training['true_rate']}, false rate "
                                           f"{twin.spec.training['false_rate']})"},
        "dataset": {**dataset, "path": None, "n_train": 0, "n_test": len(test_labels)},
        "spec": twin.spec.to_dict(), "seed": 0, "train_accuracy": None, "provenance": provenance or {},
        "test_accuracy": accuracy(proof.twin_predictions, test_labels),
        "device_accuracy": accuracy(proof.device_predictions, test_labels),
        "twin_device": proof.summary(),
        "versions": package_versions(),
        "files": {"checkpoint": "checkpoint.pt", "network": "network.net"}, "identity": ident,
    }
    write_bytes(run.network, content)
    write_bytes(run.checkpoint, _checkpoint_bytes(twin))
    write_h5(run.model_dir / TEST_DATA, {"spikes": test_spikes, "labels": test_labels}, {"dataset": dataset},
             kind=TEST_DATA_KIND)
    write_json(run.card_file, card)
    return card
