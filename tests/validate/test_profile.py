"""The reference data profile: its schema, its atomic write, and guardrails reading it back."""

from __future__ import annotations

import json

import numpy as np
import pytest

import edgeops
from edgeops.runtime.guardrails import Guardrails
from edgeops.validate import build_profile, write_profile


@pytest.fixture(scope="module")
def mlp_profile(examples):
    return build_profile(examples / "digits_mlp.onnx", examples / "digits_mlp_test.npz")


def test_profile_schema(mlp_profile, examples, digits):
    p = mlp_profile
    assert p["version"] == 1 and p["samples"] == 360
    assert p["model"] == edgeops.load(examples / "digits_mlp.onnx").sha256
    px = p["inputs"]["pixels"]
    assert px["shape"] == [None, 64]
    assert px["min"] == digits["pixels"].min() and px["max"] == digits["pixels"].max()
    assert px["mean"] == pytest.approx(digits["pixels"].mean(dtype=np.float64))
    assert px["std"] == pytest.approx(digits["pixels"].std(dtype=np.float64))
    for entry, size in ((px, 360 * 64), (p["outputs"]["probabilities"], 360 * 10)):
        h = entry["histogram"]
        assert len(h["edges"]) == 11 and len(h["counts"]) == 10 and sum(h["counts"]) == size
        assert h["edges"][0] == entry["min"] and h["edges"][-1] == entry["max"]
    assert p["outputs"]["probabilities"]["shape"] == [None, 10]
    assert 0 <= p["outputs"]["probabilities"]["min"] < p["outputs"]["probabilities"]["max"] <= 1


def test_profile_round_trips_into_guardrails(mlp_profile, examples, digits, tmp_path):
    path = tmp_path / "digits_mlp.profile.json"
    write_profile(mlp_profile, path)
    assert json.loads(path.read_text()) == json.loads(json.dumps(mlp_profile))
    g = Guardrails.from_profile(path, inputs="pass", outputs="pass")
    assert set(g.inputs) == {"pixels"} and set(g.outputs) == {"probabilities"}
    model = edgeops.load(examples / "digits_mlp.onnx")
    model.enable_guardrails(path, inputs="reject", outputs="reject")
    model.run(digits["pixels"])  # the data the profile was made from passes
    with pytest.raises(edgeops.GuardrailError, match="input 'pixels': .* outside the reference range"):
        model.run(digits["pixels"][:1] + 2.0)  # beyond the profiled range


def test_write_profile_is_atomic_and_replaces(mlp_profile, tmp_path):
    path = tmp_path / "p.json"
    path.write_text("old")
    write_profile(mlp_profile, path)
    assert json.loads(path.read_text())["version"] == 1
    assert [f.name for f in tmp_path.iterdir()] == ["p.json"]  # no temporary file left behind


def test_profile_bins_and_a_fixed_batch_model(examples):
    p = build_profile(examples / "digits_cnn.onnx", examples / "digits_cnn_test.npz", bins=4)
    assert p["inputs"]["image"]["shape"] == [None, 1, 8, 8]
    assert len(p["outputs"]["probabilities"]["histogram"]["counts"]) == 4


def test_outputs_too_big_to_keep_get_a_second_pass_with_the_same_result(mlp_profile, examples, monkeypatch):
    from edgeops.validate import profile

    monkeypatch.setattr(profile, "KEEP_BYTES", 0)  # the bound large models hit
    again = build_profile(examples / "digits_mlp.onnx", examples / "digits_mlp_test.npz")
    assert again == mlp_profile
