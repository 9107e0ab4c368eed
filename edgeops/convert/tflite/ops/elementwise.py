"""Add, Sub, Mul, Div with numpy broadcasting, in the layout of their first full-rank operand."""

from __future__ import annotations

from typing import Any

from ..context import Context
from ..registry import converter
from ._common import elementwise_layout

_CODES = {"Add": ("ADD", "AddOptions"), "Sub": ("SUB", "SubOptions"), "Mul": ("MUL", "MulOptions"),
          "Div": ("DIV", "DivOptions")}


def _check_float(node: Any, ctx: Context) -> str | None:
    if ctx.dtype(node.output[0]).kind not in "f":
        return f"{ctx.dtype(node.output[0])} arithmetic (only float tensors are converted)"
    return None


@converter("Add", "Sub", "Mul", "Div", tflite=("ADD", "SUB", "MUL", "DIV"), check=_check_float,
           notes="numpy broadcasting; a constant operand is laid out like the other one")
def convert_binary(node: Any, ctx: Context) -> None:
    y = node.output[0]
    rank = ctx.rank(y)
    perm = elementwise_layout(ctx, list(node.input), rank)
    a = ctx.broadcast_operand(node.input[0], rank, perm)
    b = ctx.broadcast_operand(node.input[1], rank, perm)
    code, options = _CODES[node.op_type]
    ctx.op(code, [a, b], [ctx.output(y, perm)], options, fusedActivationFunction=0)
