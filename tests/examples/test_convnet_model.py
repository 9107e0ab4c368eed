"""The committed MobileNet-style example model (examples/models/digits_mobilenet.*) is what its README says.

The files are written by examples/convnet/make_convnet.py (which needs torch); these tests need only
onnx and onnxruntime and run the committed files directly, so they also guard the fixtures that the
converter's optimizer and quantization tests use: depthwise convolutions, HardSwish, and
BatchNormalization left unfolded.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import check_profile_stats

MODELS = Path(__file__).parents[2] / "examples" / "models"
MODEL = MODELS / "digits_mobilenet.onnx"
MIN_ACCURACY = 0.95
SHAPE = [1, 32, 32]  # without the batch dimension


def _images(name: str) -> np.ndarray:
    with np.load(MODELS / f"digits_mobilenet_{name}.npz") as data:
        assert list(data) == ["image"]
        return data["image"]


def _labels() -> np.ndarray:
    return np.load(MODELS / "digits_test_labels.npy")


def _session():
    ort = pytest.importorskip("onnxruntime")
    return ort.InferenceSession(str(MODEL), providers=["CPUExecutionProvider"])


def _proto():
    onnx = pytest.importorskip("onnx")
    return onnx.load(str(MODEL))


def _attribute(node, name: str, default=None):
    from onnx import helper

    for attribute in node.attribute:
        if attribute.name == name:
            return helper.get_attribute_value(attribute)
    return default


def test_model_is_small_and_readable_by_older_runtimes() -> None:
    onnx = pytest.importorskip("onnx")
    assert MODEL.stat().st_size < 256 * 1024
    proto = _proto()
    onnx.checker.check_model(proto, full_check=True)
    assert proto.ir_version == 8
    assert [(o.domain, o.version) for o in proto.opset_import] == [("", 17)]


def test_model_has_the_mobilenet_building_blocks() -> None:
    proto = _proto()
    from onnx import numpy_helper

    ops = Counter(node.op_type for node in proto.graph.node)
    for op in ["Conv", "BatchNormalization", "HardSwish", "Relu", "Add", "MaxPool", "GlobalAveragePool", "Gemm"]:
        assert ops[op] >= 1, f"no {op} node; ops: {dict(ops)}"
    assert proto.graph.node[-1].op_type == "Softmax"

    weights = {init.name: numpy_helper.to_array(init) for init in proto.graph.initializer}
    depthwise = []
    for node in proto.graph.node:
        if node.op_type != "Conv":
            continue
        weight = weights[node.input[1]]
        group = _attribute(node, "group", 1)
        if group > 1:
            # depthwise: one 3x3 filter per channel (group == in channels == out channels)
            assert weight.shape == (group, 1, 3, 3), node.name
            assert _attribute(node, "pads") == [1, 1, 1, 1], node.name
            depthwise.append(node.name)
    assert len(depthwise) >= 3, depthwise
    strides = [_attribute(n, "strides") for n in proto.graph.node if n.op_type == "Conv"]
    assert [2, 2] in strides and [1, 1] in strides


def test_every_conv_feeds_an_unfolded_batchnorm() -> None:
    proto = _proto()
    producer = {out: node for node in proto.graph.node for out in node.output}
    consumers = Counter(name for node in proto.graph.node for name in node.input)
    batchnorms = [node for node in proto.graph.node if node.op_type == "BatchNormalization"]
    convs = [node for node in proto.graph.node if node.op_type == "Conv"]
    assert len(batchnorms) == len(convs)
    for bn in batchnorms:
        conv = producer[bn.input[0]]
        assert conv.op_type == "Conv", bn.name
        assert len(conv.input) == 2, f"{conv.name} has a bias; the BatchNormalization carries it"
        assert consumers[conv.output[0]] == 1, f"{conv.name} output is used outside its BatchNormalization"
        assert len(bn.output) == 1  # inference form: no running-statistics outputs


def test_model_has_dynamic_batch_and_named_io() -> None:
    proto = _proto()
    (graph_input,) = proto.graph.input
    dims = graph_input.type.tensor_type.shape.dim
    assert dims[0].dim_param == "batch" and [d.dim_value for d in dims[1:]] == SHAPE

    session = _session()
    (model_input,) = session.get_inputs()
    (model_output,) = session.get_outputs()
    assert (model_input.name, model_input.shape, model_input.type) == ("image", ["batch", *SHAPE], "tensor(float)")
    assert (model_output.name, model_output.shape) == ("probabilities", ["batch", 10])
    images = _images("test")
    whole = session.run(["probabilities"], {"image": images[:7]})[0]
    for i in (0, 6):
        one = session.run(["probabilities"], {"image": images[i : i + 1]})[0]
        np.testing.assert_allclose(one, whole[i : i + 1], rtol=0, atol=1e-5)


def test_model_reaches_accuracy_on_test_split() -> None:
    session = _session()
    probabilities = session.run(["probabilities"], {"image": _images("test")})[0]
    accuracy = float((probabilities.argmax(axis=1) == _labels()).mean())
    assert accuracy >= MIN_ACCURACY, f"accuracy {accuracy:.4f}"
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)


def test_unoptimized_graph_gives_the_same_probabilities() -> None:
    """onnxruntime with every graph optimization off (BatchNormalization run as its own op)."""
    ort = pytest.importorskip("onnxruntime")
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    plain = ort.InferenceSession(str(MODEL), options, providers=["CPUExecutionProvider"])
    images = _images("test")[:50]
    np.testing.assert_allclose(
        plain.run(None, {"image": images})[0], _session().run(None, {"image": images})[0], rtol=0, atol=1e-5
    )


def _upsample_with_onnx_resize(images: np.ndarray) -> np.ndarray:
    """8x8 -> 32x32 bilinear (half-pixel centres) by onnxruntime's Resize, an independent check."""
    ort = pytest.importorskip("onnxruntime")
    from onnx import TensorProto, helper

    node = helper.make_node(
        "Resize", ["x", "", "scales"], ["y"], mode="linear", coordinate_transformation_mode="half_pixel"
    )
    scales = helper.make_tensor("scales", TensorProto.FLOAT, [4], [1.0, 1.0, 4.0, 4.0])
    graph = helper.make_graph(
        [node],
        "resize",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 1, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 1, 32, 32])],
        initializer=[scales],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, {"x": images})[0]


@pytest.mark.parametrize("split", ["test", "calib"])
def test_data_are_the_digits_splits_upsampled(split: str) -> None:
    pytest.importorskip("onnx")
    images = _images(split)
    with np.load(MODELS / f"digits_cnn_{split}.npz") as data:
        small = data["image"]
    assert images.dtype == np.float32 and images.shape == (len(small), *SHAPE)
    assert images.min() >= 0.0 and images.max() <= 1.0
    np.testing.assert_allclose(images, _upsample_with_onnx_resize(small), rtol=0, atol=1e-6)


def test_labels_line_up_with_the_test_split() -> None:
    labels, images, calib = _labels(), _images("test"), _images("calib")
    assert labels.dtype == np.int64 and labels.shape == (len(images),) == (360,)
    assert np.bincount(labels, minlength=10).min() >= 30  # stratified: every digit is there
    assert calib.shape == (100, *SHAPE)


def test_profile_is_consistent_with_the_data() -> None:
    profile = json.loads((MODELS / "digits_mobilenet.profile.json").read_text())
    assert profile["version"] == 1
    assert list(profile["inputs"]) == ["image"] and list(profile["outputs"]) == ["probabilities"]

    image = profile["inputs"]["image"]
    check_profile_stats(image, [None, *SHAPE])
    assert image["min"] >= 0.0 and image["max"] <= 1.0
    per_sample = int(np.prod(SHAPE))
    assert sum(image["histogram"]["counts"]) % per_sample == 0
    samples = sum(image["histogram"]["counts"]) // per_sample
    assert samples == 1437  # the training split
    test_images = _images("test")  # same distribution as the training data
    assert abs(float(test_images.mean()) - image["mean"]) < 0.05
    assert abs(float(test_images.std()) - image["std"]) < 0.05

    probabilities = profile["outputs"]["probabilities"]
    check_profile_stats(probabilities, [None, 10])
    assert probabilities["min"] >= 0.0 and probabilities["max"] <= 1.0
    assert probabilities["mean"] == pytest.approx(0.1, abs=1e-6)  # rows sum to 1 over 10 classes
    assert sum(probabilities["histogram"]["counts"]) == samples * 10
