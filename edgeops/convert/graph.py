"""ONNX graph preparation before quantization: opset, dims, shapes, optimization.

Each step takes and returns an ``onnx.ModelProto`` (or a path, where onnxruntime
needs one) and raises a ``UsageError`` or ``ModelFormatError`` that says what to
do, instead of letting a broken model through.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from ..errors import ModelFormatError, UsageError

QUANT_MIN_OPSET = 13  # per-channel QDQ needs QuantizeLinear's axis attribute (opset 13)


def import_onnx() -> Any:
    try:
        import onnx
    except ImportError as exc:
        from ..errors import BackendUnavailableError

        raise BackendUnavailableError("converting needs onnx and onnxruntime: pip install 'edgeops[convert]'") from exc
    return onnx


def load(path: str) -> Any:
    """The ONNX model at ``path``; the same errors as every other command for a missing or corrupt
    file, and a UsageError for a model in another format (convert takes ONNX)."""
    from ..formats import SNIFF_BYTES, check_model_path, load_error, sniff_format

    onnx = import_onnx()
    check_model_path(path)
    with open(path, "rb") as fh:
        kind = sniff_format(fh.read(SNIFF_BYTES))
    if kind in _NOT_ONNX:
        raise not_onnx(path, kind)
    try:
        model = onnx.load(path)
    except Exception as exc:  # onnx raises DecodeError, ValueError, OSError ...
        raise load_error(path, exc, reader="onnx") from exc
    if not model.graph.output:  # protobuf parses many byte strings into an empty message
        raise load_error(path, ValueError("no graph outputs"), reader="onnx")
    merge_opset_imports(model)
    return model


def merge_opset_imports(model: Any) -> list[str]:
    """One opset import per domain, the highest version given (``""`` and ``"ai.onnx"`` are one domain).
    skl2onnx writes the default domain twice for a classifier (``("", 17), ("", 17)``), and
    onnxruntime.quantization then stops with "Failed to find proper ai.onnx domain". Returns the
    domains that were repeated."""
    best: dict[str, Any] = {}
    repeated = []
    for imp in model.opset_import:
        key = "" if imp.domain in ("", "ai.onnx") else imp.domain
        if key in best:
            repeated.append(key or "ai.onnx")
            if imp.version > best[key].version:
                best[key] = imp
        else:
            best[key] = imp
    if repeated:
        kept = [type(imp)(domain=imp.domain, version=imp.version) for imp in best.values()]
        del model.opset_import[:]
        model.opset_import.extend(kept)
    return repeated


_NOT_ONNX = {"tflite": "a TFLite model", "bundle": "an edgeops bundle", "zip": "a zip archive"}


def not_onnx(path: str, kind: str) -> UsageError:
    """The error for a source in another format (a key of ``_NOT_ONNX``): convert takes ONNX."""
    return UsageError(f"{path} is {_NOT_ONNX[kind]}; edgeops convert takes an ONNX model (.onnx): "
                      "convert the ONNX model it came from")


def opset_of(model: Any) -> int:
    for imp in model.opset_import:
        if imp.domain in ("", "ai.onnx"):
            return int(imp.version)
    return 0


def op_histogram(model: Any) -> dict[str, int]:
    counts = Counter(n.op_type if n.domain in ("", "ai.onnx") else f"{n.domain}:{n.op_type}" for n in model.graph.node)
    return dict(counts.most_common())


def upgrade_opset(model: Any, minimum: int) -> tuple[Any, str | None]:
    """Raise the default-domain opset to ``minimum`` with onnx's version converter."""
    current = opset_of(model)
    if current >= minimum:
        return model, None
    onnx = import_onnx()
    from onnx import version_converter

    try:
        upgraded = version_converter.convert_version(model, minimum)
        onnx.checker.check_model(upgraded)
    except Exception as exc:
        raise UsageError(
            f"the model uses opset {current}; quantization needs opset {minimum} and onnx's version converter "
            f"failed ({str(exc).splitlines()[0][:200]}); re-export the model with opset >= {minimum}"
        ) from exc
    return upgraded, f"opset {current} -> {minimum}"


def dim_size(dim: Any) -> int | None:
    """A ``TensorShapeProto.Dimension``'s size, ``None`` where it is dynamic: a ``dim_param``, no value,
    or a negative ``dim_value`` (PaddlePaddle's exporter writes ``-1`` for a dynamic dim, and
    onnxruntime reads it as dynamic). ``0`` is a size, an empty axis, as onnx and onnxruntime read it."""
    return int(dim.dim_value) if dim.HasField("dim_value") and dim.dim_value >= 0 else None


def clear_negative_dims(model: Any) -> int:
    """Make every negative ``dim_value`` of the graph's inputs, outputs and value infos an unknown dim
    (neither value nor name), which is what onnx's shape inference and onnxruntime's quantization
    tools understand; a ``-1`` left in place would be taken for a size. Returns how many changed."""
    changed = 0
    for vi in [*model.graph.input, *model.graph.output, *model.graph.value_info]:
        if vi.type.HasField("tensor_type") and vi.type.tensor_type.HasField("shape"):
            for d in vi.type.tensor_type.shape.dim:
                if d.HasField("dim_value") and d.dim_value < 0:
                    d.ClearField("dim_value")
                    changed += 1
    return changed


def fix_input_shapes(model: Any, shapes: dict[str, tuple[int, ...]], *, static: bool) -> tuple[Any, list[str]]:
    """Set input dims from ``shapes``; with ``static`` every remaining dynamic batch dim becomes 1.
    Dynamic dims written as ``-1`` are dynamic here too (:func:`dim_size`)."""
    from ..runtime import input_shapes

    clear_negative_dims(model)
    inits = {i.name for i in model.graph.initializer}
    inputs = [i for i in model.graph.input if i.name not in inits]
    shapes = input_shapes.check(shapes, {i.name: _declared_shape(i) for i in inputs})  # the one --input-shape check
    notes = []
    for inp in inputs:
        dims = inp.type.tensor_type.shape.dim
        if inp.name in shapes:
            want = shapes[inp.name]
            if not dims:  # no shape in the model: the given one
                for _ in want:
                    dims.add()
            for d, v in zip(dims, want):
                d.dim_value = v
            notes.append(f"{inp.name} fixed to {list(want)}")
        elif static:
            dynamic = [i for i, d in enumerate(dims) if dim_size(d) is None]
            if any(i != 0 for i in dynamic):
                raise UsageError(f"the target needs static shapes and input {inp.name} has dynamic dim "
                                 f"{next(i for i in dynamic if i)}; give --input-shape {inp.name}:D1,D2,...")
            if dynamic:
                dims[0].dim_value = 1
                notes.append(f"{inp.name} batch fixed to 1 (static target)")
    if notes:
        del model.graph.value_info[:]  # stale shapes; re-inferred next
    return model, notes


def _declared_shape(value_info: Any) -> tuple[int | None, ...] | None:
    """An ONNX graph input's shape as :mod:`edgeops.runtime.input_shapes` reads it (``None``: dynamic)."""
    tensor = value_info.type.tensor_type
    if not tensor.HasField("shape"):
        return None
    return tuple(dim_size(d) for d in tensor.shape.dim)


def row_gemm_biases(model: Any) -> list[str]:
    """Give every Gemm bias of shape ``[1, N]`` the shape ``[N]`` (the same sum: C broadcasts to
    ``[M, N]`` either way); returns the Gemm nodes changed. skl2onnx writes an MLP's intercepts as
    ``[1, N]`` and onnxruntime fuses its MatMul + Add into a Gemm with that bias; per-channel static
    int8 then indexes the bias per output channel, gets a row instead of a number and stops with "The
    truth value of an array with more than one element is ambiguous"."""
    onnx = import_onnx()
    graph = model.graph
    inits = {i.name: i for i in graph.initializer}
    readers = Counter(i for n in graph.node for i in n.input)
    outputs = {o.name for o in graph.output}
    changed = []
    for node in graph.node:
        bias = inits.get(node.input[2]) if node.op_type == "Gemm" and len(node.input) > 2 else None
        if bias is None or len(bias.dims) != 2 or bias.dims[0] != 1:
            continue
        flat = onnx.numpy_helper.to_array(bias).reshape(-1)
        name = bias.name
        if readers[name] > 1 or name in outputs:  # shared: the Gemm gets its own flat copy
            name = f"{bias.name}/flat"
            k = 1
            while name in inits:
                name, k = f"{bias.name}/flat{k}", k + 1
            node.input[2] = name
            inits[name] = graph.initializer.add()
        inits[name].CopyFrom(onnx.numpy_helper.from_array(flat, name))
        changed.append(node.name or node.output[0])
    if changed:
        del graph.value_info[:]  # the bias' shape changed
    return changed


def fit_ir_version(model: Any) -> Any:
    """Lower ``ir_version`` to what the model's opsets need. onnx >= 1.19 stamps new models with its
    own IR version (14), which onnxruntime releases before 1.24 refuse to load (max 11) although
    nothing in an opset <= 21 model needs it."""
    onnx = import_onnx()
    try:
        needed = onnx.helper.find_min_ir_version_for(list(model.opset_import))
    except Exception:  # noqa: BLE001 - an opset onnx does not know: leave the model as it is
        return model
    if model.ir_version > needed:
        model.ir_version = max(needed, 7)
    return model


def infer_shapes(model: Any) -> Any:
    onnx = import_onnx()
    try:
        return onnx.shape_inference.infer_shapes(model, check_type=False, strict_mode=False, data_prop=True)
    except Exception:  # shape inference is a help, not a requirement
        return model


def optimize(src: str, dst: str, threads: int | None = None) -> None:
    """Constant folding and ONNX-standard fusions (BatchNorm into Conv, ...) via onnxruntime's basic level,
    saved as a standalone model that any ONNX runtime can read."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    opts.optimized_model_filepath = dst
    opts.log_severity_level = 3
    if threads:
        opts.intra_op_num_threads = threads
    try:
        ort.InferenceSession(src, opts, providers=["CPUExecutionProvider"])
    except Exception as exc:
        raise ModelFormatError(f"onnxruntime cannot load the model to optimize it: {str(exc).splitlines()[0]}") from exc


def check_runs(path: str) -> None:
    """The output must pass onnx's checker and open in onnxruntime: never leave an invalid file."""
    onnx = import_onnx()
    import onnxruntime as ort

    try:
        onnx.checker.check_model(path, full_check=True)
        opts = ort.SessionOptions()
        opts.log_severity_level = 3
        ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
    except Exception as exc:
        raise ModelFormatError(
            f"the converted model is invalid ({str(exc).splitlines()[0][:300]}); nothing was written. "
            "Try another --quantize mode, --exclude-op-types for the op named, or report the model"
        ) from exc


_SUFFIXES = (("_QuantizeLinear_Output", "/q"), ("_DequantizeLinear_Output", "/dq"), ("_quantized_scale", "/qs"),
             ("_quantized_zero_point", "/qz"), ("_quantized", "/q8"), ("_zero_point", "/z"), ("_scale", "/s"))


_OPTIMIZER_PREFIXES = ("ConvBnFusion_W_", "ConvBnFusion_BN_B_", "ConvAddFusion_Add_B_", "ConvMulFusion_W_")


def compact(model: Any) -> Any:
    """Make a small model's file small: the quantizer's long derived names get short suffixes
    (``relu1_QuantizeLinear_Output`` -> ``relu1/q``; original tensor names are kept), Q/DQ nodes lose
    their names, all-zero int32 bias zero points (optional inputs) go, and so do value_info, doc
    strings, the quantizer's metadata and opset imports of domains no node uses. Float tails lose
    their last rounding (:func:`float_tails`)."""
    onnx = import_onnx()
    float_tails(model)
    graph = model.graph
    io_names = {v.name for v in list(graph.input) + list(graph.output)}

    def short(name: str) -> str:
        if name in io_names:
            return name
        for prefix in _OPTIMIZER_PREFIXES:  # onnxruntime's fusions rename weights: give the originals back
            if name.startswith(prefix):
                name = name[len(prefix):]
                break
        for long, tail in _SUFFIXES:
            if name.endswith(long):
                return name[: -len(long)] + tail
        return name

    inits = {i.name: i for i in graph.initializer}
    for node in graph.node:
        node.doc_string = ""
        if node.op_type in ("QuantizeLinear", "DequantizeLinear"):
            node.name = ""
            if node.op_type == "DequantizeLinear" and len(node.input) == 3:
                # not int8 weight zero points: onnxruntime's QGemm fusion wants them present
                zp = inits.get(node.input[2])
                if zp is not None and zp.data_type == onnx.TensorProto.INT32 and not onnx.numpy_helper.to_array(zp).any():
                    del node.input[2]
        for i, name in enumerate(node.input):
            node.input[i] = short(name)
        for i, name in enumerate(node.output):
            node.output[i] = short(name)
    used = {i for n in graph.node for i in n.input} | io_names
    keep = []
    for init in graph.initializer:
        init.name = short(init.name)
        if init.name in used:
            keep.append(init)
    del graph.initializer[:]
    graph.initializer.extend(keep)
    del graph.value_info[:]
    model.doc_string = ""
    del model.metadata_props[:]
    from .._version import __version__

    model.producer_name, model.producer_version = "edgeops", __version__
    used_domains = {n.domain for n in graph.node} | {"", "ai.onnx"}
    keep_opsets = [o for o in model.opset_import if o.domain in used_domains]
    del model.opset_import[:]
    model.opset_import.extend(keep_opsets)
    return model


# Producers whose onnxruntime int8 kernel survives a float output (QGemm, MatMulIntegerToFloat), or that
# gain nothing from int8: a Q -> DQ pair after them that only float code reads is pure rounding.
_FLOAT_OUT_OK = {"Gemm", "MatMul", "Softmax", "LogSoftmax"}
# Readers that run in float when nothing requantizes their output (a Gemm reader would be int8 anyway).
_FLOAT_READERS = {"Softmax", "LogSoftmax"}


def float_tails(model: Any) -> Any:
    """Drop the QuantizeLinear -> DequantizeLinear pairs the quantizer leaves where only float code
    reads the result: on a graph output, or feeding a Softmax whose output is not requantized (the
    Softmax after the last Gemm). Outputs then carry the producing op's float result instead of that
    result rounded to 256 levels. Only after producers in ``_FLOAT_OUT_OK``: after a Conv the pair is
    what lets onnxruntime run the Conv as QLinearConv, so it stays."""
    while _drop_one_float_tail(model.graph):
        pass
    return model


def _drop_one_float_tail(graph: Any) -> bool:
    outputs = {o.name for o in graph.output}
    producer = {o: n for n in graph.node for o in n.output}
    readers: dict[str, list[Any]] = {}
    for n in graph.node:
        for i in n.input:
            readers.setdefault(i, []).append(n)

    def requantized(node: Any) -> bool:
        return any(r.op_type == "QuantizeLinear" for o in node.output for r in readers.get(o, ()))

    for dq in graph.node:
        if dq.op_type != "DequantizeLinear" or dq.input[0] not in producer:
            continue
        q = producer[dq.input[0]]
        src = producer.get(q.input[0]) if q.op_type == "QuantizeLinear" else None
        if (src is None or src.op_type not in _FLOAT_OUT_OK or len(readers.get(q.output[0], ())) != 1
                or q.input[0] in outputs
                or any(r.op_type not in _FLOAT_READERS or requantized(r) for r in readers.get(dq.output[0], ()))):
            continue
        if dq.output[0] in outputs:  # the producer takes the output's name
            old, new = q.input[0], dq.output[0]
            src.output[list(src.output).index(old)] = new
        else:  # the readers of the DQ output read the producer's tensor
            old, new = dq.output[0], q.input[0]
        for r in readers.get(old, ()):
            if r is not q:
                r.input[list(r.input).index(old)] = new
        graph.node.remove(q)
        graph.node.remove(dq)
        return True
    return False

def sort_topologically(model: Any) -> Any:
    """Order graph nodes so every input is produced before it is used (onnx's checker requires it;
    onnxruntime's fp16 converter appends input casts at the end of the node list)."""
    graph = model.graph
    ready = {i.name for i in graph.input} | {i.name for i in graph.initializer} | {""}
    pending = list(graph.node)
    ordered = []
    while pending:
        rest = []
        for node in pending:
            if all(i in ready for i in node.input):
                ordered.append(node)
                ready.update(node.output)
            else:
                rest.append(node)
        if len(rest) == len(pending):  # a cycle or a missing producer: leave the order to the checker
            ordered.extend(rest)
            break
        pending = rest
    del graph.node[:]
    graph.node.extend(ordered)
    return model


def name_nodes(model: Any) -> Any:
    """Give every unnamed node the name of its first output, so ``--exclude-nodes`` and the
    divergence report can point at it (exported graphs often leave node names empty)."""
    taken = {n.name for n in model.graph.node if n.name}
    for node in model.graph.node:
        if not node.name and node.output:
            name = node.output[0]
            while name in taken:
                name += "_"
            node.name = name
            taken.add(name)
    return model
