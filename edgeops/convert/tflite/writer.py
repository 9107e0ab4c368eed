"""A TFLite flatbuffer builder over LiteRT's own schema module (no TensorFlow).

``ModelWriter`` collects tensors, constant buffers and operators and serializes them
with the object API of ``ai_edge_litert.schema_py_generated``. It gets right what
the interpreter needs and flatbuffers makes easy to miss:

* ``Model.version`` 3, file identifier ``TFL3``, buffer 0 the empty sentinel;
* operator codes carry ``builtin_code`` and ``deprecated_builtin_code`` (127 for codes >= 127);
* options whose schema default is 0 are written explicitly by the converters (softmax beta,
  strides), because flatbuffers leaves out fields equal to their default;
* constant data starts on a 16-byte boundary (runtimes map it in place);
* a ``serving_default`` SignatureDef names the inputs and outputs.

``fuse_activations`` is the one peephole pass: a RELU/RELU6/RELU_N1_TO_1 that is the only reader
of a conv, fully-connected or elementwise result becomes that op's fused activation.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

ALIGNMENT = 16

_DTYPES = {
    np.dtype("float32"): "FLOAT32", np.dtype("float16"): "FLOAT16", np.dtype("int32"): "INT32",
    np.dtype("int64"): "INT64", np.dtype("int8"): "INT8", np.dtype("uint8"): "UINT8", np.dtype("bool"): "BOOL",
    np.dtype("int16"): "INT16",
}


def schema() -> Any:
    from ai_edge_litert import schema_py_generated as tfl

    return tfl


def tensor_type(dtype: Any) -> int:
    name = _DTYPES.get(np.dtype(dtype))
    if name is None:
        raise TypeError(f"TFLite has no tensor type for {np.dtype(dtype)}")
    return getattr(schema().TensorType, name)


@dataclass
class Tensor:
    name: str
    shape: tuple[int, ...]
    dtype: np.dtype
    data: np.ndarray | None = None
    quantization: Any = None


@dataclass
class Op:
    code: str  # BuiltinOperator name, e.g. "CONV_2D"
    inputs: list[int]
    outputs: list[int]
    options: Any = None  # a *OptionsT object or None
    options_type: str | None = None  # BuiltinOptions name, e.g. "Conv2DOptions"


@dataclass
class ModelWriter:
    tensors: list[Tensor] = field(default_factory=list)
    ops: list[Op] = field(default_factory=list)
    inputs: list[int] = field(default_factory=list)
    outputs: list[int] = field(default_factory=list)
    _names: set[str] = field(default_factory=set)

    def tensor(self, name: str, shape: tuple[int, ...] | list[int], dtype: Any = np.float32,
               data: np.ndarray | None = None) -> int:
        """Add a tensor (a constant when ``data`` is given); names are made unique."""
        name = self._unique(name or "t")
        if data is not None:
            data = np.array(data, dtype=dtype, order="C")  # not ascontiguousarray: it makes 0-d arrays 1-d
            shape = data.shape
        self.tensors.append(Tensor(name, tuple(int(d) for d in shape), np.dtype(dtype), data))
        return len(self.tensors) - 1

    def rename(self, index: int, name: str) -> None:
        """Give tensor ``index`` the name ``name``; a different tensor holding it is renamed aside."""
        current = self.tensors[index].name
        if current == name:
            return
        for i, t in enumerate(self.tensors):
            if t.name == name and i != index:
                self._names.discard(name)
                t.name = self._unique(f"{name}/stored")
        self._names.discard(current)
        self._names.add(name)
        self.tensors[index].name = name

    def _unique(self, name: str) -> str:
        base, k = name, 1
        while name in self._names:
            name = f"{base}_{k}"
            k += 1
        self._names.add(name)
        return name

    def const(self, name: str, array: Any, dtype: Any = None) -> int:
        a = np.asarray(array)
        return self.tensor(name, a.shape, dtype or a.dtype, data=a)

    def op(self, code: str, inputs: list[int], outputs: list[int], options_type: str | None = None,
           **options: Any) -> Op:
        """Add an operator; ``options`` are the fields of ``<options_type>T`` in the schema's camelCase."""
        opts = None
        if options_type is not None:
            opts = getattr(schema(), options_type + "T")()
            for key, value in options.items():
                if not hasattr(opts, key):
                    raise AttributeError(f"{options_type} has no field {key}")
                setattr(opts, key, value)
        op = Op(code, list(inputs), list(outputs), opts, options_type)
        self.ops.append(op)
        return op

    def fuse_activations(self) -> None:
        tfl = schema()
        acts = {"RELU": tfl.ActivationFunctionType.RELU, "RELU6": tfl.ActivationFunctionType.RELU6,
                "RELU_N1_TO_1": tfl.ActivationFunctionType.RELU_N1_TO_1}
        fusable = {"CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "ADD", "SUB", "MUL", "DIV",
                   "TRANSPOSE_CONV", "AVERAGE_POOL_2D", "MAX_POOL_2D", "CONV_3D", "CONV_3D_TRANSPOSE"}
        # not CONCATENATION: XNNPACK ignores its fused activation and the built-in kernels refuse it
        readers: dict[int, list[Op]] = {}
        for op in self.ops:
            for i in op.inputs:
                readers.setdefault(i, []).append(op)
        producer = {o: op for op in self.ops for o in op.outputs}
        for act in [op for op in self.ops if op.code in acts]:
            src = producer.get(act.inputs[0])
            if (src is None or src.code not in fusable or src.options is None
                    or not hasattr(src.options, "fusedActivationFunction")
                    or src.options.fusedActivationFunction != tfl.ActivationFunctionType.NONE
                    or len(readers.get(act.inputs[0], [])) != 1 or act.inputs[0] in self.outputs
                    or act.inputs[0] in self.inputs):
                continue
            src.options.fusedActivationFunction = acts[act.code]
            src.outputs[src.outputs.index(act.inputs[0])] = act.outputs[0]
            self.ops.remove(act)

    def prune(self) -> None:
        """Drop dead ops (no output read by another op or the graph), then the tensors nothing refers
        to (and renumber). A dead op is not just waste: LiteRT's XNNPACK delegate leaves the output of
        a delegated op nobody reads unallocated, and ai-edge-quantizer's calibration, which reads every
        named tensor, then fails with "Tensor data is null" (the CRNN's first forget gates, zoo issue 12)."""
        self.drop_dead_ops()
        used = set(self.inputs) | set(self.outputs)
        for op in self.ops:
            used.update(i for i in op.inputs if i >= 0)
            used.update(op.outputs)
        remap: dict[int, int] = {}
        kept: list[Tensor] = []
        for i, t in enumerate(self.tensors):
            if i in used:
                remap[i] = len(kept)
                kept.append(t)
        self.tensors = kept
        for op in self.ops:
            op.inputs = [remap[i] if i >= 0 else -1 for i in op.inputs]
            op.outputs = [remap[i] for i in op.outputs]
        self.inputs = [remap[i] for i in self.inputs]
        self.outputs = [remap[i] for i in self.outputs]

    def drop_dead_ops(self) -> int:
        """Remove the ops none of whose outputs is read (by an op or as a graph output), repeatedly;
        returns how many went."""
        dropped = 0
        while True:
            read = set(self.outputs)
            for op in self.ops:
                read.update(op.inputs)
            dead = [op for op in self.ops if not any(o in read for o in op.outputs)]
            if not dead:
                return dropped
            gone = {id(op) for op in dead}
            self.ops = [op for op in self.ops if id(op) not in gone]
            dropped += len(dead)

    def serialize(self, input_names: list[str], output_names: list[str], description: str = "") -> bytes:
        """The model as ``.tflite`` bytes; the SignatureDef maps ``input_names``/``output_names`` to the I/O tensors."""
        import flatbuffers

        tfl = schema()
        codes: list[str] = []
        buffers: list[Any] = [_aligned_buffer_class()()]
        tensors = []
        for t in self.tensors:
            tt = tfl.TensorT()
            tt.name = t.name
            tt.shape = list(t.shape)
            tt.type = tensor_type(t.dtype)
            tt.buffer = 0
            if t.data is not None:
                buf = _aligned_buffer_class()()
                buf.data = t.data.astype(t.data.dtype.newbyteorder("<"), copy=False).tobytes()
                tt.buffer = len(buffers)
                buffers.append(buf)
            if t.quantization is not None:
                tt.quantization = t.quantization
            tensors.append(tt)
        operators = []
        for op in self.ops:
            if op.code not in codes:
                codes.append(op.code)
            o = tfl.OperatorT()
            o.opcodeIndex = codes.index(op.code)
            o.inputs, o.outputs = list(op.inputs), list(op.outputs)
            if op.options is not None:
                assert op.options_type is not None  # op() sets both or neither
                o.builtinOptionsType = getattr(tfl.BuiltinOptions, op.options_type)
                o.builtinOptions = op.options
            operators.append(o)
        sub = tfl.SubGraphT()
        sub.name = "main"
        sub.tensors, sub.operators = tensors, operators
        sub.inputs, sub.outputs = list(self.inputs), list(self.outputs)
        model = tfl.ModelT()
        model.version = 3
        model.description = description
        model.operatorCodes = [_opcode(tfl, c) for c in codes]
        model.subgraphs = [sub]
        model.buffers = buffers
        model.signatureDefs = [_signature(tfl, input_names, self.inputs, output_names, self.outputs)]
        builder = flatbuffers.Builder(1024 + sum(len(b.data or b"") for b in buffers))
        builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
        return bytes(builder.Output())


_BUFFER_CLASS: Any = None


def _aligned_buffer_class() -> Any:
    """A BufferT whose data vector starts on a 16-byte boundary (the generated numpy path aligns to 1)
    and is copied in one slice instead of byte by byte."""
    global _BUFFER_CLASS
    if _BUFFER_CLASS is None:
        tfl = schema()

        class AlignedBufferT(tfl.BufferT):  # type: ignore[name-defined]  # a generated schema, imported at run time
            def Pack(self, builder: Any) -> int:  # noqa: N802 (the generated API's name)
                data = None
                if self.data:
                    payload = bytes(self.data)
                    builder.StartVector(1, len(payload), ALIGNMENT)
                    builder.head -= len(payload)
                    builder.Bytes[builder.head: builder.head + len(payload)] = payload
                    data = _end_vector(builder, len(payload))
                tfl.BufferStart(builder)
                if data is not None:
                    tfl.BufferAddData(builder, data)
                return tfl.BufferEnd(builder)

        _BUFFER_CLASS = AlignedBufferT
    return _BUFFER_CLASS


def _end_vector(builder: Any, n: int) -> int:
    """flatbuffers >= 2 counts the elements itself (and warns when given them); 1.x needs the count."""
    try:
        return builder.EndVector()
    except TypeError:
        return builder.EndVector(n)


def _opcode(tfl: Any, name: str) -> Any:
    code = tfl.OperatorCodeT()
    code.builtinCode = getattr(tfl.BuiltinOperator, name)
    code.deprecatedBuiltinCode = min(code.builtinCode, 127)  # 127: PLACEHOLDER_FOR_GREATER_OP_CODES
    code.version = 1
    return code


def _signature(tfl: Any, in_names: list[str], ins: list[int], out_names: list[str], outs: list[int]) -> Any:
    def tmap(name: str, index: int) -> Any:
        m = tfl.TensorMapT()
        m.name, m.tensorIndex = name, index
        return m

    sig = tfl.SignatureDefT()
    sig.signatureKey = "serving_default"
    sig.subgraphIndex = 0
    sig.inputs = [tmap(n, i) for n, i in zip(in_names, ins)]
    sig.outputs = [tmap(n, i) for n, i in zip(out_names, outs)]
    return sig
