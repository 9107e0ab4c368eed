"""Quantization with onnxruntime.quantization: static int8 (QDQ), dynamic int8, fp16.

Static int8 calibrates on a DESIGN.md data file with a progress bar. Preprocessing
(``quant_pre_process``: symbolic shape inference and optimization) fails on some
real graphs, e.g. detectors with data-dependent shapes; then it is retried
without symbolic shape inference and finally skipped, and the report says so.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
from collections.abc import Iterator
from typing import Any

import numpy as np

from .._progress import Bars
from ..datafiles import MAX_CALIBRATION, load_calibration
from ..errors import DataError, UsageError
from .graph import dim_size
from .options import CALIBRATION_METHODS as METHODS


class DataReader:
    """onnxruntime's CalibrationDataReader over a data file, one sample at a time, with progress."""

    def __init__(self, path: str, inputs: list[tuple[str, list[Any]]], limit: int = MAX_CALIBRATION):
        self.arrays = load_calibration(path, [name for name, _ in inputs], limit=limit)
        self.n = next(iter(self.arrays.values())).shape[0]
        for name, dims in inputs:
            self._check(name, dims, self.arrays[name])
        self.i = 0
        self._bars = Bars()

    @staticmethod
    def _check(name: str, dims: list[Any], a: np.ndarray) -> None:
        """Samples along axis 0 and the model's batch axis is that axis (DESIGN.md data files)."""
        sample, want = a.shape[1:], dims[1:]
        if a.ndim != len(dims) or any(isinstance(w, int) and w > 0 and w != s for w, s in zip(want, sample)):
            raise DataError(f"calibration data for {name!r} has samples of shape {list(sample)}, the model wants "
                            f"{[w if isinstance(w, int) and w > 0 else '?' for w in want]} (samples along axis 0)")

    def get_next(self) -> dict[str, np.ndarray] | None:
        if self.i >= self.n:
            self._bars.close()
            return None
        feeds = {k: np.ascontiguousarray(v[self.i:self.i + 1]) for k, v in self.arrays.items()}
        self.i += 1
        self._bars.update("calibrating", self.i, self.n)
        return feeds

    def rewind(self) -> None:
        self.i = 0


def graph_inputs(model: Any) -> list[tuple[str, list[Any]]]:
    inits = {i.name for i in model.graph.initializer}
    out = []
    for i in model.graph.input:
        if i.name in inits:
            continue
        dims = [dim_size(d) for d in i.type.tensor_type.shape.dim]
        out.append((i.name, dims))
    return out


SYMBOLIC_FALLBACK = ("shapes inferred with onnx shape inference: onnxruntime's symbolic shape inference "
                     "does not handle this model (routine)")
ROUTINE_NOTES = (SYMBOLIC_FALLBACK,)  # notes, not steps: shown with --json and -v only


_CWD_LOCK = threading.Lock()


@contextlib.contextmanager
def _cwd(folder: str) -> Iterator[None]:
    """Run a block with ``folder`` as the current folder (process-wide, so one block at a time)."""
    with _CWD_LOCK:
        before = os.getcwd()
        os.chdir(folder)
        try:
            yield
        finally:
            os.chdir(before)


def preprocess(src: str, dst: str) -> list[str]:
    """``quant_pre_process`` with fallbacks; returns notes on what was skipped."""
    from onnxruntime.quantization.shape_inference import quant_pre_process

    attempts = [({}, None),
                ({"skip_symbolic_shape": True}, SYMBOLIC_FALLBACK),
                ({"skip_symbolic_shape": True, "skip_optimization": True},
                 "quantization preprocessing failed; quantized the optimized model as it was")]
    src, dst = os.path.abspath(src), os.path.abspath(dst)
    for kwargs, note in attempts:
        try:
            # onnxruntime's symbolic shape inference saves what it could not finish as
            # sym_shape_infer_temp.onnx (+ an external .data file) in the current folder: run it
            # from the output's own (temporary) folder so nothing lands in the user's
            with _cwd(os.path.dirname(dst)):
                quant_pre_process(src, dst, **kwargs)
            return [note] if note else []
        except Exception:  # noqa: BLE001 - each failure mode has a fallback
            continue
    import shutil

    shutil.copyfile(src, dst)
    return ["quantization preprocessing failed in every mode; quantized the optimized model as it was"]


def static_int8(src: str, dst: str, calibration: str, *, method: str, per_channel: bool,
                exclude_nodes: list[str], exclude_op_types: list[str], model: Any, reduce_range: bool = False) -> None:
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    if method not in METHODS:
        raise UsageError(f"calibration method must be one of {', '.join(METHODS)}, not {method!r}")
    reader = DataReader(calibration, graph_inputs(model))
    op_types = _op_types(model, exclude_op_types)
    with contextlib.redirect_stdout(sys.stderr):  # the entropy/percentile calibrators print; --json owns stdout
        quantize_static(src, dst, reader, quant_format=QuantFormat.QDQ, per_channel=per_channel,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                        calibrate_method=getattr(CalibrationMethod, METHODS[method]),
                        nodes_to_exclude=list(exclude_nodes), op_types_to_quantize=op_types,
                        reduce_range=reduce_range, extra_options={"ActivationSymmetric": False, "WeightSymmetric": True})


def dynamic_int8(src: str, dst: str, *, per_channel: bool, exclude_nodes: list[str],
                 exclude_op_types: list[str], model: Any) -> None:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(src, dst, weight_type=QuantType.QInt8, per_channel=per_channel,
                     nodes_to_exclude=list(exclude_nodes), op_types_to_quantize=_op_types(model, exclude_op_types))


# Kept float32 in fp16 mode besides onnxruntime's own block list: the recurrent ops, whose onnxruntime CPU
# kernels are float32 only and whose fp16 state would carry its rounding from step to step.
FP16_FLOAT_OPS = ("LSTM", "GRU", "RNN")


def fp16(model: Any, dst: str, *, exclude_nodes: list[str], exclude_op_types: list[str]) -> None:
    import onnx
    from onnxruntime.transformers.float16 import DEFAULT_OP_BLOCK_LIST, convert_float_to_float16

    from .graph import name_nodes, sort_topologically

    _drop_initializer_value_info(name_nodes(model))  # named: the block list below names nodes
    converted = convert_float_to_float16(model, keep_io_types=True, disable_shape_infer=False,
                                         op_block_list=[*DEFAULT_OP_BLOCK_LIST, *FP16_FLOAT_OPS, *exclude_op_types],
                                         node_block_list=[*exclude_nodes, *batch_transposes_into_matmul(model)])
    onnx.save(sort_topologically(converted), dst)


def _drop_initializer_value_info(model: Any) -> None:
    """Forget the value_info of initializers. onnxruntime's optimized model keeps it for the Constants
    it folded; the fp16 converter then retypes that value_info to fp16 and casts it back to float for
    an input that must stay float (Resize's scales) while the initializer stays float32: a Cast of a
    float tensor declared fp16, "Inferred elem type differs: (1) vs (10)" (the DB text detector)."""
    inits = {i.name for i in model.graph.initializer}
    keep = [v for v in model.graph.value_info if v.name not in inits]
    del model.graph.value_info[:]
    model.graph.value_info.extend(keep)


def batch_transposes_into_matmul(model: Any) -> list[str]:
    """The Transposes that move the first (batch) axis and feed a MatMul, to keep float32 in fp16 mode.
    onnxruntime's MatmulTransposeFusion folds such a Transpose into a FusedMatMul with transBatchA,
    and on an fp16 graph that segfaults while the session is created (onnxruntime 1.32, x86 CPU, the
    default ORT_ENABLE_ALL; perms [1, 0, 2] and [1, 2, 0, 3] do, [0, 2, 1, 3] does not): the CRNN's
    [T, N, C] -> [N, T, C] before its classifier. A float32 Transpose puts a Cast between the two."""
    from onnx import helper

    readers: dict[str, set[str]] = {}
    for n in model.graph.node:
        for i in n.input:
            readers.setdefault(i, set()).add(n.op_type)
    names = []
    for n in model.graph.node:
        if n.op_type != "Transpose" or "MatMul" not in readers.get(n.output[0], ()):
            continue
        perm = next((helper.get_attribute_value(a) for a in n.attribute if a.name == "perm"), None)
        if perm is None or perm[0] != 0:  # no perm: all axes reversed
            names.append(n.name)
    return names


def cpu_int8_dot(cpuinfo: str = "/proc/cpuinfo") -> str | None:
    """This CPU's int8 dot-product instructions onnxruntime's x86 kernels use without saturation
    ("AVX512-VNNI", "AVX-VNNI"), "" for an x86 CPU without them, None where /proc/cpuinfo cannot tell."""
    try:
        with open(cpuinfo, encoding="utf-8", errors="replace") as fh:
            flags = next((line.split(":", 1)[1].split() for line in fh if line.startswith("flags")), None)
    except OSError:
        return None
    if flags is None:
        return None
    found = [name for flag, name in (("avx512_vnni", "AVX512-VNNI"), ("avx_vnni", "AVX-VNNI")) if flag in flags]
    return "/".join(found)


def weight_bits(target: Any, model: Any, asked: bool | None) -> tuple[bool, str]:
    """``(reduce_range, why)`` for static int8: 7-bit weights only where they are needed.

    x86 CPUs without VNNI multiply uint8 x int8 pairs with ``vpmaddubsw``, which adds two products
    into a saturating int16; 8-bit per-channel convolution weights overflow it. VNNI (``vpdpbusd``)
    and Arm's int8 kernels accumulate in 32 bits. A target of arch x86_64 (generic-cpu) is any
    x86-64 CPU, VNNI or not, so a model with convolutions keeps 7 bits there whatever the converting
    machine has. Gemm/MatMul-only models keep 8 bits, where the 7th bit costs more than saturation
    does. Arm targets get 8 bits. The measurements behind this are in ``benchmarks/NOTES.md``.
    """
    has_conv = any(n.op_type in ("Conv", "ConvTranspose") for n in model.graph.node)
    if asked is not None:
        return asked, f"{'7' if asked else '8'}-bit weights (reduce_range={asked}, as asked)"
    if target.arch != "x86_64":
        return False, (f"8-bit weights: {target.name} is {target.arch}, whose int8 kernels accumulate in 32 bits "
                       "(7-bit reduce_range is for x86 without VNNI)")
    if not has_conv:
        return False, "8-bit weights: no convolutions (the fully-connected digits MLP lost 0.5 % to a 7th bit)"
    dot = cpu_int8_dot()
    here = ("this CPU has " + dot + " and would run 8-bit weights as well (reduce_range=False for a VNNI-only fleet)"
            if dot else "this CPU has no VNNI and needs them" if dot == "" else "")
    return True, ("7-bit weights (reduce_range): target " + target.name + " is any x86-64 CPU, and one without VNNI "
                  "sums uint8 x int8 products in saturating 16 bits" + (f"; {here}" if here else ""))


def _op_types(model: Any, exclude: list[str]) -> list[str] | None:
    if not exclude:
        return None
    present = {n.op_type for n in model.graph.node}
    return sorted(present - set(exclude))


def quantized_nodes(model: Any, mode: str) -> int:
    """How many compute nodes of the output run quantized (or in fp16)."""
    nodes = model.graph.node
    if mode == "int8":
        produced_by_dq = {o for n in nodes if n.op_type == "DequantizeLinear" for o in n.output}
        return sum(1 for n in nodes if n.op_type not in ("QuantizeLinear", "DequantizeLinear")
                   and any(i in produced_by_dq for i in n.input))
    if mode == "dynamic":
        return sum(1 for n in nodes if n.op_type in ("MatMulInteger", "ConvInteger", "DynamicQuantizeMatMul",
                                                     "DynamicQuantizeLSTM", "QAttention", "QGemm"))
    if mode == "fp16":
        return sum(1 for n in nodes if n.op_type != "Cast")
    return 0
