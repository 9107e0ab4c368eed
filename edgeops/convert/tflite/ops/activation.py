"""Activations: Relu, Sigmoid, Tanh, Softmax (more in this family: Clip, LeakyRelu, PRelu, HardSigmoid,
HardSwish, Gelu). Layout-agnostic ones keep their input's layout; Softmax works on the last stored axis."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..context import Context
from ..registry import converter
from ._common import unary


@converter("Relu", tflite="RELU", notes="fused into the op before it where possible")
def convert_relu(node: Any, ctx: Context) -> None:
    unary(ctx, node, "RELU")


@converter("Sigmoid", tflite="LOGISTIC")
def convert_sigmoid(node: Any, ctx: Context) -> None:
    unary(ctx, node, "LOGISTIC")


@converter("Tanh", tflite="TANH")
def convert_tanh(node: Any, ctx: Context) -> None:
    unary(ctx, node, "TANH")


@converter("Softmax", tflite=("SOFTMAX", "TRANSPOSE", "RESHAPE"),
           notes="any axis (opset < 13: the 2-D coercion of the old definition)")
def convert_softmax(node: Any, ctx: Context) -> None:
    x, y = node.input[0], node.output[0]
    shape = ctx.shape(x)
    r = len(shape)
    axis = int(ctx.attr(node, "axis", -1 if ctx.opset >= 13 else 1)) % max(r, 1)
    if ctx.opset < 13 and axis != r - 1:  # old definition: softmax over the flattened [axis:] block
        src = ctx.onnx_layout(x)
        flat = (int(np.prod(shape[:axis])), int(np.prod(shape[axis:])))
        a = ctx.tmp(flat, np.float32, f"{x}/2d")
        ctx.op("RESHAPE", [src, ctx.constant(np.array(flat, np.int32))], [a], "ReshapeOptions", newShape=list(flat))
        b = ctx.tmp(flat, np.float32, f"{y}/2d")
        ctx.op("SOFTMAX", [a], [b], "SoftmaxOptions", beta=1.0)
        ctx.op("RESHAPE", [b, ctx.constant(np.array(shape, np.int32))], [ctx.output(y)], "ReshapeOptions",
               newShape=list(shape))
        return
    perm = ctx.layout(x)
    if perm[-1] != axis:  # bring the axis last, keeping the rest of the layout
        perm = tuple(p for p in perm if p != axis) + (axis,)
    ctx.op("SOFTMAX", [ctx.get(x, perm)], [ctx.output(y, perm)], "SoftmaxOptions", beta=1.0)
