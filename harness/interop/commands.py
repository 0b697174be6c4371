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

from ..errors import ConfigError
from .netx_import import FRESH, import_netx, load_test_data


def import_network(run_dir: str | Path, *, network: str | Path | None = None, nir_graph: str | Path | None = None,
                   data=None, spikes: np.ndarray | None = None, labels: np.ndarray | None = None,
                   steps: int | None = None, dt_ms: float | None = None, limit: int | None = None,
                   force: bool = False, sample_mode: str = FRESH) -> dict:
    """Import exactly one of ``network`` (netx HDF5) and ``nir_graph`` into ``run_dir``; the card.

    Test data: an N-MNIST folder ``data``, or ``spikes`` (N, C, [H, W,] T) with ``labels`` (N,)
    and ``dt_ms`` (see :func:`harness.interop.netx_import.load_test_data`). ``sample_mode``: the
    twin's and its proof's (:func:`import_netx`).
    """
    if (network is None) == (nir_graph is None):
        raise ConfigError("give exactly one of --network FILE.net and --nir GRAPH.nir")
    if network is not None:
        return import_netx(network, run_dir, data=data, spikes=spikes, labels=labels, steps=steps, dt_ms=dt_ms,
                           limit=limit, force=force, sample_mode=sample_mode)
    from .nir import import_nir, measure_agreement

    test_spikes, test_labels, described = load_test_data(data, spikes, labels, steps, dt_ms, limit)
    with tempfile.TemporaryDirectory(prefix="harness-nir-") as tmp:
        converted = import_nir(nir_graph, Path(tmp) / "network.net", steps=test_spikes.shape[-1],
                               dt=float(described["dt_ms"]) / 1000 if dt_ms is not None else None)
        agreement = measure_agreement(converted, test_spikes, labels=test_labels)
        provenance = {"nir": {"graph": str(Path(nir_graph).resolve()), "dt_s": converted.dt_s,
                              "reset_assumed": converted.reset, "agreement": agreement}}
        return import_netx(converted.netx_path, run_dir, spikes=test_spikes, labels=test_labels,
                           dt_ms=float(described["dt_ms"]), force=force, provenance=provenance,
                           sample_mode=sample_mode)


def export_network(run_dir: str | Path, out: str | Path) -> Path:
    """The network of ``run_dir`` (trained by harness) as a NIR graph at ``out``."""
    from ..runs import open_run
    from .nir import export_nir

    return export_nir(open_run(run_dir).net, out)
