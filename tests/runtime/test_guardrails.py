"""Guardrails: range control with a policy per check, violations always counted, off by default."""

from __future__ import annotations

import numpy as np
import pytest

import edgeops
from edgeops.errors import DataError, GuardrailError, UsageError
from edgeops.runtime import FunctionBackend, Guardrails, Model, TensorSpec

F32 = np.dtype("float32")
PROFILE = {
    "version": 1,
    "inputs": {"x": {"min": 0.0, "max": 1.0, "mean": 0.25}},
    "outputs": {"y": {"min": 0.0, "max": 2.0}},
}


def doubler() -> Model:
    """y = 2x through a Python backend: guardrail logic is independent of the engine."""
    spec_in = TensorSpec("x", (None, 3), F32)
    spec_out = TensorSpec("y", (None, 3), F32)
    return Model(FunctionBackend(lambda x: {"y": x * 2}, [spec_in], [spec_out]))


BAD = np.array([[0.5, 1.5, -1.0], [np.nan, 0.2, 0.3]], np.float32)


def test_off_by_default():
    m = doubler()
    assert m.guardrails is None
    np.testing.assert_array_equal(m.run(BAD)["y"], BAD * 2)


@pytest.mark.parametrize("policy, expected_x", [
    ("pass", BAD),
    ("clip", np.array([[0.5, 1.0, 0.0], [0.25, 0.2, 0.3]], np.float32)),
    ("replace", np.array([[0.5, 0.25, 0.25], [0.25, 0.2, 0.3]], np.float32)),
])
def test_input_policies(policy, expected_x):
    m = doubler()
    g = m.enable_guardrails(PROFILE, inputs=policy)
    y = m.run(BAD)["y"]
    np.testing.assert_array_equal(y, expected_x * 2)
    counts = g.snapshot()["inputs"]["x"]
    assert counts == {"below": 1, "above": 1, "nonfinite": 1, "values": 3, "rejected": 0}


def test_reject_raises_and_counts():
    m = doubler()
    g = m.enable_guardrails(PROFILE, inputs="reject")
    with pytest.raises(GuardrailError, match="input 'x': 3 value"):
        m.run(BAD)
    assert g.snapshot()["inputs"]["x"]["rejected"] == 1
    assert m.stats.errors == 1
    m.run(np.full((1, 3), 0.5, np.float32))  # in range: fine
    assert m.stats.count == 1


def test_outputs_are_checked_after_the_run():
    m = doubler()
    g = m.enable_guardrails(PROFILE, inputs="pass", outputs="clip")
    y = m.run(np.array([[0.9, 1.2, 0.1]], np.float32))["y"]  # 2.4 leaves the output range
    np.testing.assert_allclose(y, [[1.8, 2.0, 0.2]])
    assert g.snapshot()["outputs"]["y"]["above"] == 1
    assert g.snapshot()["total_values"] == 2  # one input above 1.0, one output above 2.0


def test_per_feature_ranges_and_per_tensor_policies():
    prof = {"inputs": {"x": {"min": [0, 0, -5], "max": [1, 1, 5]}}}
    m = doubler()
    g = m.enable_guardrails(prof, policies={"x": "clip"})
    y = m.run(np.array([[2.0, 0.5, -3.0]], np.float32))["y"]
    np.testing.assert_array_equal(y, [[2.0, 1.0, -6.0]])
    assert g.snapshot()["inputs"]["x"]["values"] == 1


def test_margin_widens_the_range():
    m = doubler()
    g = m.enable_guardrails(PROFILE, inputs="pass", margin=0.1)
    m.run(np.array([[1.05, -0.05, 0.5]], np.float32))
    assert g.snapshot()["inputs"]["x"]["values"] == 0


@pytest.mark.parametrize("profile, error, words", [
    pytest.param({"inputs": {"pixels": {"min": 0, "max": 1}}}, DataError, "does not have", id="other-models-profile"),
    pytest.param({"inputs": {"x": {"min": 2, "max": 1}}}, DataError, "min > max", id="min-above-max"),
    pytest.param({"inputs": {"x": {"min": "a", "max": 1}}}, DataError, "numbers", id="not-numbers"),
    pytest.param([1, 2], DataError, "JSON object", id="not-a-profile"),
])
def test_bad_profiles(profile, error, words):
    with pytest.raises(error, match=words):
        doubler().enable_guardrails(profile)


def test_unknown_policy():
    with pytest.raises(UsageError, match="one of pass, clip, replace, reject"):
        Guardrails.from_profile(PROFILE, inputs="ignore")


def test_profile_from_a_file(tmp_path, examples):
    bad = tmp_path / "broken.json"
    bad.write_text("{not json")
    with pytest.raises(DataError, match="not readable JSON: .*not valid JSON"):
        Guardrails.from_profile(bad)
    g = Guardrails.from_profile(examples / "digits_mlp.profile.json")
    assert "pixels" in g.inputs


def test_guardrails_can_be_given_to_load(examples, digits):
    pytest.importorskip("onnxruntime")
    m = edgeops.load(examples / "digits_mlp.onnx", guardrails=examples / "digits_mlp.profile.json")
    x = digits["pixels"][:2].copy()
    x[0, 0] = 9.0
    m.run(x)
    assert m.guardrails.snapshot()["inputs"]["pixels"]["above"] == 1
    m.disable_guardrails()
    m.run(x)
    assert m.guardrails is None


@pytest.mark.parametrize("content, words", [
    pytest.param(b"[" * 5000, "nests arrays or objects 5000 deep", id="nested-5000-deep"),
    pytest.param(b'{"inputs": {"x": {"min": NaN, "max": 1}}}', "holds NaN, which is not JSON", id="nan"),
    pytest.param(b'{"inputs": {}, "inputs": {"x": {"min": 0, "max": 1}}}', "repeats the key", id="duplicate-key"),
])
def test_a_hostile_profile_file_is_a_data_error(tmp_path, content, words):
    """Regression: ``[`` * 5000 as a .profile.json was a raw RecursionError for guardrails and load."""
    bad = tmp_path / "m.profile.json"
    bad.write_bytes(content)
    with pytest.raises(DataError, match=f"reference profile {bad} is not readable JSON: .*{words}"):
        Guardrails.from_profile(bad)
    with pytest.raises(DataError, match=words):
        doubler().enable_guardrails(bad)


def test_load_with_a_profile_nested_5000_deep_is_a_data_error(tmp_path, examples):
    pytest.importorskip("onnxruntime")
    bad = tmp_path / "deep.profile.json"
    bad.write_bytes(b"[" * 5000)
    with pytest.raises(DataError, match="5000 deep"):
        edgeops.load(examples / "digits_mlp.onnx", guardrails=bad)
