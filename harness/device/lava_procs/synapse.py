"""Lava ``Sparse`` models that add only the weight columns of the inputs that spiked.

Lava's own models (:mod:`lava.proc.sparse.models`) compute a step's synaptic input as
``weights[:, s_in].sum(axis=1)`` on the CSR weight matrix: selecting columns of a CSR matrix
walks every stored synapse, so each step costs the whole matrix (about 16 ms for 16 lanes of
nmnist-mlp's first layer, 16 x 241k synapses) although ~4% of N-MNIST's input elements spike. These models keep a
column-compressed (CSC) copy of the same weights, made once after Lava's own first-step weight
scaling, and each step take only the spiking inputs' columns (cost proportional to the synapses
actually used, 0.7 ms in the same case).

The result is the stock model's, bit for bit:

- ``fixed_pt``: the same clipped and truncated integer weights, summed exactly in int64 (the
  stock sum's dtype), then the same shift by ``weight_exp``; integer sums do not depend on order;
- ``floating_pt``: the selected columns are turned back into CSR rows (columns ascending, as
  the stock column selection leaves them) and summed by the same scipy ``sum(axis=1)``, so
  every row adds the same floats in the same order.

Selected for Lava's ``Sparse`` through the run configuration's ``exception_proc_model_map``
(:func:`harness.device.lava_sim.run_config`; ``synapse="stock"`` keeps Lava's models), so they
carry no decorator of their own (they inherit the tags of the models they extend).
``DelaySparse`` (networks with axonal delays) always runs Lava's model.
"""
from __future__ import annotations

import numpy as np
from lava.proc.sparse.models import PySparseModelBitAcc, PySparseModelFloat
from lava.utils.weightutils import clip_weights, determine_sign_mode, truncate_weights


class _ActiveColumns:
    """Keeps the weights as a CSC matrix (outputs, inputs) too, to read columns cheaply."""

    _columns = None

    def _csc(self):
        """The CSC copy of ``self.weights``, made on first use (after Lava's weight scaling)."""
        if self._columns is None:
            self._columns = self.weights.tocsc()
            self._columns.sort_indices()
        return self._columns


class ActiveColumnsSparseFixed(_ActiveColumns, PySparseModelBitAcc):
    """``fixed_pt`` Sparse (bit-accurate Loihi): Lava's weight scaling, then active columns only."""

    def run_spk(self) -> None:
        self.weight_exp: int = self.proc_params.get("weight_exp", 0)
        if not self.weights_set:  # as Lava's model: clip to 8 bits, truncate to num_weight_bits
            sign_mode = self.proc_params.get("sign_mode") or determine_sign_mode(self.weights)
            self.weights = clip_weights(self.weights, sign_mode, num_bits=8)
            self.weights = truncate_weights(self.weights, sign_mode, self.proc_params.get("num_weight_bits", 8))
            self.weights_set = True
        self.a_out.send(self.a_buff)  # the input accumulated at the previous step, as Lava's model
        if self.num_message_bits.item() > 0:  # graded spikes: every input counts with its value
            accumulated = self.weights.dot(self.s_in.recv())
        else:
            accumulated = self._integer_sum(self.s_in.recv())
        shift = self.weight_exp
        self.a_buff = np.left_shift(accumulated, shift) if shift > 0 else np.right_shift(accumulated, -shift)

    def _integer_sum(self, spikes: np.ndarray) -> np.ndarray:
        """(outputs,) int64 sum of the active columns (the stock sum's dtype). bincount adds in
        float64, exact here: every partial sum is an integer far below 2**53 (8-bit weights)."""
        columns, active = self._csc(), np.flatnonzero(spikes)
        starts, ends = columns.indptr[active], columns.indptr[active + 1]
        lengths = ends - starts
        synapses = np.repeat(ends - np.cumsum(lengths), lengths) + np.arange(lengths.sum())  # their CSC positions
        return np.bincount(columns.indices[synapses], weights=columns.data[synapses],
                           minlength=columns.shape[0]).astype(np.int64)


class ActiveColumnsSparseFloat(_ActiveColumns, PySparseModelFloat):
    """``floating_pt`` Sparse: the same floats added in the same order as Lava's model."""

    def run_spk(self) -> None:
        self.a_out.send(self.a_buff)
        if self.num_message_bits.item() > 0:
            self.a_buff = self.weights.dot(self.s_in.recv())
        else:
            self.a_buff = self._ordered_sum(self.s_in.recv())

    def _ordered_sum(self, spikes: np.ndarray) -> np.ndarray:
        """(outputs,) float64 sum of the active columns, each row's floats in ascending column
        order summed by scipy's ``sum(axis=1)``, as Lava's ``weights[:, s_in].sum(axis=1)``."""
        return self._csc()[:, np.flatnonzero(spikes)].tocsr().sum(axis=1).A1
