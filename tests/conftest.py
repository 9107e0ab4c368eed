"""Shared fixtures: the committed example models and small ONNX graphs built on the fly."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples" / "models"


def has(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


HAS_ORT = has("onnxruntime")
HAS_TFLITE = has("ai_edge_litert") or (has("tflite_runtime") and int(np.__version__.split(".")[0]) < 2)

needs_ort = pytest.mark.skipif(not HAS_ORT, reason="onnxruntime not installed")
needs_tflite = pytest.mark.skipif(not HAS_TFLITE, reason="no usable TFLite runtime")


@pytest.fixture(scope="session")
def examples() -> Path:
    return EXAMPLES


@pytest.fixture(scope="session")
def digits() -> dict[str, np.ndarray]:
    return {
        "pixels": np.load(EXAMPLES / "digits_mlp_test.npz")["pixels"],
        "image": np.load(EXAMPLES / "digits_cnn_test.npz")["image"],
        "labels": np.load(EXAMPLES / "digits_test_labels.npy"),
    }


@pytest.fixture
def make_onnx(tmp_path):
    """Build a small ONNX model with onnx.helper: ``make_onnx(nodes, inputs, outputs, inits)``."""
    onnx = pytest.importorskip("onnx")
    from onnx import helper, numpy_helper

    def build(nodes, inputs, outputs, initializers=(), name="model", opset=17):
        graph = helper.make_graph(
            nodes, name,
            [helper.make_tensor_value_info(n, t, s) for n, t, s in inputs],
            [helper.make_tensor_value_info(n, t, s) for n, t, s in outputs],
            [numpy_helper.from_array(a, n) for n, a in initializers],
        )
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
        model.ir_version = 8
        path = tmp_path / f"{name}.onnx"
        onnx.save(model, str(path))
        return path

    return build


@pytest.fixture
def two_input_model(make_onnx):
    """y = a + b with a: float32 [N, 3], b: float32 [N, 3]; z = a * 2 (int64 c is passed through as w)."""
    from onnx import TensorProto as T
    from onnx import helper

    return make_onnx(
        [helper.make_node("Add", ["a", "b"], ["y"]),
         helper.make_node("Mul", ["a", "two"], ["z"]),
         helper.make_node("Identity", ["c"], ["w"])],
        [("a", T.FLOAT, ["N", 3]), ("b", T.FLOAT, ["N", 3]), ("c", T.INT64, [2])],
        [("y", T.FLOAT, ["N", 3]), ("z", T.FLOAT, ["N", 3]), ("w", T.INT64, [2])],
        [("two", np.array(2.0, np.float32))],
        name="two_inputs",
    )


def check_profile_stats(stats: dict, shape: list) -> None:
    """A reference-profile entry is self-consistent: ordered stats and a 10-bin histogram over [min, max]."""
    assert stats["shape"] == shape
    assert stats["min"] <= stats["mean"] <= stats["max"]
    assert 0.0 <= stats["std"] <= stats["max"] - stats["min"]
    edges, counts = stats["histogram"]["edges"], stats["histogram"]["counts"]
    assert len(edges) == 11 and len(counts) == 10
    assert edges == sorted(edges) and all(c >= 0 for c in counts)
    assert edges[0] == pytest.approx(stats["min"]) and edges[-1] == pytest.approx(stats["max"])
