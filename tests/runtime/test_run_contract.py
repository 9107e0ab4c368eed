"""Model.run follows the DESIGN.md contract: names in, names out, clear errors for bad input."""

from __future__ import annotations

import numpy as np
import pytest

import edgeops
from edgeops.errors import InputDtypeError, InputNameError, InputShapeError
from tests.conftest import needs_ort, needs_tflite

pytestmark = needs_ort


@pytest.fixture(scope="module")
def mlp(examples):
    return edgeops.load(examples / "digits_mlp.onnx", threads=1)


def test_outputs_are_keyed_by_the_models_output_names(mlp, digits):
    out = mlp.run({"pixels": digits["pixels"][:1]})
    assert list(out) == ["probabilities"]
    assert out["probabilities"].shape == (1, 10)
    assert np.isclose(out["probabilities"].sum(), 1.0, atol=1e-5)


def test_a_single_input_model_takes_a_bare_array(mlp, digits):
    x = digits["pixels"][:4]
    np.testing.assert_array_equal(mlp.run(x)["probabilities"], mlp.run({"pixels": x})["probabilities"])


def test_batch_and_dynamic_dims(mlp, digits):
    x = digits["pixels"]
    batched = mlp.run(x)["probabilities"]
    single = np.concatenate([mlp.run(x[i:i + 1])["probabilities"] for i in range(20)])
    assert batched.shape == (len(x), 10)
    np.testing.assert_allclose(batched[:20], single, atol=1e-6)
    accuracy = np.mean(batched.argmax(1) == digits["labels"])
    assert accuracy > 0.95


def test_specs_describe_the_model(mlp):
    (inp,), (out,) = mlp.inputs, mlp.outputs
    assert (inp.name, inp.shape, inp.dtype) == ("pixels", (None, 64), np.dtype("float32"))
    assert (out.name, out.shape[1:], out.dtype) == ("probabilities", (10,), np.dtype("float32"))
    assert inp.to_dict() == {"name": "pixels", "shape": [None, 64], "dtype": "float32"}


@pytest.mark.parametrize("feeds, error, words", [
    pytest.param({"pixel": np.zeros((1, 64), np.float32)}, InputNameError, ["'pixel'", "pixels [?, 64] float32"], id="unknown-name"),
    pytest.param({}, InputNameError, ["missing", "'pixels'"], id="missing-input"),
    pytest.param(np.zeros(64, np.float32), InputShapeError, ["'pixels'", "rank 2", "rank 1", "x[None]"], id="wrong-rank"),
    pytest.param(np.zeros((1, 63), np.float32), InputShapeError, ["'pixels'", "[?, 64]", "[1, 63]", "axis 1"], id="wrong-dim"),
    pytest.param(np.zeros((1, 64), np.float64), InputDtypeError, ["'pixels'", "float32", "float64"], id="lossy-float64"),
    pytest.param(np.zeros((1, 64), np.int64), InputDtypeError, ["'pixels'", "float32", "int64"], id="lossy-int64"),
    pytest.param([["a"] * 64], InputDtypeError, ["'pixels'"], id="strings"),
])
def test_bad_inputs_raise_an_error_naming_input_expected_and_given(mlp, feeds, error, words):
    before = mlp.stats.errors
    with pytest.raises(error) as info:
        mlp.run(feeds)
    assert isinstance(info.value, edgeops.EdgeOpsError)
    for w in words:
        assert w in str(info.value)
    assert mlp.stats.errors == before + 1


@pytest.mark.parametrize("value", [
    pytest.param(lambda x: x.astype(np.float16), id="float16-array"),
    pytest.param(lambda x: (x * 16).astype(np.uint8), id="uint8-array"),
    pytest.param(lambda x: x.tolist(), id="python-list"),
    pytest.param(lambda x: np.asfortranarray(x), id="fortran-order"),
])
def test_lossless_conversions_happen_silently(mlp, digits, value):
    x = digits["pixels"][:3]
    got = mlp.run(value(x))["probabilities"]
    want = mlp.run(np.asarray(value(x), dtype=np.float32))["probabilities"]
    np.testing.assert_allclose(got, want, atol=1e-6)


def test_multi_input_model_needs_a_dict(two_input_model):
    m = edgeops.load(two_input_model)
    a = np.ones((2, 3), np.float32)
    out = m.run({"a": a, "b": a * 3, "c": np.array([4, 5])})
    assert list(out) == ["y", "z", "w"]
    np.testing.assert_array_equal(out["y"], np.full((2, 3), 4, np.float32))
    np.testing.assert_array_equal(out["w"], [4, 5])
    with pytest.raises(InputNameError, match="3 inputs"):
        m.run(a)
    with pytest.raises(InputNameError, match="missing input 'c'"):
        m.run({"a": a, "b": a})
    with pytest.raises(InputDtypeError, match="'c'.*int64.*float"):
        m.run({"a": a, "b": a, "c": np.array([1.5, 2.0])})
    with pytest.raises(InputDtypeError, match="input .c. expects int64"):
        m.run({"a": a, "b": a, "c": [2**63, 1]})


def test_the_fast_path_does_not_skip_checks_after_a_good_call(mlp, digits):
    x = digits["pixels"][:1]
    mlp.run({"pixels": x})
    with pytest.raises(InputShapeError, match=r"input 'pixels' expects shape \[\?, 64\], got \[1, 65\]"):
        mlp.run({"pixels": np.zeros((1, 65), np.float32)})
    with pytest.raises(InputDtypeError, match="'pixels'.*float32.*float64"):
        mlp.run({"pixels": x.astype(np.float64)})
    with pytest.raises(InputNameError, match="'pixels2'"):
        mlp.run({"pixels2": x})


@needs_tflite
def test_onnx_and_tflite_give_the_same_answers_under_the_same_names(examples, digits):
    onnx_model = edgeops.load(examples / "digits_mlp.onnx")
    tfl = edgeops.load(examples / "digits_mlp.tflite")
    assert [s.name for s in tfl.inputs] == ["pixels"] and [s.name for s in tfl.outputs] == ["probabilities"]
    assert tfl.inputs[0].shape == (None, 64)
    for n in (1, 7, 1):  # dynamic batch: resize and come back
        x = digits["pixels"][:n]
        np.testing.assert_allclose(tfl.run(x)["probabilities"], onnx_model.run(x)["probabilities"], atol=1e-5)
    with pytest.raises(InputShapeError, match=r"input 'pixels' expects rank 2 \[\?, 64\], got rank 3 \[1, 8, 8\]"):
        tfl.run(np.zeros((1, 8, 8), np.float32))
