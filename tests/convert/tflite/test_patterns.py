"""Subgraphs that exporters and onnxruntime write out op by op come back as one TFLite kernel."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import helper

from .conftest import assert_parity, graph_model, onnx


def gelu_graph(form):
    consts = {"sqrt2": np.array(2 ** 0.5, np.float32), "inv_sqrt2": np.array(2 ** -0.5, np.float32),
              "one": np.array(1.0, np.float32), "half": np.array(0.5, np.float32)}
    scale = (helper.make_node("Div", ["x", "sqrt2"], ["s"]) if form != "mul-scale"
             else helper.make_node("Mul", ["x", "inv_sqrt2"], ["s"]))
    nodes = [scale, helper.make_node("Erf", ["s"], ["e"]), helper.make_node("Add", ["e", "one"], ["a"])]
    if form == "half-first":
        nodes += [helper.make_node("Mul", ["x", "half"], ["h"]), helper.make_node("Mul", ["h", "a"], ["y"])]
    elif form == "half-inner":  # x * ((1 + erf) * 0.5): torch's dynamo exporter (the zoo's ViTs)
        nodes += [helper.make_node("Mul", ["half", "a"], ["h"]), helper.make_node("Mul", ["x", "h"], ["y"])]
    else:
        nodes += [helper.make_node("Mul", ["x", "a"], ["m"]), helper.make_node("Mul", ["m", "half"], ["y"])]
    return graph_model(nodes, {"x": [2, 16]}, {"y": [2, 16]}, consts)


@pytest.mark.parametrize("form", ["half-last", "half-first", "half-inner", "mul-scale"])
def test_erf_gelu_becomes_one_gelu(rng, form):
    x = (rng.standard_normal((2, 16)) * 3).astype(np.float32)
    exported = assert_parity(gelu_graph(form), {"x": x})
    assert exported.ops == {"GELU": 1}


def test_torch_gelu_export(tmp_path, rng):
    torch = pytest.importorskip("torch")
    import edgeops.convert

    net = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.GELU(), torch.nn.Linear(16, 4))
    path = tmp_path / "gelu.onnx"
    edgeops.convert.from_torch(net, (torch.zeros(1, 8),), path, quantize="none")
    exported = assert_parity(onnx.load(path), {next(iter(i.name for i in onnx.load(path).graph.input)):
                                               rng.standard_normal((1, 8)).astype(np.float32)})
    assert exported.ops.get("GELU") == 1 and "Erf" not in str(exported.ops)


def test_mobilenet_hard_swish_stays_one_kernel(examples):
    model = onnx.load(examples / "digits_mobilenet.onnx")
    x = np.load(examples / "digits_mobilenet_test.npz")["image"][:2]
    exported = assert_parity(model, {"image": x[:1]})
    assert exported.ops.get("HARD_SWISH", 0) >= 7 and "LOGISTIC" not in exported.ops
    assert exported.ops.get("TRANSPOSE", 0) == 0  # 1-channel input: a RESHAPE; the head folds into the FC
