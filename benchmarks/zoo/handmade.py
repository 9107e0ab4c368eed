"""Zoo models written with onnx.helper that mimic other exporters' habits.

PaddlePaddle (paddle2onnx) style: opset 11, batch written as ``dim_value -1``, weights held by
``Constant`` nodes instead of initializers, BatchNorm folded into ``Mul`` + ``Add``, ReLU6 as an
opset-11 ``Clip`` with min/max inputs, input scaling by ``Div`` by a constant, flatten by a
``Shape -> Gather -> Unsqueeze -> Concat -> Reshape`` subgraph, ``MatMul`` + ``Add`` for the fully
connected layer, and an opset-11 ``Resize`` (roi, scales, sizes) whose sizes come from the input's
shape. tf2onnx style: NHWC input with a ``unk__`` batch name, a ``Transpose`` into NCHW, explicit
``Pad`` before a VALID conv, ``:0``-suffixed tensor names, and a ``Reshape`` to a constant shape.
"""

from __future__ import annotations

from typing import Any

import numpy as np


class Graph:
    """A tiny builder: unique names, Constant-node or initializer weights, node list."""

    def __init__(self, rng: np.random.Generator, constants_as_nodes: bool):
        from onnx import helper, numpy_helper

        self.h, self.nh, self.rng = helper, numpy_helper, rng
        self.nodes: list[Any] = []
        self.inits: list[Any] = []
        self.as_nodes, self.n = constants_as_nodes, 0

    def name(self, prefix: str) -> str:
        self.n += 1
        return f"{prefix}_{self.n}"

    def const(self, value: np.ndarray, prefix: str = "const") -> str:
        name = self.name(prefix)
        tensor = self.nh.from_array(np.asarray(value), name)
        if self.as_nodes:
            self.nodes.append(self.h.make_node("Constant", [], [name], value=tensor))
        else:
            self.inits.append(tensor)
        return name

    def op(self, op_type: str, inputs: list[str], prefix: str | None = None, **attrs: Any) -> str:
        out = self.name(prefix or op_type.lower())
        self.nodes.append(self.h.make_node(op_type, inputs, [out], name=self.name(op_type), **attrs))
        return out

    def conv(self, x: str, cin: int, cout: int, k: int, s: int = 1, groups: int = 1, pads: int | None = None) -> str:
        w = self.rng.normal(0, (2.0 / (cin // groups * k * k)) ** 0.5, (cout, cin // groups, k, k))
        p = k // 2 if pads is None else pads
        return self.op("Conv", [x, self.const(w.astype(np.float32), "conv_w")], kernel_shape=[k, k],
                       strides=[s, s], pads=[p] * 4, group=groups)

    def bn_as_mul_add(self, x: str, c: int) -> str:
        scale = self.rng.uniform(0.5, 1.5, (1, c, 1, 1)).astype(np.float32)
        shift = self.rng.normal(0, 0.2, (1, c, 1, 1)).astype(np.float32)
        return self.op("Add", [self.op("Mul", [x, self.const(scale, "bn_scale")]), self.const(shift, "bn_shift")])

    def relu6(self, x: str) -> str:  # opset 11 Clip: min and max are inputs
        return self.op("Clip", [x, self.const(np.array(0, np.float32)), self.const(np.array(6, np.float32))])

    def model(self, inputs: list[Any], outputs: list[Any], opset: int, producer: str) -> Any:
        graph = self.h.make_graph(self.nodes, "zoo", inputs, outputs, self.inits)
        m = self.h.make_model(graph, opset_imports=[self.h.make_opsetid("", opset)], producer_name=producer)
        m.ir_version = 6 if opset <= 11 else 8
        return m


def _dims(shape: list[int | str]) -> Any:
    from onnx import TensorProto, helper

    info = helper.make_tensor_value_info("x", TensorProto.FLOAT, None)
    for d in shape:
        dim = info.type.tensor_type.shape.dim.add()
        if isinstance(d, str):
            dim.dim_param = d
        else:
            dim.dim_value = d  # -1 here: paddle2onnx's dynamic batch
    return info


def _value(name: str, shape: list[int | str]) -> Any:
    info = _dims(shape)
    info.name = name
    return info


def _flatten(g: Graph, x: str) -> str:
    """paddle2onnx's flatten: Shape -> Gather(batch) -> Unsqueeze -> Concat([-1]) -> Reshape."""
    batch = g.op("Gather", [g.op("Shape", [x]), g.const(np.array(0, np.int64))], axis=0)
    shape = g.op("Concat", [g.op("Unsqueeze", [batch], axes=[0]), g.const(np.array([-1], np.int64))], axis=0)
    return g.op("Reshape", [x, shape])


def paddle_classifier(seed: int = 0, size: int = 64, classes: int = 100) -> Any:
    """A MobileNetV1-style classifier as paddle2onnx writes it (opset 11)."""
    g = Graph(np.random.default_rng(seed), constants_as_nodes=True)
    x = g.op("Div", ["x", g.const(np.array(255.0, np.float32))])  # 0..255 pixels in
    x = g.relu6(g.bn_as_mul_add(g.conv(x, 3, 16, 3, 2), 16))
    c = 16
    for cout, s in [(32, 1), (64, 2), (64, 1), (128, 2), (128, 1)]:
        x = g.relu6(g.bn_as_mul_add(g.conv(x, c, c, 3, s, groups=c), c))
        x = g.relu6(g.bn_as_mul_add(g.conv(x, c, cout, 1), cout))
        c = cout
    x = _flatten(g, g.op("GlobalAveragePool", [x]))
    w = g.rng.normal(0, (1 / c) ** 0.5, (c, classes)).astype(np.float32)
    x = g.op("Add", [g.op("MatMul", [x, g.const(w, "fc_w")]), g.const(np.zeros(classes, np.float32), "fc_b")])
    g.nodes.append(g.h.make_node("Softmax", [x], ["softmax_0.tmp_0"], axis=1))
    return g.model([_value("x", [-1, 3, size, size])], [_value("softmax_0.tmp_0", [-1, classes])], 11,
                   "PaddlePaddle")


def paddle_segmenter(seed: int = 0, size: int = 64, classes: int = 4) -> Any:
    """A PP-LiteSeg-flavoured segmenter: stride-8 encoder, opset-11 bilinear Resize back to the input's size."""
    g = Graph(np.random.default_rng(seed), constants_as_nodes=True)
    x = g.op("Div", ["x", g.const(np.array(255.0, np.float32))])
    c = 3
    for cout in (16, 32, 64):
        x = g.relu6(g.bn_as_mul_add(g.conv(x, c, cout, 3, 2), cout))
        c = cout
    low = x
    x = g.op("Relu", [g.bn_as_mul_add(g.conv(x, c, c, 3), c)])
    x = g.op("Add", [x, low])
    logits = g.conv(x, c, classes, 1, pads=0)
    # sizes = input's H, W: Shape -> Slice[2:4] -> Concat with the logits' N, C
    hw = g.op("Slice", [g.op("Shape", ["x"]), g.const(np.array([2], np.int64)), g.const(np.array([4], np.int64))])
    nc = g.op("Slice", [g.op("Shape", [logits]), g.const(np.array([0], np.int64)), g.const(np.array([2], np.int64))])
    sizes = g.op("Concat", [nc, hw], axis=0)
    empty = g.const(np.zeros(0, np.float32), "empty")
    up = g.op("Resize", [logits, empty, empty, sizes], mode="linear", coordinate_transformation_mode="half_pixel")
    # paddle2onnx's softmax over channels at opset 11 (where Softmax flattens from its axis): to NHWC,
    # softmax over the last axis, back to NCHW
    probs = g.op("Softmax", [g.op("Transpose", [up], perm=[0, 2, 3, 1])], axis=3)
    g.nodes.append(g.h.make_node("Transpose", [probs], ["save_infer_model/scale_0.tmp_0"], perm=[0, 3, 1, 2]))
    return g.model([_value("x", [-1, 3, size, size])],
                   [_value("save_infer_model/scale_0.tmp_0", [-1, classes, size, size])], 11, "PaddlePaddle")


def tf2onnx_classifier(seed: int = 0, size: int = 32, classes: int = 10) -> Any:
    """A Keras-style CNN as tf2onnx writes it: NHWC input, Transpose, explicit Pad, VALID convs, MaxPool."""
    g = Graph(np.random.default_rng(seed), constants_as_nodes=False)
    x = g.op("Transpose", ["input_1:0"], perm=[0, 3, 1, 2])
    c = 3
    for cout in (16, 32):
        x = g.op("Pad", [x, g.const(np.array([0, 0, 1, 1, 0, 0, 1, 1], np.int64))], mode="constant")
        x = g.op("Relu", [g.op("Add", [g.conv(x, c, cout, 3, pads=0),
                                        g.const(g.rng.normal(0, 0.1, (1, cout, 1, 1)).astype(np.float32))])])
        x = g.op("MaxPool", [x], kernel_shape=[2, 2], strides=[2, 2])
        c = cout
    x = g.op("Transpose", [x], perm=[0, 2, 3, 1])  # back to NHWC before Keras' Flatten
    flat = (size // 4) ** 2 * c
    x = g.op("Reshape", [x, g.const(np.array([-1, flat], np.int64))])
    w = g.rng.normal(0, (1 / flat) ** 0.5, (flat, classes)).astype(np.float32)
    x = g.op("Add", [g.op("MatMul", [x, g.const(w)]), g.const(np.zeros(classes, np.float32))])
    g.nodes.append(g.h.make_node("Softmax", [x], ["dense/Softmax:0"], axis=-1))
    return g.model([_value("input_1:0", ["unk__0", size, size, 3])], [_value("dense/Softmax:0", ["unk__1", classes])],
                   13, "tf2onnx")
