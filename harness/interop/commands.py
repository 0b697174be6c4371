"""``harness import`` and ``harness export``: the interop functions behind the two commands.

- :func:`import_network`: a netx file, or a NIR graph (converted to a netx export first,
  :func:`harness.interop.nir.import_nir`), becomes a run directory (:func:`import_netx`), proven
  against the device on the given test data; for a NIR graph the card also records how far the
  device's reset and quantization move the graph's predictions (``provenance.nir``).
- :func:`export_network`: a run's network as a NIR graph.
"""
from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

from ..errors import ConfigError, DataError, HarnessError
from .netx_import import FRESH, import_netx, load_test_data

#: an import is refused (unless allowed) when the device gives no prediction on more than this share of rows
SILENT_LIMIT = 0.5


class SilentDevice(HarnessError):
    """The imported network leaves the device silent or tied on most test rows."""


def import_network(run_dir: str | Path, *, network: str | Path | None = None, nir_graph: str | Path | None = None,
                   data=None, spikes: np.ndarray | None = None, labels: np.ndarray | None = None,
                   steps: int | None = None, dt_ms: float | None = None, limit: int | None = None,
                   force: bool = False, sample_mode: str = FRESH, source: str | None = None,
                   source_reset: str | None = None, reference_predictions=None, allow_silent: bool = False) -> dict:
    """Import exactly one of ``network`` (netx HDF5) and ``nir_graph`` into ``run_dir``; the card.

    Test data: an N-MNIST folder ``data``, or ``spikes`` (N, C, [H, W,] T) with ``labels`` (N,)
    and ``dt_ms`` (see :func:`harness.interop.netx_import.load_test_data`). ``sample_mode``: the
    twin's and its proof's (:func:`import_netx`). A NIR graph also takes ``source`` (the
    exporting framework: its input-gain and reset conventions, :data:`harness.interop.nir.SOURCES`),
    ``source_reset`` (overrides the framework's reset), ``reference_predictions`` ((N,) ints or
    a .npy file: the framework's own predictions on the test data, -1 for none; the card then
    reports the device's agreement with them) and ``allow_silent``.

    Raises:
        SilentDevice: the device is silent or tied on most test rows (a wrong convention
            usually under-drives the network) and ``allow_silent`` is not set; nothing written.
    """
    if (network is None) == (nir_graph is None):
        raise ConfigError("give exactly one of --network FILE.net and --nir GRAPH.nir")
    if network is not None:
        if source or source_reset or reference_predictions is not None:
            raise ConfigError("--source, --source-reset and --reference-predictions apply to --nir graphs only")
        return import_netx(network, run_dir, data=data, spikes=spikes, labels=labels, steps=steps, dt_ms=dt_ms,
                           limit=limit, force=force, sample_mode=sample_mode)
    from .nir import RESETS, import_nir, measure_agreement

    if source_reset is not None and source_reset not in RESETS:
        raise ConfigError(f"--source-reset must be one of {', '.join(RESETS)}, got {source_reset!r}")
    test_spikes, test_labels, described = load_test_data(data, spikes, labels, steps, dt_ms, limit)
    reference = _reference_predictions(reference_predictions, len(test_spikes))
    with tempfile.TemporaryDirectory(prefix="harness-nir-") as tmp:
        converted = import_nir(nir_graph, Path(tmp) / "network.net", steps=test_spikes.shape[-1],
                               dt=float(described["dt_ms"]) / 1000 if dt_ms is not None else None, source=source)
        agreement = measure_agreement(converted, test_spikes, labels=test_labels, source_reset=source_reset,
                                      reference_predictions=reference)
        if agreement["device_silent_or_tied"] > SILENT_LIMIT and not allow_silent:
            raise SilentDevice(
                f"{nir_graph}: the device is silent or tied on {agreement['device_silent_or_tied']:.0%} of "
                f"{agreement['n']} test rows (source conventions: {converted.source.name}); its accuracy and "
                "agreement would mean nothing. Check --source (Norse adds the input straight to the current) "
                "and --dt-ms; --allow-silent imports anyway")
        provenance = {"nir": {"graph": str(Path(nir_graph).resolve()), "dt_s": converted.dt_s,
                              "source": converted.source.name, "source_detected": converted.source_detected,
                              "source_basis": converted.source.basis, "source_reset": agreement["source_reset"],
                              "device_reset": converted.reset, "agreement": agreement}}
        return import_netx(converted.netx_path, run_dir, spikes=test_spikes, labels=test_labels,
                           dt_ms=float(described["dt_ms"]), force=force, provenance=provenance,
                           sample_mode=sample_mode)


def _reference_predictions(value, n: int) -> np.ndarray | None:
    """(n,) int64 predictions given directly or as a .npy file (None: none given)."""
    if value is None:
        return None
    where = f"--reference-predictions {value}" if isinstance(value, (str, Path)) else "reference predictions"
    if isinstance(value, (str, Path)):
        try:
            value = np.load(value, allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise DataError(f"{where}: not a readable .npy array ({exc})") from None
    value = np.asarray(value)
    if value.shape != (n,) or not np.issubdtype(value.dtype, np.integer) or (len(value) and value.min() < -1):
        raise DataError(f"{where}: must be ({n},) integers, one class per test row (-1: no prediction), got shape "
                        f"{value.shape} dtype {value.dtype}")
    return value.astype(np.int64)


def export_network(run_dir: str | Path, out: str | Path) -> Path:
    """The network of ``run_dir`` (trained by harness) as a NIR graph at ``out``."""
    from ..runs import open_run
    from .nir import export_nir

    return export_nir(open_run(run_dir).net, out)
