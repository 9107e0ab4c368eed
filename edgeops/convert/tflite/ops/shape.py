"""Shape ops: Reshape, Flatten (more in this family: Squeeze, Unsqueeze, Transpose, Concat, Split,
Slice, Pad, Identity). Ops that depend on memory order take their input in the ONNX layout."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..context import Context
from ..registry import converter


def reshape_to(ctx: Context, x: str, y: str) -> None:
    """``y`` is ``x`` with the (static) shape ONNX inferred for ``y``."""
    shape = ctx.shape(y)
    ctx.op("RESHAPE", [ctx.onnx_layout(x), ctx.constant(np.array(shape or (1,), np.int32))], [ctx.output(y)],
           "ReshapeOptions", newShape=[int(d) for d in shape])


@converter("Reshape", tflite="RESHAPE", notes="the target shape is folded to a constant first")
def convert_reshape(node: Any, ctx: Context) -> None:
    reshape_to(ctx, node.input[0], node.output[0])


@converter("Flatten", tflite="RESHAPE")
def convert_flatten(node: Any, ctx: Context) -> None:
    reshape_to(ctx, node.input[0], node.output[0])
