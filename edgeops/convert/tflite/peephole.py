"""Rewrites on the finished TFLite op list that remove work the layout change introduced.

``fold_transpose_into_fully_connected``: a conv net ends in ``Flatten -> Gemm``. ONNX flattens
NCHW memory, so the exporter transposes the NHWC activations back before the RESHAPE. When every
reader of that flattened tensor is a FULLY_CONNECTED with constant weights, the transpose can go:
flatten the NHWC tensor directly and permute the weights' input columns to match, once, at export.
"""

from __future__ import annotations

import numpy as np

from .writer import ModelWriter, Op


def fold_transpose_into_fully_connected(w: ModelWriter) -> int:
    """Apply the rewrite wherever it fits; returns how many transposes were removed."""
    folded = 0
    for transpose in [op for op in w.ops if op.code == "TRANSPOSE"]:
        if _fold(w, transpose):
            folded += 1
    return folded


def _readers(w: ModelWriter, tensor: int) -> list[Op]:
    return [op for op in w.ops if tensor in op.inputs]


def _fold(w: ModelWriter, transpose: Op) -> bool:
    src, out = transpose.inputs[0], transpose.outputs[0]
    perm_data = w.tensors[transpose.inputs[1]].data
    if perm_data is None or out in w.outputs:
        return False
    perm = [int(p) for p in perm_data]
    readers = _readers(w, out)
    if len(readers) != 1 or readers[0].code != "RESHAPE":
        return False
    reshape = readers[0]
    flat = reshape.outputs[0]
    src_shape, flat_shape = w.tensors[src].shape, w.tensors[flat].shape
    if len(flat_shape) != 2 or flat_shape[0] != src_shape[0] or perm[0] != 0 or flat in w.outputs:
        return False
    fcs = _readers(w, flat)
    if not fcs or any(op.code != "FULLY_CONNECTED" or op.inputs[0] != flat
                      or w.tensors[op.inputs[1]].data is None for op in fcs):
        return False
    # column j of the new flat tensor (src order) holds what column order[j] held (transposed order)
    transposed_shape = tuple(src_shape[p] for p in perm)
    order = np.arange(int(np.prod(transposed_shape[1:]))).reshape(transposed_shape[1:])
    inverse = np.argsort(perm[1:])
    order = np.transpose(order, inverse).reshape(-1)
    for fc in fcs:
        weight = w.tensors[fc.inputs[1]]
        fc.inputs[1] = w.const(f"{weight.name}/nhwc", weight.data[:, order])
    reshape.inputs[0] = src
    w.ops.remove(transpose)
    return True
