"""Regression: converting a model whose symbolic shape inference is incomplete (a scikit-learn
forest) left ``sym_shape_infer_temp.onnx`` and a
``<uuid>.data`` file in the user's current folder: onnxruntime saves its half-done model there
before it gives up."""

from __future__ import annotations

import os

import pytest

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")


def _forest(path) -> str:
    """A scikit-learn random forest on the digits through skl2onnx: one TreeEnsembleClassifier, which
    onnxruntime's symbolic shape inference cannot finish."""
    from sklearn.datasets import load_digits
    from sklearn.ensemble import RandomForestClassifier

    import edgeops

    x, y = load_digits(return_X_y=True)
    forest = RandomForestClassifier(n_estimators=3, max_depth=4, random_state=0).fit(x, y)
    edgeops.convert.from_sklearn(forest, str(path), n_features=64, quantize="none")
    return str(path)


def test_quantizing_convert_leaves_nothing_in_the_current_folder(tmp_path, monkeypatch):
    import edgeops

    pytest.importorskip("skl2onnx")
    src = _forest(tmp_path / "forest.onnx")
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    out = tmp_path / "out" / "forest_dyn.onnx"
    try:  # whether onnxruntime.quantization takes a forest or not, the user's folder stays as it was
        edgeops.convert(src, out, quantize="dynamic")
    except edgeops.EdgeOpsError as exc:
        assert not out.exists(), f"a failed convert left {out} ({exc})"
    assert sorted(os.listdir(cwd)) == []
    assert os.getcwd() == str(cwd)


def test_a_forest_keeps_float_by_default_and_an_asked_mode_says_why_not(tmp_path):
    """Regression: from_sklearn of a random forest failed with onnxruntime's 'Failed to find proper
    ai.onnx domain' and the advice to try --quantize dynamic, the mode it was already in."""
    pytest.importorskip("skl2onnx")
    import numpy as np
    from sklearn.datasets import load_digits

    import edgeops
    from edgeops.errors import UsageError

    src = _forest(tmp_path / "forest.onnx")
    report = edgeops.convert(src, tmp_path / "default.onnx")
    assert report.quantize == "none"
    assert any("kept float" in s and "TreeEnsembleClassifier" in s for s in report.steps), report.steps
    x = load_digits().data[:5].astype(np.float32)
    got = edgeops.load(tmp_path / "default.onnx").run({"input": x})
    assert set(got) and all(len(v) == 5 for v in got.values())
    with pytest.raises(UsageError, match=r"--quantize dynamic: the model has no op onnxruntime\.quantization "
                                         r"quantizes \(only ai\.onnx\.ml\.TreeEnsembleClassifier\); convert it "
                                         r"with --quantize none"):
        edgeops.convert(src, tmp_path / "asked.onnx", quantize="dynamic")
    assert not (tmp_path / "asked.onnx").exists()
