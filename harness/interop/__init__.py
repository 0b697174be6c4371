"""Networks from outside the harness (netx files, NIR graphs), and back out.

- :mod:`harness.netx_twin`: the device's fixed-point arithmetic as a torch module (``twin_from_netx``,
  ``load_twin``);
- :mod:`.netx_import`: ``import_netx`` writes a run directory, ``prove_twin`` holds the twin
  against the ``loihi2-fixed`` replay;
- :mod:`.stock_netx`: stock netx run one sample at a time, the reference the replay equals;
- :mod:`.nir`: NIR graphs <-> a SLAYER twin and a quantized netx export (``import_nir``, ``export_nir``).
"""
from .netx_import import ImportRefused, TwinProof, import_netx, prove_twin
from ..netx_twin import NetxTwin, load_twin, twin_from_netx

__all__ = ["ImportRefused", "NetxTwin", "TwinProof", "import_netx", "load_twin", "prove_twin", "twin_from_netx"]
