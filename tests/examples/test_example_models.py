"""The committed example models in examples/models/ work as their README says.

These run the committed files directly with onnxruntime and LiteRT (or tflite-runtime on
older devices' stacks), not through edgeops, so they also guard the fixtures other tests use.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import check_profile_stats

MODELS = Path(__file__).parents[2] / "examples" / "models"
MIN_ACCURACY = 0.95
TFLITE_TOLERANCE = 1e-5

# model -> (input name, input shape without batch)
ONNX_MODELS = {"digits_mlp": ("pixels", [64]), "digits_cnn": ("image", [1, 8, 8])}


def _test_split(model: str) -> tuple[np.ndarray, np.ndarray]:
    name = ONNX_MODELS[model][0]
    with np.load(MODELS / f"{model}_test.npz") as data:
        inputs = data[name]
    return inputs, np.load(MODELS / "digits_test_labels.npy")


def _onnx_session(model: str):
    ort = pytest.importorskip("onnxruntime")
    return ort.InferenceSession(str(MODELS / f"{model}.onnx"), providers=["CPUExecutionProvider"])


def _tflite_interpreter():
    try:
        from ai_edge_litert import interpreter as litert
    except ImportError:  # older device stacks: tflite-runtime, numpy < 2
        litert = pytest.importorskip("tflite_runtime.interpreter")
    return litert.Interpreter(model_path=str(MODELS / "digits_mlp.tflite"))


def _tflite_run(interpreter, batch: np.ndarray) -> np.ndarray:
    """Resize the input to the batch (a no-op when it fits), run, return the output."""
    index = interpreter.get_input_details()[0]["index"]
    interpreter.resize_tensor_input(index, list(batch.shape))
    interpreter.allocate_tensors()
    interpreter.set_tensor(index, batch)
    interpreter.invoke()
    return interpreter.get_tensor(interpreter.get_output_details()[0]["index"])


@pytest.mark.parametrize("model", list(ONNX_MODELS))
def test_onnx_model_reaches_accuracy_on_test_split(model: str) -> None:
    session = _onnx_session(model)
    inputs, labels = _test_split(model)
    probabilities = session.run(["probabilities"], {ONNX_MODELS[model][0]: inputs})[0]
    accuracy = float((probabilities.argmax(axis=1) == labels).mean())
    assert accuracy >= MIN_ACCURACY, f"{model}: accuracy {accuracy:.4f}"
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)


@pytest.mark.parametrize("model", list(ONNX_MODELS))
def test_onnx_model_has_dynamic_batch_and_named_io(model: str) -> None:
    session = _onnx_session(model)
    name, shape = ONNX_MODELS[model]
    (model_input,) = session.get_inputs()
    (model_output,) = session.get_outputs()
    assert (model_input.name, model_input.shape, model_input.type) == (
        name,
        ["batch", *shape],
        "tensor(float)",
    )
    assert (model_output.name, model_output.shape) == ("probabilities", ["batch", 10])


@pytest.mark.parametrize("model", list(ONNX_MODELS))
def test_onnx_model_is_readable_by_older_runtimes(model: str) -> None:
    onnx = pytest.importorskip("onnx")
    proto = onnx.load(str(MODELS / f"{model}.onnx"))
    onnx.checker.check_model(proto)
    assert proto.ir_version == 8
    assert [(o.domain, o.version) for o in proto.opset_import] == [("", 17)]


def test_tflite_file_identifier_and_signature() -> None:
    assert (MODELS / "digits_mlp.tflite").read_bytes()[4:8] == b"TFL3"
    interpreter = _tflite_interpreter()
    assert interpreter.get_signature_list() == {
        "serving_default": {"inputs": ["pixels"], "outputs": ["probabilities"]}
    }
    (model_input,) = interpreter.get_input_details()
    assert model_input["name"] == "pixels"
    assert model_input["shape_signature"].tolist() == [-1, 64]


def test_tflite_matches_onnx_one_sample_at_a_time() -> None:
    session = _onnx_session("digits_mlp")
    interpreter = _tflite_interpreter()
    inputs, _ = _test_split("digits_mlp")
    for i in range(0, len(inputs), 36):  # 10 samples spread over the split
        sample = inputs[i : i + 1]
        expected = session.run(["probabilities"], {"pixels": sample})[0]
        got = _tflite_run(interpreter, sample)
        assert got.shape == (1, 10)
        np.testing.assert_allclose(got, expected, rtol=0, atol=TFLITE_TOLERANCE)


@pytest.mark.parametrize("batch", [5, 360], ids=["batch5", "whole-split"])
def test_tflite_matches_onnx_after_resizing_the_batch(batch: int) -> None:
    session = _onnx_session("digits_mlp")
    interpreter = _tflite_interpreter()
    inputs, labels = _test_split("digits_mlp")
    got = _tflite_run(interpreter, inputs[:batch])
    expected = session.run(["probabilities"], {"pixels": inputs[:batch]})[0]
    assert got.shape == (batch, 10)
    np.testing.assert_allclose(got, expected, rtol=0, atol=TFLITE_TOLERANCE)
    if batch == len(inputs):
        assert float((got.argmax(axis=1) == labels).mean()) >= MIN_ACCURACY


def test_tflite_signature_runner_gives_probabilities() -> None:
    interpreter = _tflite_interpreter()
    inputs, labels = _test_split("digits_mlp")
    runner = interpreter.get_signature_runner("serving_default")
    probabilities = runner(pixels=inputs[:1])["probabilities"]
    # a softmax written without beta=1.0 would give a uniform 0.1 everywhere
    assert probabilities.max() > 0.5
    assert probabilities.argmax() == labels[0]


def test_data_files_agree_with_each_other() -> None:
    mlp, labels = _test_split("digits_mlp")
    cnn, _ = _test_split("digits_cnn")
    assert mlp.dtype == cnn.dtype == np.float32
    assert labels.dtype == np.int64 and set(labels.tolist()) == set(range(10))
    assert mlp.shape == (len(labels), 64) and cnn.shape == (len(labels), 1, 8, 8)
    np.testing.assert_array_equal(cnn.reshape(len(labels), 64), mlp)
    assert mlp.min() >= 0.0 and mlp.max() <= 1.0
    with np.load(MODELS / "digits_mlp_calib.npz") as mlp_calib:
        pixels = mlp_calib["pixels"]
    with np.load(MODELS / "digits_cnn_calib.npz") as cnn_calib:
        image = cnn_calib["image"]
    assert pixels.shape == (100, 64) and image.shape == (100, 1, 8, 8)
    assert pixels.dtype == image.dtype == np.float32
    assert pixels.min() >= 0.0 and pixels.max() <= 1.0
    np.testing.assert_array_equal(image.reshape(100, 64), pixels)


@pytest.mark.parametrize("model", list(ONNX_MODELS))
def test_profile_is_consistent_with_the_data(model: str) -> None:
    profile = json.loads((MODELS / f"{model}.profile.json").read_text())
    name, shape = ONNX_MODELS[model]
    assert profile["version"] == 1
    assert list(profile["inputs"]) == [name] and list(profile["outputs"]) == ["probabilities"]

    pixels = profile["inputs"][name]
    check_profile_stats(pixels, [None, *shape])
    assert pixels["min"] >= 0.0 and pixels["max"] <= 1.0
    assert sum(pixels["histogram"]["counts"]) % int(np.prod(shape)) == 0
    test_inputs, _ = _test_split(model)  # same distribution as the training data
    assert abs(float(test_inputs.mean()) - pixels["mean"]) < 0.05
    assert abs(float(test_inputs.std()) - pixels["std"]) < 0.05

    probabilities = profile["outputs"]["probabilities"]
    check_profile_stats(probabilities, [None, 10])
    assert probabilities["min"] >= 0.0 and probabilities["max"] <= 1.0
    assert probabilities["mean"] == pytest.approx(0.1, abs=1e-6)  # rows sum to 1 over 10 classes
    samples = sum(pixels["histogram"]["counts"]) // int(np.prod(shape))
    assert sum(probabilities["histogram"]["counts"]) == samples * 10
