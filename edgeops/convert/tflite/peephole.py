"""Rewrites on the finished TFLite op list that remove work the layout change introduced.

``fold_transpose_into_fully_connected``: a conv net ends in ``Flatten -> Gemm``. ONNX flattens
NCHW memory, so the exporter transposes the NHWC activations back before the RESHAPE. When every
reader of that flattened tensor is a FULLY_CONNECTED with constant weights, the transpose can go:
flatten the NHWC tensor directly and permute the weights' input columns to match, once, at export.

``slice_read_split_outputs``: a SPLIT or SPLIT_V some of whose outputs nobody reads (an LSTM's first
step with no cell state has no use for its forget gate; an ONNX Split with an unused output) becomes
one SLICE per output that is read. LiteRT's XNNPACK delegate leaves an unread output of a delegated
op unallocated, and ai-edge-quantizer's calibration, which reads every named tensor, then fails with
"Tensor data is null" (the CRNN of the model zoo, issue 12).
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
    columns = np.arange(int(np.prod(transposed_shape[1:]))).reshape(transposed_shape[1:])
    inverse = np.argsort(perm[1:])
    order = np.transpose(columns, inverse).reshape(-1)
    for fc in fcs:
        weight = w.tensors[fc.inputs[1]]
        assert weight.data is not None  # every weight was checked constant above
        fc.inputs[1] = w.const(f"{weight.name}/nhwc", weight.data[:, order])
    reshape.inputs[0] = src
    w.ops.remove(transpose)
    return True


def slice_read_split_outputs(w: ModelWriter) -> int:
    """Rewrite every SPLIT/SPLIT_V with an unread output; returns how many were rewritten."""
    read = set(w.outputs)
    for op in w.ops:
        read.update(op.inputs)
    rewritten = 0
    for split in [op for op in w.ops if op.code in ("SPLIT", "SPLIT_V")]:
        if all(o in read for o in split.outputs) or not any(o in read for o in split.outputs):
            continue  # all read: fine; none read: a dead op, which ``ModelWriter.prune`` drops
        src, axis_tensor = (split.inputs[1], split.inputs[0]) if split.code == "SPLIT" else split.inputs[::2]
        axis_data = w.tensors[axis_tensor].data
        if axis_data is None:
            continue
        shape = w.tensors[src].shape
        axis = int(np.asarray(axis_data).reshape(-1)[0]) % len(shape)
        slices, start = [], 0
        for out in split.outputs:
            size = list(shape)
            size[axis] = w.tensors[out].shape[axis]
            if out in read:
                begin = [0] * len(shape)
                begin[axis] = start
                name = w.tensors[out].name
                w.op("SLICE", [src, w.const(f"{name}/begin", np.array(begin, np.int32)),
                               w.const(f"{name}/size", np.array(size, np.int32))], [out], "SliceOptions")
                slices.append(w.ops.pop())
            start += size[axis]
        at = w.ops.index(split)
        w.ops[at:at + 1] = slices
        rewritten += 1
    return rewritten
