"""NCHW graphs become NHWC TFLite graphs with transposes only where memory order matters."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import helper

from .conftest import assert_parity, graph_model, run_tflite


def conv_flatten_model(rng, heads=1, flatten_out=False):
    w = rng.standard_normal((3, 2, 3, 3)).astype(np.float32)
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c"], ["r"]),
             helper.make_node("Flatten", ["r"], ["f"])]
    inits = {"w": w}
    outputs = {"f": [1, 60]} if flatten_out else {}
    for k in range(heads):
        inits[f"fc{k}"] = rng.standard_normal((60, 7)).astype(np.float32)
        nodes.append(helper.make_node("Gemm", ["f", f"fc{k}"], [f"y{k}"]))
        outputs[f"y{k}"] = [1, 7]
    return graph_model(nodes, {"x": [1, 2, 4, 5]}, outputs, inits)


@pytest.mark.parametrize("heads", [1, 2], ids=["one-classifier", "two-heads"])
def test_flatten_transpose_folds_into_the_classifier_weights(rng, heads):
    x = rng.standard_normal((1, 2, 4, 5)).astype(np.float32)
    exported = assert_parity(conv_flatten_model(rng, heads), {"x": x})
    assert exported.ops.get("TRANSPOSE", 0) == 1  # only the NCHW input -> NHWC for the conv


def test_a_flattened_graph_output_keeps_onnx_memory_order(rng):
    x = rng.standard_normal((1, 2, 4, 5)).astype(np.float32)
    exported = assert_parity(conv_flatten_model(rng, 1, flatten_out=True), {"x": x})
    assert exported.ops.get("TRANSPOSE", 0) == 2


def test_channels_last_io_drops_the_boundary_transposes(rng):
    w = rng.standard_normal((4, 3, 3, 3)).astype(np.float32)
    model = graph_model([helper.make_node("Conv", ["x", "w"], ["y"], pads=[1, 1, 1, 1])],
                        {"x": [1, 3, 6, 6]}, {"y": [1, 4, 6, 6]}, {"w": w})
    from edgeops.convert.tflite import export

    exported = export(model, channels_last_io=True)
    assert exported.inputs == [("x", (1, 6, 6, 3))] and exported.outputs == [("y", (1, 6, 6, 4))]
    assert exported.ops == {"CONV_2D": 1}
    x = rng.standard_normal((1, 3, 6, 6)).astype(np.float32)
    from .conftest import run_onnx

    want = run_onnx(model, {"x": x})["y"]
    got = run_tflite(exported.data, {"x": np.ascontiguousarray(x.transpose(0, 2, 3, 1))})["y"]
    np.testing.assert_allclose(got.transpose(0, 3, 1, 2), want, rtol=1e-4, atol=1e-5)
