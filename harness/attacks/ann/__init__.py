"""SNN vs ANN: the SNN's architecture as an ANN on spike rates, its L-infinity attacks, transfer both ways.

- :mod:`.model`: the ANN twin (:class:`RateANN`), its training and ``RUN_DIR/ann/model.pt``;
- :mod:`.fgsm`, :mod:`.bim`, :mod:`.pgd`: one attack per file (as torchattacks lays them out);
- :mod:`.compare`: :func:`ann_comparison` (white box on the ANN, black box both ways, equal L0)
  and its one-screen summary :func:`format_comparison`.
"""
from .bim import bim
from .compare import ATTACKS, DEFAULT_EPS, EPS_SCALES, ann_comparison, format_comparison
from .fgsm import fgsm
from .model import RateANN, ann_predict, spike_rates, train_ann
from .pgd import pgd

__all__ = ["ATTACKS", "DEFAULT_EPS", "EPS_SCALES", "RateANN", "ann_comparison", "ann_predict", "bim",
           "fgsm", "format_comparison", "pgd", "spike_rates", "train_ann"]
