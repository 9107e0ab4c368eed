"""convert --float-tail N and --exclude-nodes: the head of a detector or segmenter kept float in int8, ONNX and TFLite.

Plain int8 loses most of the detector's boxes (recall about 0.45 against fp32 on these photos,
while the output's cosine similarity stays above 0.9999); with the last compute layer and the
decode after it in float, recall is back near 1. The tests assert the improvement (>=) and
that the tail really is float in the file written.
"""

from __future__ import annotations

import numpy as np
import pytest

from edgeops.convert import convert
from edgeops.errors import UsageError
from edgeops.validate import Segmentation, validate

onnx = pytest.importorskip("onnx")


def _int8(model, data, out, **kw):
    return convert(model, out, quantize="int8", calibration=str(data["calib"]), profile=False, **kw)


def _task(ref, cand, data, task, **kw):
    return validate(ref, cand, data["test"], task=task, latency=False, diagnose=False, **kw).task


@pytest.fixture(scope="module")
def detector_int8(detector, task_data, tmp_path_factory):
    """{(format, tail): path} for plain int8 and --float-tail 1 and 2."""
    root = tmp_path_factory.mktemp("det-int8")
    out = {}
    for fmt in ("onnx", "tflite"):
        for tail in (0, 1, 2):
            path = root / f"detector_t{tail}.{fmt}"
            _int8(detector, task_data, path, float_tail=tail)
            out[fmt, tail] = path
    return out


@pytest.mark.parametrize("fmt", ["onnx", "tflite"])
@pytest.mark.parametrize("tail", [1, 2])
def test_float_tail_recovers_detection_recall(detector, task_data, detector_int8, fmt, tail):
    plain = _task(detector, detector_int8[fmt, 0], task_data, "detection")
    kept = _task(detector, detector_int8[fmt, tail], task_data, "detection")
    assert plain["recall"] < 0.9  # the loss this option is for
    assert kept["recall"] >= plain["recall"] and kept["recall"] >= 0.9
    assert kept["precision"] >= 0.9


def test_onnx_tail_nodes_are_float(detector_int8):
    m = onnx.load(str(detector_int8["onnx", 1]))
    convs = [n for n in m.graph.node if n.op_type == "Conv"]
    producers = {o: n for n in m.graph.node for o in n.output}
    inits = {i.name for i in m.graph.initializer}
    head = next(n for n in convs if n.name == "/head/Conv")
    assert head.input[1] in inits  # float weights, no DequantizeLinear in front of them
    consumers = [n.op_type for n in m.graph.node if head.output[0] in n.input]
    assert "QuantizeLinear" not in consumers
    body = [n for n in convs if n is not head]
    assert body and all(producers[n.input[1]].op_type == "DequantizeLinear" for n in body)  # the rest is int8
    assert not any(n.op_type == "QuantizeLinear" for n in m.graph.node if n.input[0] == "boxes")


def _tflite_ops(path):
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(str(path))
    tensors = {t["index"]: t for t in it.get_tensor_details()}
    return [(op["op_name"], [np.dtype(tensors[i]["dtype"]).name for i in op["inputs"] if i >= 0],
             [tensors[i]["name"] for i in op["outputs"]]) for op in it._get_ops_details()]


@pytest.mark.parametrize("tail, floats", [(0, 0), (1, 1), (2, 2)])
def test_tflite_tail_convs_are_float(detector_int8, tail, floats):
    pytest.importorskip("ai_edge_litert")
    convs = [op for op in _tflite_ops(detector_int8["tflite", tail]) if op[0] == "CONV_2D"]
    float_convs = [op for op in convs if op[1][0] == "float32"]
    assert len(float_convs) == floats and len(convs) == 5
    assert all(op[1][0] == "int8" for op in convs[:len(convs) - floats])  # the last ones are the float ones


def test_tflite_exclude_nodes_keeps_that_node_float(detector, task_data, tmp_path):
    pytest.importorskip("ai_edge_litert")
    out = tmp_path / "excluded.tflite"
    report = _int8(detector, task_data, out, exclude_nodes=["/head/Conv"])
    convs = [op for op in _tflite_ops(out) if op[0] == "CONV_2D"]
    assert [op[2][0] for op in convs if op[1][0] == "float32"] == ["/head/Conv_output_0"]
    assert any("--exclude-nodes: 1 TFLite op(s)" in s for s in report.steps)


def test_float_tail_on_the_segmenter(segmenter, task_data, tmp_path):
    opts = Segmentation(output="prob")
    ious = {}
    for tail in (0, 1):
        out = tmp_path / f"seg_t{tail}.onnx"
        _int8(segmenter, task_data, out, float_tail=tail)
        ious[tail] = _task(segmenter, out, task_data, "segmentation", task_options=opts)["mask_iou"]
    assert ious[1] >= ious[0] > 0.5


@pytest.mark.parametrize("kwargs, match", [
    ({"float_tail": 9}, "has 5 compute layer"),
    ({"float_tail": 1, "quantize": "dynamic", "calibration": None}, "static int8"),
    ({"float_tail": -1}, "number of layers"),
], ids=["too-many", "not-int8", "negative"])
def test_float_tail_refusals(detector, task_data, tmp_path, kwargs, match):
    args = {"quantize": "int8", "calibration": str(task_data["calib"]), **kwargs}
    with pytest.raises(UsageError, match=match):
        convert(detector, tmp_path / "out.onnx", profile=False, **args)
