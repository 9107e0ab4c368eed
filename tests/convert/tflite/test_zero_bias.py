"""Static int8 TFLite output never has a FULLY_CONNECTED without a bias: a MatMul (or a Gemm without C)
exports as one, and tflite-runtime 2.14 on aarch64, the Raspberry Pi's runtime, crashes on an int8
FULLY_CONNECTED whose bias is missing (tests/formats/test_arm_hazards.py). The exporter gives it a
zero int32 bias at the scale TFLite expects, so the outputs are unchanged."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("onnx")
pytest.importorskip("ai_edge_quantizer")

import edgeops
from edgeops.formats import tflite_io_map


def matmul_model(path, rng):
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    w1 = numpy_helper.from_array(rng.normal(0, 0.3, (16, 32)).astype(np.float32), "w1")
    w2 = numpy_helper.from_array(rng.normal(0, 0.3, (32, 8)).astype(np.float32), "w2")
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w1"], ["h"]), helper.make_node("Relu", ["h"], ["r"]),
         helper.make_node("Gemm", ["r", "w2"], ["y"])],  # a Gemm without C: no bias either
        "unbiased", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 16])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 8])], [w1, w2])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)


@pytest.mark.parametrize("int8_io", [False, True], ids=["float-io", "int8-io"])
def test_int8_fully_connected_always_has_a_bias(tmp_path, int8_io):
    rng = np.random.default_rng(0)
    src = tmp_path / "m.onnx"
    matmul_model(src, rng)
    calib = tmp_path / "calib.npz"
    np.savez(calib, x=rng.normal(0, 1, (64, 16)).astype(np.float32))
    float_out, int8_out = tmp_path / "m.tflite", tmp_path / "m_int8.tflite"
    edgeops.convert(src, float_out)
    edgeops.convert(src, int8_out, quantize="int8", calibration=str(calib), int8_io=int8_io)

    float_hazards: list[str] = []
    tflite_io_map(float_out.read_bytes(), hazards=float_hazards)
    hazards: list[str] = []
    tflite_io_map(int8_out.read_bytes(), hazards=hazards)
    assert hazards == [], hazards

    from ai_edge_litert import schema_py_generated as schema

    model = schema.ModelT.InitFromPackedBuf(int8_out.read_bytes(), 0)
    g = model.subgraphs[0]
    fcs = [op for op in g.operators
           if model.operatorCodes[op.opcodeIndex].builtinCode == schema.BuiltinOperator.FULLY_CONNECTED]
    assert len(fcs) == 2
    for op in fcs:
        bias = g.tensors[op.inputs[2]]
        assert bias.type == schema.TensorType.INT32 and list(bias.shape) == [g.tensors[op.inputs[1]].shape[0]]
        x_scale = g.tensors[op.inputs[0]].quantization.scale[0]
        w_scale = np.asarray(g.tensors[op.inputs[1]].quantization.scale)
        np.testing.assert_allclose(bias.quantization.scale, x_scale * w_scale, rtol=1e-6)

    if not int8_io:  # the same outputs as the float model, within int8 rounding
        x = rng.normal(0, 1, (4, 1, 16)).astype(np.float32)
        for row in x:
            ref = edgeops.load(str(float_out)).run({"x": row})["y"]
            got = edgeops.load(str(int8_out)).run({"x": row})["y"]
            assert np.max(np.abs(got - ref)) < 0.05 * np.max(np.abs(ref)) + 0.02
