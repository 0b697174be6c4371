"""Every synapse layer of a netx network as one sparse matrix, in Lava's neuron order.

Replay runs many samples side by side ("lanes": block-diagonal copies of the network), so
every layer, dense or conv, becomes a sparse (out, in) integer weight matrix per copy:

- dense: the stored weight; after a flatten its columns follow netx's flatten of a
  (W, H, C) Lava layer (``out.transpose([2, 1, 0]).flatten()``, i.e. SLAYER's C, H, W order);
- conv: Lava's own :func:`lava.proc.conv.utils.conv_to_sparse` on the kernel exactly as
  :meth:`lava.lib.dl.netx.hdf5.Network.create_conv` prepares it for Lava's Conv process.
  The sum a neuron receives is the same integer as Lava's Conv process computes, and unlike
  Conv it batches into block-diagonal copies (checked against stock netx in the tests).

Neuron order inside one copy: a 3-D layer (C, H, W) is stored in Lava's (W, H, C) order,
a 1-D layer as is. Explicit zero weights are dropped (they are not synapses).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import sparse

from .netx_reader import Layer, NetworkDescription


def lava_order(shape: tuple[int, ...]) -> np.ndarray:
    """Index map from SLAYER's flat order to Lava's: ``lava_vector = slayer_vector[lava_order]``.

    For a 3-D (C, H, W) shape, Lava position (w, h, c) holds SLAYER element (c, h, w); a 1-D
    shape maps to itself.
    """
    size = int(np.prod(shape))
    if len(shape) != 3:
        return np.arange(size)
    return np.arange(size).reshape(shape).transpose(2, 1, 0).ravel()


@dataclass(frozen=True)
class LoweredLayer:
    """One layer of one copy, ready to be tiled into lanes.

    Attributes:
        layer: the layer as read from the file.
        weight: (size, inputs) int64 CSR weight matrix in Lava order, or None for an input
            layer (its neurons receive the input spikes directly).
        delay: (size,) int64 axonal delay per neuron, or None.
        bias: (size,) int64 bias mantissa per neuron in Lava order, or None.
    """

    layer: Layer
    weight: sparse.csr_matrix | None
    delay: np.ndarray | None
    bias: np.ndarray | None

    @property
    def size(self) -> int:
        return self.layer.size


def _conv_matrix(layer: Layer, in_shape: tuple[int, int, int]) -> sparse.csr_matrix:
    from lava.proc.conv.utils import conv_to_sparse

    kernel = layer.weight[:, :, ::-1, ::-1].transpose(0, 3, 2, 1)  # as netx's create_conv
    xy = {key: tuple(reversed(layer.conv[key])) for key in ("stride", "padding", "dilation")}
    dst, src, values = conv_to_sparse(tuple(reversed(in_shape)), tuple(reversed(layer.shape)), kernel,
                                      xy["stride"], xy["padding"], xy["dilation"], layer.conv["groups"])
    matrix = sparse.coo_matrix((values.astype(np.int64), (dst, src)),
                               shape=(layer.size, int(np.prod(in_shape)))).tocsr()
    matrix.sum_duplicates()
    return matrix


def _dense_matrix(layer: Layer, in_shape: tuple[int, ...]) -> sparse.csr_matrix:
    weight = np.asarray(layer.weight, dtype=np.int64)
    if len(in_shape) == 3:  # flatten of a Lava (W, H, C) layer, netx's transpose + flatten
        weight = weight[:, lava_order(in_shape)]
    return sparse.csr_matrix(weight)


def lower(network: NetworkDescription) -> list[LoweredLayer]:
    """The network's layers as per-copy sparse matrices (see the module docstring)."""
    lowered = []
    in_shape = network.input_shape if network.layers[0].kind != "dense" else (int(np.prod(network.input_shape)),)
    for layer in network.layers:
        if layer.kind == "input":
            weight = None
        elif layer.kind == "conv":
            weight = _conv_matrix(layer, in_shape)
        else:
            weight = _dense_matrix(layer, in_shape)
        if weight is not None:
            weight.eliminate_zeros()
        bias = None
        if layer.bias is not None:  # one per neuron (dense) or per channel (conv)
            bias = np.repeat(layer.bias, layer.size // len(layer.bias))[lava_order(layer.shape)]
        lowered.append(LoweredLayer(layer, weight, layer.delay, bias))
        in_shape = layer.shape
    return lowered


def input_order(network: NetworkDescription) -> np.ndarray:
    """Index map from a SLAYER input frame (flattened C, H, W) to the source's channel order.

    A network whose first layer is dense reads its input flattened in SLAYER's order; one
    that starts with a conv layer or a 3-D Input layer reads Lava's (W, H, C) order.
    """
    if network.layers[0].kind == "dense":
        return np.arange(int(np.prod(network.input_shape)))
    return lava_order(network.input_shape)


def output_order(network: NetworkDescription) -> np.ndarray:
    """Index map from the output layer's Lava order back to SLAYER's channel order."""
    return np.argsort(lava_order(network.output_shape))


def fanout(matrix: sparse.csr_matrix | None, size: int) -> np.ndarray:
    """(size,) number of synapses leaving each presynaptic neuron (zeros when no synapses)."""
    if matrix is None:
        return np.zeros(size, dtype=np.int64)
    return np.asarray(matrix.getnnz(axis=0), dtype=np.int64)
