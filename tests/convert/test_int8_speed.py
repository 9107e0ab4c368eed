"""Int8 runs int8 end to end (issue 12, "Int8 is slower than float").

The MobileNet-style example's int8 model ran at 4.1x the float latency in LiteRT and 1.77x in
onnxruntime: HardSwish has no int8 kernel that stays in either runtime's int8 graph (XNNPACK takes
HARD_SWISH in float only, onnxruntime left HardSigmoid float between DQ and Q nodes), nor has
XNNPACK an int8 SOFTMAX. These tests check the structure that makes int8 fast, never a timing:
every int8 TFLite op is on XNNPACK in one partition, no float island sits between quantized
onnxruntime ops, and the 7-bit weight choice is made per target and said in the report.
"""

from __future__ import annotations

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from onnx import TensorProto, helper, numpy_helper  # noqa: E402

import edgeops  # noqa: E402
from edgeops.convert.int8_graph import decompose_hard_activations  # noqa: E402
from edgeops.convert.quantize import cpu_int8_dot, weight_bits  # noqa: E402
from edgeops.targets import get_target  # noqa: E402

RNG = np.random.default_rng(0)


def conv_net(activation: str = "hardswish", opset: int = 17, residual: bool = True, softmax: bool = True):
    """A small MobileNet-style block: conv -> act -> depthwise -> act -> pointwise (+ residual) -> pool
    -> fully connected -> softmax. ``activation``: "hardswish" (one node), "inlined" (x * HardSigmoid(x),
    as onnxruntime's optimizer and older exporters write it) or "relu"."""
    inits = {"w1": RNG.normal(0, 0.4, (8, 3, 3, 3)), "b1": RNG.normal(0, 0.1, 8),
             "w2": RNG.normal(0, 0.4, (8, 1, 3, 3)), "w3": RNG.normal(0, 0.3, (8, 8, 1, 1)),
             "fc": RNG.normal(0, 0.3, (8, 10)), "shape": np.array([1, 8], np.int64)}
    nodes = [helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], pads=[1, 1, 1, 1], name="conv1")]

    def act(src, dst, k):
        if activation == "hardswish":
            return [helper.make_node("HardSwish", [src], [dst], name=f"hswish{k}")]
        if activation == "inlined":
            return [helper.make_node("HardSigmoid", [src], [dst + "_hs"], alpha=1 / 6, beta=0.5, name=f"hsig{k}"),
                    helper.make_node("Mul", [src, dst + "_hs"], [dst], name=f"hmul{k}")]
        return [helper.make_node("Relu", [src], [dst], name=f"relu{k}")]

    nodes += act("c1", "a1", 1)
    nodes += [helper.make_node("Conv", ["a1", "w2"], ["c2"], pads=[1, 1, 1, 1], group=8, name="dw")]
    nodes += act("c2", "a2", 2)
    nodes += [helper.make_node("Conv", ["a2", "w3"], ["c3"], name="pw")]
    last = "c3"
    if residual:  # the first activation is read by a residual Add too: its / 6 cannot go into weights
        nodes.append(helper.make_node("Add", ["a1", "c3"], ["r"], name="residual"))
        last = "r"
    nodes += [helper.make_node("GlobalAveragePool", [last], ["p"], name="gap"),
              helper.make_node("Reshape", ["p", "shape"], ["f"], name="flat"),
              helper.make_node("MatMul", ["f", "fc"], ["logits"], name="fc")]
    out = "logits"
    if softmax:
        nodes.append(helper.make_node("Softmax", ["logits"], ["probs"], axis=-1, name="softmax"))
        out = "probs"
    g = helper.make_graph(nodes, "block", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 16, 16])],
                          [helper.make_tensor_value_info(out, TensorProto.FLOAT, [1, 10])],
                          [numpy_helper.from_array(np.asarray(v, np.float32 if v.dtype.kind == "f" else v.dtype), k)
                           for k, v in inits.items()])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)], ir_version=8)


@pytest.fixture
def block(tmp_path):
    path, calib = tmp_path / "block.onnx", tmp_path / "calib.npz"
    onnx.save(conv_net(), path)
    np.savez(calib, x=RNG.normal(0, 1, (32, 1, 3, 16, 16)).astype(np.float32).reshape(32, 3, 16, 16))
    return path, calib


def _run(model, x):
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(None, {"x": x})[0]


# ---- the rewrite itself --------------------------------------------------------------------------
@pytest.mark.parametrize("activation", ["hardswish", "inlined"])
@pytest.mark.parametrize("residual", [True, False], ids=["residual", "conv-readers-only"])
def test_hard_swish_becomes_add_clip_mul_with_the_same_outputs(activation, residual):
    model = conv_net(activation, residual=residual)
    x = RNG.normal(0, 2, (1, 3, 16, 16)).astype(np.float32)
    want = _run(model, x)
    counts = decompose_hard_activations(model)
    ops = [n.op_type for n in model.graph.node]
    assert "HardSwish" not in ops and "HardSigmoid" not in ops
    assert counts["HardSwish"] == 2
    # the / 6 goes into the depthwise weights after the first activation only when convs are its only readers,
    # and always into the pointwise weights after the second one
    assert counts["folded"] == (1 if residual else 2)
    assert ops.count("Mul") == 2 + (2 - counts["folded"])
    np.testing.assert_allclose(_run(model, x), want, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("alpha,beta", [(1 / 6, 0.5), (0.2, 0.5), (0.5, 0.0)], ids=["pytorch", "onnx-default", "other"])
@pytest.mark.parametrize("opset", [10, 17], ids=["clip-attributes", "clip-inputs"])
def test_hard_sigmoid_alone_is_rewritten_exactly(alpha, beta, opset):
    node = helper.make_node("HardSigmoid", ["x"], ["y"], alpha=alpha, beta=beta, name="hs")
    g = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 64])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 64])])
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)], ir_version=8)
    x = np.linspace(-8, 8, 64, dtype=np.float32).reshape(1, 64)
    want = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    assert decompose_hard_activations(model)["HardSigmoid"] == 1
    onnx.checker.check_model(model)
    got = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    np.testing.assert_allclose(got, want, atol=1e-6)


def test_nodes_the_user_excluded_stay_as_they_are():
    model = conv_net("hardswish")
    counts = decompose_hard_activations(model, keep={"hswish2"})
    assert counts["HardSwish"] == 1
    assert [n.name for n in model.graph.node if n.op_type == "HardSwish"] == ["hswish2"]


# ---- onnxruntime: no float island between quantized ops ------------------------------------------
def _float_islands(path) -> list[str]:
    """Ops of onnxruntime's optimized graph that run in float between int8 ones: any node other than
    the input's QuantizeLinear and the output's DequantizeLinear that is not an int8 kernel (QLinear*,
    QGemm, *IntegerToFloat) or a shape-only op."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
        opts.optimized_model_filepath = f"{tmp}/opt.onnx"
        ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        g = onnx.load(f"{tmp}/opt.onnx").graph
    inputs, outputs = {i.name for i in g.input}, {o.name for o in g.output}
    shape_only = {"Reshape", "Flatten", "Transpose", "Squeeze", "Unsqueeze"}
    islands = []
    for n in g.node:
        if n.op_type.startswith("QLinear") or n.op_type.endswith("IntegerToFloat") or n.op_type in ("QGemm", *shape_only):
            continue
        if n.op_type == "QuantizeLinear" and n.input[0] in inputs:
            continue
        if n.op_type == "DequantizeLinear" and n.output[0] in outputs:
            continue
        if n.op_type == "Softmax" and n.output[0] in outputs:  # a float tail: onnxruntime.quantization's choice
            continue
        islands.append(n.op_type)
    return islands


def test_onnx_int8_hard_swish_net_has_no_float_island(block, tmp_path):
    """Regression: every HardSwish was DequantizeLinear -> HardSigmoid -> QuantizeLinear -> QLinearMul."""
    src, calib = block
    out = tmp_path / "int8.onnx"
    report = edgeops.convert(src, out, quantize="int8", calibration=str(calib), profile=False)
    assert any("2 HardSwish written as Add, Clip, Mul" in s for s in report.steps), report.steps
    ops = {n.op_type for n in onnx.load(out).graph.node}
    assert not ops & {"HardSwish", "HardSigmoid"}
    assert _float_islands(out) == []


def test_onnx_int8_outputs_stay_close_to_float(block, tmp_path):
    src, calib = block
    out = tmp_path / "int8.onnx"
    edgeops.convert(src, out, quantize="int8", calibration=str(calib), profile=False)
    x = np.load(calib)["x"][:8]
    want = np.concatenate([_run(onnx.load(src), x[i:i + 1]) for i in range(8)])
    got = np.concatenate([_run(onnx.load(out), x[i:i + 1]) for i in range(8)])
    assert np.abs(got - want).max() < 0.05


# ---- LiteRT: XNNPACK runs every int8 op ----------------------------------------------------------
litert = pytest.importorskip("ai_edge_litert")


def test_xnnpack_plan_names_the_ops_it_leaves_to_builtin_kernels(block):
    """The plan can fail: the old export (one int8 HARD_SWISH per activation, an int8 SOFTMAX) is
    seen as split into partitions around the ops XNNPACK refuses."""
    from edgeops.convert.tflite import export
    from edgeops.convert.tflite.quantize import quantize
    from edgeops.convert.tflite.xnnpack import plan

    src, calib = block
    exported = export(onnx.load(src))  # the float export, HARD_SWISH kept: what int8 used to quantize
    samples = [{"x": a[None]} for a in np.load(calib)["x"][:8]]
    data, _ = quantize(exported.data, "int8", calibration=samples)
    p = plan(data)
    assert sorted(op.code for op in p.fallback) == ["HARD_SWISH", "HARD_SWISH", "SOFTMAX"]
    assert all(op.dtype == "int8" for op in p.fallback)
    assert p.partitions >= 3
    assert "built-in kernels run HARD_SWISH (int8) x2, SOFTMAX (int8) x1" in p.describe()


@pytest.mark.parametrize("activation", ["hardswish", "inlined", "relu"])
def test_tflite_int8_runs_entirely_on_xnnpack_in_one_partition(activation, tmp_path):
    src, calib = tmp_path / "m.onnx", tmp_path / "calib.npz"
    onnx.save(conv_net(activation), src)
    np.savez(calib, x=RNG.normal(0, 1, (16, 3, 16, 16)).astype(np.float32))
    out = tmp_path / "int8.tflite"
    report = edgeops.convert(src, out, quantize="int8", calibration=str(calib), profile=False)
    assert report.extra["xnnpack"]["fallback"] == {}, report.steps
    assert report.extra["xnnpack"]["partitions"] == 1
    assert report.extra["xnnpack"]["delegated"] == report.extra["xnnpack"]["ops"]
    assert "HARD_SWISH" not in report.ops_after


def test_tflite_int8_has_no_dequantize_quantize_round_trip(block, tmp_path):
    """No DEQUANTIZE whose float result reaches a QUANTIZE: every op between int8 ops is int8."""
    from ai_edge_litert import schema_py_generated as tfl

    src, calib = block
    out = tmp_path / "int8.tflite"
    edgeops.convert(src, out, quantize="int8", calibration=str(calib), profile=False)
    model = tfl.ModelT.InitFromPackedBuf(out.read_bytes(), 0)
    g = model.subgraphs[0]
    code = {i: c.builtinCode for i, c in enumerate(model.operatorCodes)}
    readers: dict[int, list] = {}
    for op in g.operators:
        for i in op.inputs:
            readers.setdefault(int(i), []).append(op)
    for op in g.operators:
        if code[op.opcodeIndex] != tfl.BuiltinOperator.DEQUANTIZE:
            continue
        stack, seen = [int(op.outputs[0])], set()
        while stack:  # follow float tensors downstream
            t = stack.pop()
            if t in seen:
                continue
            seen.add(t)
            for r in readers.get(t, []):
                assert code[r.opcodeIndex] != tfl.BuiltinOperator.QUANTIZE, "DEQUANTIZE ... QUANTIZE round trip"
                stack += [int(o) for o in r.outputs if g.tensors[o].type == tfl.TensorType.FLOAT32]


def test_tflite_float_export_keeps_one_hard_swish_op(block, tmp_path):
    """Float kernels fuse HARD_SWISH; only int8 gets the Add/Clip/Mul form."""
    src, _ = block
    report = edgeops.convert(src, tmp_path / "f.tflite", quantize="none", profile=False)
    assert report.ops_after.get("HARD_SWISH") == 2


def test_microcontroller_int8_keeps_hard_swish_and_softmax_int8(block, tmp_path):
    """cortex-m has no XNNPACK: TFLite Micro has int8 HARD_SWISH and SOFTMAX, and extra intermediate
    tensors would cost arena memory."""
    src, calib = block
    report = edgeops.convert(src, tmp_path / "m.c", target="cortex-m", quantize="int8", calibration=str(calib),
                             profile=False)
    assert report.ops_after.get("HARD_SWISH") == 2
    assert "xnnpack" not in report.extra


def test_int8_io_keeps_softmax_int8(block, tmp_path):
    """int8 I/O wants an int8 output, so the final SOFTMAX stays int8 there (and the report says XNNPACK
    leaves it to a built-in kernel)."""
    src, calib = block
    report = edgeops.convert(src, tmp_path / "io.tflite", quantize="int8", calibration=str(calib), int8_io=True,
                             profile=False)
    assert report.extra["xnnpack"]["fallback"] == {"SOFTMAX (int8)": 1}
    assert any("built-in kernels run SOFTMAX (int8) x1" in s for s in report.steps)


# ---- 7-bit weights: per target, said in the report ------------------------------------------------
@pytest.mark.parametrize("target,has_conv,bits,why", [
    ("generic-cpu", True, 7, "any x86-64 CPU"),
    ("generic-cpu", False, 8, "no convolutions"),
    ("rpi4", True, 8, "accumulate in 32 bits"),
    ("rpi5", True, 8, "accumulate in 32 bits"),
    ("jetson-orin", True, 8, "accumulate in 32 bits"),
])
def test_weight_bits_follow_the_target(target, has_conv, bits, why):
    model = conv_net("relu") if has_conv else helper.make_model(helper.make_graph(
        [helper.make_node("Gemm", ["x", "w"], ["y"])], "g", [], []))
    reduce_range, reason = weight_bits(get_target(target), model, None)
    assert reduce_range == (bits == 7)
    assert reason.startswith(f"{bits}-bit weights") and why in reason


@pytest.mark.parametrize("asked", [True, False])
def test_weight_bits_as_asked(asked):
    reduce_range, reason = weight_bits(get_target("rpi4"), conv_net("relu"), asked)
    assert reduce_range is asked and "as asked" in reason


@pytest.mark.parametrize("flags,want", [
    ("fpu sse avx2 avx512f avx512_vnni avx_vnni", "AVX512-VNNI/AVX-VNNI"),
    ("fpu sse avx2 avx_vnni", "AVX-VNNI"),
    ("fpu sse avx2 fma", ""),
])
def test_cpu_int8_dot_reads_cpuinfo_flags(tmp_path, flags, want):
    info = tmp_path / "cpuinfo"
    info.write_text(f"processor\t: 0\nflags\t\t: {flags}\n")
    assert cpu_int8_dot(str(info)) == want
    assert cpu_int8_dot(str(tmp_path / "missing")) is None


def test_convert_report_says_why_the_weights_have_7_or_8_bits(block, tmp_path):
    src, calib = block
    x86 = edgeops.convert(src, tmp_path / "a.onnx", quantize="int8", calibration=str(calib), profile=False)
    arm = edgeops.convert(src, tmp_path / "b.onnx", target="rpi5", quantize="int8", calibration=str(calib),
                          profile=False)
    assert any("7-bit weights (reduce_range): target generic-cpu is any x86-64 CPU" in s for s in x86.steps)
    assert any("8-bit weights: rpi5 is aarch64" in s for s in arm.steps)
