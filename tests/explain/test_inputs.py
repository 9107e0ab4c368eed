"""Explain meets real models and data as they come: several inputs, regression outputs, a TFLite model with
its batch fixed at 1, preprocessing undone on pictures, feature names from a profile, and a light import."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from click.testing import CliRunner

from edgeops.cli import cli
from edgeops.explain import compare, explain
from tests.conftest import needs_tflite


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


def test_a_multi_input_model_ranks_its_inputs_by_name(make_onnx):
    from onnx import TensorProto as T
    from onnx import helper

    model = make_onnx([helper.make_node("Mul", ["a", "two"], ["z"]), helper.make_node("Identity", ["b"], ["w"])],
                      [("a", T.FLOAT, ["N", 3]), ("b", T.FLOAT, ["N", 3])],
                      [("z", T.FLOAT, ["N", 3]), ("w", T.FLOAT, ["N", 3])], [("two", np.array(2.0, np.float32))],
                      name="two_inputs")
    rng = np.random.default_rng(0)
    data = {"a": rng.random((50, 3)).astype(np.float32), "b": rng.random((50, 3)).astype(np.float32)}
    e = explain(model, data, method="permutation", output="z")  # z = 2a: b does not matter
    imp = e.importances()

    assert [r["feature"] for r in imp] == ["a", "b"]
    assert imp[0]["mean"] > 0.3 and imp[1]["mean"] == 0
    assert e.to_dict()["metric"] == "agreement with the unpermuted output"  # several values: read as class scores


def test_a_regression_output_is_scored_by_r2_on_its_labels(make_onnx, table):
    from onnx import TensorProto as T
    from onnx import helper

    w = np.zeros((6, 1), np.float32)
    w[3, 0] = 3.0
    model = make_onnx([helper.make_node("MatMul", ["x", "w"], ["y"])], [("x", T.FLOAT, ["N", 6])],
                      [("y", T.FLOAT, ["N", 1])], [("w", w)], name="regression")
    x, _ = table
    e = explain(model, x, labels=x[:, 3] * 3.0, method="permutation")

    assert e.to_dict()["metric"] == "R2" and e.to_dict()["score"] == pytest.approx(1.0)
    assert e.importances()[0]["feature"] == 3 and e.importances()[0]["mean"] > 1.0  # shuffled: R2 falls below 0


@needs_tflite
def test_a_tflite_model_with_a_batch_of_one_runs_once_per_row(examples):
    c = compare(examples / "digits_cnn.onnx", examples / "digits_cnn_int8.tflite", examples / "digits_cnn_test.npz",
                method="occlusion", samples=3)
    assert c.candidate.model_calls == c.candidate.rows == 3 * (1 + 49)
    assert c.reference.model_calls < c.candidate.model_calls
    assert 0.5 < c.rank_correlation <= 1


def test_pictures_show_images_with_their_preprocessing_undone(quadrant):
    from edgeops.runtime.preprocess import Preprocess

    model, images = quadrant
    pre = Preprocess(scale=1 / 255, mean=(0.5,), std=(0.25,))
    e = explain(model, images, method="occlusion", samples=2, preprocess=pre)
    x = np.load(images)["x"][:2]
    raw = (x * 0.25 + 0.5) * 255  # back through ((raw * scale) - mean) / std

    assert e.images.shape == (2, 8, 8, 1)
    assert np.allclose(e.images[..., 0], raw[:, 0], atol=1e-3)


def test_feature_names_come_from_the_profile(feature3, data_files, tmp_path):
    x, y = data_files
    profile = tmp_path / "p.profile.json"
    profile.write_text(json.dumps({"version": 1, "inputs": {"x": {"feature_names": list("abcdef")}}}))
    d = json.loads(run("explain", feature3, "--data", x, "--labels", y, "--profile", profile, "--json").output)
    assert d["importances"][0]["feature"] == "d"


def test_validate_explain_adds_the_comparison_without_a_gate(duplicate_pair):
    ref, cand, x, y = duplicate_pair
    r = run("validate", ref, cand, "--data", x, "--no-latency", "--explain", "permutation", "--json")
    d = json.loads(r.output)
    assert r.exit_code == 0 and d["passed"]
    assert d["explanation"]["method"] == "permutation" and d["explanation"]["agreement"] < 0.8


def test_surrogate_sample_out_of_range_is_bad_usage(feature3, data_files):
    r = run("explain", feature3, "--data", data_files[0], "--method", "surrogate", "--sample", "999")
    assert r.exit_code == 2 and "sample 999 is not among the 200 samples" in r.output


def test_import_edgeops_does_not_load_explain_and_explain_loads_nothing_heavy():
    code = ("import sys, json, edgeops\nfirst = 'edgeops.explain' in sys.modules\nimport edgeops.explain\n"
            "print(json.dumps([first, sorted(m for m in sys.modules if m.split('.')[0] in "
            "('shap', 'sklearn', 'matplotlib', 'onnxruntime', 'onnx', 'rich'))]))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert json.loads(out) == [False, []]


def test_a_bundle_explains_like_its_model_and_its_preprocessing_is_undone(quadrant, tmp_path):
    from edgeops.bundle import create

    model, images = quadrant
    bundle = tmp_path / "quadrant.eob"
    create(model, bundle, name="quadrant", version="1.0", preprocessing={"scale": 0.5, "mean": [0.0], "std": [1.0]})
    from_bundle = explain(bundle, images, method="occlusion", samples=3)
    plain = explain(model, images, method="occlusion", samples=3)

    assert from_bundle.importances() == plain.importances()
    assert np.allclose(from_bundle.images, plain.images * 2)  # raw = x / scale
