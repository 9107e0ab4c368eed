"""What a converter sees: ONNX values, their constants and shapes, and their TFLite layouts.

ONNX is channels-first (NCHW), TFLite's convolutions are channels-last (NHWC). Instead of a
transpose pair around every op, each converted value remembers its *layout*: a permutation
``perm`` such that the stored TFLite tensor has ``stored.shape[i] == onnx_shape[perm[i]]``.
Convolutions ask for their input channels-last (``ctx.nhwc``) and produce channels-last
outputs; layout-agnostic ops (activations, elementwise math, pooling, concat on a mapped axis,
reductions) keep whatever layout they were given; ops that depend on the memory order
(Reshape, Flatten, Softmax on a non-last axis) ask for the ONNX layout (``ctx.onnx_layout``).
``ctx.get`` inserts a TRANSPOSE only where a layout changes, and caches it, so a chain of
convolutions, pools and activations carries no transposes at all.

Constants are never converted until a converter asks for one, so a weight can be laid out the
way its reader wants (an OHWI conv kernel, a broadcast bias in the reader's layout).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..graph import dim_size
from .registry import Unsupported
from .writer import ModelWriter


def identity(rank: int) -> tuple[int, ...]:
    return tuple(range(rank))


def channels_last(rank: int) -> tuple[int, ...]:
    """NCHW -> NHWC (and NCW -> NWC, NCDHW -> NDHWC)."""
    return (0, *range(2, rank), 1) if rank >= 3 else identity(rank)


def compose(src: tuple[int, ...], dst: tuple[int, ...]) -> tuple[int, ...]:
    """The TRANSPOSE perm that turns a tensor stored in layout ``src`` into layout ``dst``."""
    return tuple(src.index(a) for a in dst)


@dataclass
class Value:
    tensor: int
    perm: tuple[int, ...]


class Context:
    def __init__(self, model: Any, writer: ModelWriter | None = None):
        from onnx import numpy_helper

        self.model = model
        self.graph = model.graph
        self.w = writer or ModelWriter()
        self.consts: dict[str, np.ndarray] = {i.name: numpy_helper.to_array(i) for i in self.graph.initializer}
        self.shapes: dict[str, tuple[int, ...]] = {}
        self.dtypes: dict[str, np.dtype] = {}
        for vi in list(self.graph.input) + list(self.graph.value_info) + list(self.graph.output):
            self._record(vi)
        for name, a in self.consts.items():
            self.shapes[name], self.dtypes[name] = tuple(a.shape), a.dtype
        self.values: dict[str, Value] = {}
        self._cache: dict[tuple[str, tuple[int, ...]], int] = {}
        self.opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 13)

    def _record(self, vi: Any) -> None:
        from onnx import helper

        tt = vi.type.tensor_type
        if not tt.HasField("shape"):
            return
        sizes = [dim_size(d) for d in tt.shape.dim]
        known = tuple(d for d in sizes if d is not None)
        if len(known) == len(sizes):
            self.shapes[vi.name] = known
        if tt.elem_type:
            self.dtypes[vi.name] = np.dtype(helper.tensor_dtype_to_np_dtype(tt.elem_type))

    # ---- questions about ONNX values -------------------------------------------------------
    def const(self, name: str) -> np.ndarray | None:
        return self.consts.get(name) if name else None

    def const_array(self, name: str) -> np.ndarray:
        """The value of ``name``, which the op needs constant (a weight, a shape, an exponent); Unsupported if it
        is computed at run time."""
        value = self.const(name)
        if value is None:
            raise Unsupported(f"{name!r} computed at run time (TFLite needs it constant here)")
        return value

    def is_const(self, name: str) -> bool:
        return name in self.consts

    def shape(self, name: str) -> tuple[int, ...]:
        if name not in self.shapes:
            raise Unsupported(f"the shape of {name!r} is not static; give --input-shape", "dynamic-shape")
        return self.shapes[name]

    def rank(self, name: str) -> int:
        return len(self.shape(name))

    def dtype(self, name: str) -> np.dtype:
        return self.dtypes.get(name, np.dtype(np.float32))

    def layout(self, name: str) -> tuple[int, ...]:
        """The layout a converted (non-constant) value is stored in."""
        if name in self.values:
            return self.values[name].perm
        return identity(self.rank(name))

    @staticmethod
    def attr(node: Any, name: str, default: Any = None) -> Any:
        from onnx import helper

        for a in node.attribute:
            if a.name == name:
                value = helper.get_attribute_value(a)
                return value.decode() if isinstance(value, bytes) else value
        return default

    # ---- TFLite tensors -------------------------------------------------------------------
    def get(self, name: str, perm: tuple[int, ...] | None = None, dtype: Any = None) -> int:
        """The TFLite tensor holding ONNX value ``name`` in layout ``perm`` (default: as stored)."""
        if name in self.consts:
            a = self.consts[name]
            if perm is not None and perm != identity(a.ndim):
                a = np.transpose(a, perm)
            return self.constant(a, name, dtype)
        if name not in self.values:
            raise Unsupported(f"{name!r} was never produced (a node before it failed to convert)", "missing-input")
        v = self.values[name]
        if perm is None or perm == v.perm:
            return v.tensor
        key = (name, perm)
        if key not in self._cache:
            shape = self.shape(name)
            stored = tuple(shape[p] for p in perm)
            out = self.w.tensor(f"{name}/t", stored, self.dtype(name))
            if [p for p in perm if shape[p] != 1] == [p for p in v.perm if shape[p] != 1]:
                # only size-1 axes move (NCHW -> NHWC with C = 1): the bytes are already in order
                self.reshape(v.tensor, stored, out)
            else:
                self.op("TRANSPOSE", [v.tensor, self.constant(np.array(compose(v.perm, perm), np.int32))], [out],
                        "TransposeOptions")
            self._cache[key] = out
        return self._cache[key]

    def onnx_layout(self, name: str) -> int:
        return self.get(name, identity(self.rank(name)))

    def nhwc(self, name: str) -> int:
        return self.get(name, channels_last(self.rank(name)))

    def constant(self, array: Any, hint: str = "const", dtype: Any = None) -> int:
        a = np.asarray(array)
        if dtype is not None:
            a = a.astype(dtype)
        elif a.dtype == np.float64:
            a = a.astype(np.float32)
        elif a.dtype == np.int64:
            a = _int32(a)
        return self.w.const(hint, a)

    def output(self, name: str, perm: tuple[int, ...] | None = None, dtype: Any = None) -> int:
        """Create the TFLite tensor for ONNX output ``name``, stored in layout ``perm`` (default ONNX)."""
        shape = self.shape(name)
        perm = perm if perm is not None else identity(len(shape))
        t = self.w.tensor(name, tuple(shape[p] for p in perm), dtype or self.dtype(name))
        self.values[name] = Value(t, perm)
        return t

    def alias(self, name: str, source: str) -> None:
        """``name`` is ``source`` (Identity, Dropout, a Reshape that changes nothing)."""
        if source in self.consts:
            self.consts[name] = self.consts[source]
        else:
            self.values[name] = self.values[source]

    def tmp(self, shape: tuple[int, ...] | list[int], dtype: Any = np.float32, hint: str = "tmp") -> int:
        return self.w.tensor(hint, tuple(shape), dtype)

    def reshape(self, src: int, shape: tuple[int, ...] | list[int], out: int | None = None, hint: str = "r") -> int:
        """RESHAPE tensor ``src`` to ``shape`` (into ``out``, else a new tensor of ``src``'s dtype);
        an empty ``shape`` makes a scalar."""
        shape = tuple(int(d) for d in shape)
        if out is None:
            out = self.tmp(shape, self.w.tensors[src].dtype, hint)
        self.op("RESHAPE", [src, self.constant(np.array(shape, np.int32).reshape(len(shape)))], [out],
                "ReshapeOptions", newShape=list(shape))
        return out

    def op(self, code: str, inputs: list[int], outputs: list[int], options_type: str | None = None,
           **options: Any) -> None:
        self.w.op(code, inputs, outputs, options_type, **options)

    # ---- helpers shared by many converters ---------------------------------------------------
    def broadcast_operand(self, name: str, rank: int, perm: tuple[int, ...]) -> int:
        """``name`` for an elementwise op whose output has ``rank`` and layout ``perm``: leading
        1s added (numpy broadcasting) and laid out like the output."""
        if name in self.consts:
            a = self.consts[name]
            a = a.reshape((1,) * (rank - a.ndim) + a.shape)
            if a.size == 1:
                a = a.reshape(())  # a scalar broadcasts in any layout
                return self.constant(a, name, self.dtype(name) if self.dtype(name) != np.float64 else np.float32)
            return self.constant(np.transpose(a, perm), name)
        r = self.rank(name)
        if r == rank:
            return self.get(name, perm)
        padded = (1,) * (rank - r) + self.shape(name)
        src = self.onnx_layout(name)
        flat = self.reshape(src, padded, hint=f"{name}/r")
        if perm == identity(rank):
            return flat
        out = self.w.tensor(f"{name}/rt", tuple(padded[p] for p in perm), self.dtype(name))
        self.op("TRANSPOSE", [flat, self.constant(np.array(perm, np.int32))], [out], "TransposeOptions")
        return out

    def stored_axis(self, name: str, axis: int) -> int:
        """Where ONNX axis ``axis`` of value ``name`` lives in its stored tensor."""
        r = self.rank(name)
        return self.layout(name).index(axis % r)


def _int32(a: np.ndarray) -> np.ndarray:
    info = np.iinfo(np.int32)
    clipped = np.clip(a, info.min, info.max)  # INT64_MAX ends in Slice means "to the end"
    return clipped.astype(np.int32)
