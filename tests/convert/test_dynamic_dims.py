"""Dynamic dims written as ``dim_value: -1`` (issue 12, "Real models"): PaddlePaddle's ONNX exporter
marks a dynamic dim that way instead of with a ``dim_param``. Every command reads such a dim as
dynamic, like onnxruntime does: ``--input-shape`` fixes it (it used to say "dim -1 is fixed in the
model, cannot be 1"), a static target fixes a ``-1`` batch to 1, and ``TensorSpec.shape`` shows ``None``.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

from click.testing import CliRunner  # noqa: E402
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

import edgeops  # noqa: E402
from edgeops.cli import cli  # noqa: E402
from edgeops.convert.graph import clear_negative_dims, dim_size, fix_input_shapes  # noqa: E402
from edgeops.errors import UsageError  # noqa: E402
from edgeops.formats import read_summary  # noqa: E402

SHAPE = (1, 3, 48, 192)  # a text-detector input, as in the issue
GIVEN = "x:" + ",".join(map(str, SHAPE))


def paddle_like(path, dims=(-1, 3, -1, -1)) -> str:
    """A small text-detector-like model as PaddlePaddle exports it: opset 11, ``-1`` for every dynamic
    dim (input and output), Conv/BatchNorm/Relu, a nearest Resize by scales and a Sigmoid map."""
    rng = np.random.default_rng(0)
    inits: list = []

    def const(name, array):
        inits.append(numpy_helper.from_array(np.asarray(array, np.float32), name))
        return name

    nodes = [
        helper.make_node("Conv", ["x", const("w0", rng.standard_normal((8, 3, 3, 3)) * 0.3),
                                  const("b0", rng.normal(0, 0.1, 8))], ["c0"], pads=[1] * 4, strides=[2, 2]),
        helper.make_node("BatchNormalization", ["c0", const("g", rng.uniform(0.5, 1.5, 8)),
                                                const("be", rng.normal(0, 0.2, 8)), const("m", rng.normal(0, 0.2, 8)),
                                                const("v", rng.uniform(0.5, 2, 8))], ["n0"]),
        helper.make_node("Relu", ["n0"], ["r0"]),
        helper.make_node("Conv", ["r0", const("w1", rng.standard_normal((8, 8, 3, 3)) * 0.3)], ["c1"], pads=[1] * 4),
        helper.make_node("Relu", ["c1"], ["r1"]),
        helper.make_node("Resize", ["r1", const("roi", []), const("scales", [1, 1, 2, 2])], ["up"], mode="nearest"),
        helper.make_node("Conv", ["up", const("w2", rng.standard_normal((1, 8, 1, 1)))], ["c2"]),
        helper.make_node("Sigmoid", ["c2"], ["maps"]),
    ]
    out_dims = [dims[0], 1, -1 if dims[2] == -1 else dims[2], -1 if dims[3] == -1 else dims[3]]
    graph = helper.make_graph(nodes, "det", [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(dims))],
                              [helper.make_tensor_value_info("maps", TensorProto.FLOAT, out_dims)], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 11)], producer_name="PaddlePaddle")
    model.ir_version = 6
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return str(path)


@pytest.fixture
def det(tmp_path):
    return paddle_like(tmp_path / "det.onnx")


@pytest.fixture
def calib(tmp_path):
    path = tmp_path / "calib.npz"
    np.savez(path, x=np.random.default_rng(1).standard_normal((8, *SHAPE[1:])).astype(np.float32))
    return str(path)


def run(*args):
    result = CliRunner().invoke(cli, [str(a) for a in args])
    return result


def close_to_source(src: str, out: str, x: np.ndarray, cosine: float) -> None:
    want = edgeops.load(src).run({"x": x})["maps"]
    got = edgeops.load(out).run({"x": x})["maps"]
    assert got.shape == want.shape == (1, 1, 48, 192)
    assert float(np.dot(want.ravel(), got.ravel()) / np.linalg.norm(want) / np.linalg.norm(got)) >= cosine


@pytest.mark.parametrize("dim, size", [(-1, None), (-7, None), (0, 0), (5, 5)], ids=["minus-one", "negative", "zero", "value"])
def test_dim_size_reads_negative_dim_values_as_dynamic(dim, size):
    """0 stays a size (an empty axis), as onnx and onnxruntime read it."""
    d = onnx.TensorShapeProto.Dimension(dim_value=dim)
    assert dim_size(d) == size
    assert dim_size(onnx.TensorShapeProto.Dimension(dim_param="batch")) is None
    assert dim_size(onnx.TensorShapeProto.Dimension()) is None


def test_runtime_info_and_reader_show_minus_one_as_dynamic(det):
    model = edgeops.load(det)
    assert model.inputs[0].shape == (None, 3, None, None)
    assert model.outputs[0].shape == (None, 1, None, None)
    assert read_summary(det).inputs[0].shape == (None, 3, None, None)
    info = json.loads(run("info", det, "--json").output)
    assert info["inputs"][0]["shape"] == [None, 3, None, None]


CASES = {  # output, extra options, worst cosine with the float source on one sample
    "onnx-int8": ("m.onnx", ["--quantize", "int8"], 0.999),
    "tflite-float": ("m.tflite", ["--quantize", "none"], 0.99999),
    "tflite-int8": ("m.tflite", ["--quantize", "int8"], 0.999),
}


@pytest.mark.parametrize("case", list(CASES))
def test_input_shape_fixes_minus_one_dims(tmp_path, det, calib, case):
    """Regression: ``--input-shape x:1,3,48,192`` said "dim -1 is fixed in the model, cannot be 1"."""
    name, options, cosine = CASES[case]
    out = str(tmp_path / name)
    if "int8" in options:
        options = options + ["--calibration", calib]
    result = run("convert", det, "-o", out, "--input-shape", GIVEN, *options)
    assert result.exit_code == 0, result.output
    assert "x fixed to [1, 3, 48, 192]" in result.output
    assert edgeops.load(out).inputs[0].shape == SHAPE
    x = np.random.default_rng(2).standard_normal(SHAPE).astype(np.float32)
    close_to_source(det, out, x, cosine)
    checked = run("validate", det, out, "--data", calib, "--no-latency", "--min-cosine", "0.99", "--json")
    assert checked.exit_code == 0, checked.output
    benched = run("bench", out, "--runs", "3", "--warmup", "1", "--min-duration", "0", "--json")
    assert benched.exit_code == 0, benched.output


def test_onnx_convert_without_input_shape_keeps_the_dims_dynamic(tmp_path, det, calib):
    """The ONNX path quantizes the model as it is; the result still takes any height and width."""
    out = str(tmp_path / "m.onnx")
    result = run("convert", det, "-o", out, "--quantize", "int8", "--calibration", calib)
    assert result.exit_code == 0, result.output
    model = edgeops.load(out)
    assert model.inputs[0].shape == (None, 3, None, None)
    for shape in [(1, 3, 32, 64), (2, 3, 48, 192)]:
        y = model.run({"x": np.zeros(shape, np.float32)})["maps"]
        assert y.shape == (shape[0], 1, *shape[2:])


def test_bench_takes_input_shape_for_minus_one_dims(det):
    refused = run("bench", det, "--runs", "3", "--warmup", "1", "--min-duration", "0")
    assert refused.exit_code == 2 and "--input-shape" in refused.output
    result = run("bench", det, "--input-shape", GIVEN, "--runs", "3", "--warmup", "1", "--min-duration", "0", "--json")
    assert result.exit_code == 0, result.output


def test_static_target_fixes_a_minus_one_batch_to_1(tmp_path):
    """A model whose only dynamic dim is a ``-1`` batch converts to TFLite without ``--input-shape``."""
    src = paddle_like(tmp_path / "det.onnx", dims=(-1, *SHAPE[1:]))
    out = str(tmp_path / "m.tflite")
    result = run("convert", src, "-o", out)
    assert result.exit_code == 0, result.output
    assert "x batch fixed to 1 (static target)" in result.output
    assert edgeops.load(out).inputs[0].shape == SHAPE


def test_static_target_asks_for_the_other_minus_one_dims(tmp_path, det):
    result = run("convert", det, "-o", str(tmp_path / "m.tflite"))
    assert result.exit_code == 2
    assert "input x has dynamic dim 2; give --input-shape x:" in result.output


def test_a_real_fixed_dim_is_still_checked(det):
    model = onnx.load(det)
    with pytest.raises(UsageError, match="fixed"):
        fix_input_shapes(model, {"x": (1, 4, 48, 192)}, static=False)


def test_fixing_clears_minus_one_from_outputs_so_shapes_are_inferred(det):
    model = onnx.load(det)
    model, notes = fix_input_shapes(model, {"x": SHAPE}, static=True)
    assert notes == ["x fixed to [1, 3, 48, 192]"]
    assert clear_negative_dims(model) == 0
    inferred = onnx.shape_inference.infer_shapes(model)
    assert [dim_size(d) for d in inferred.graph.output[0].type.tensor_type.shape.dim] == [1, 1, 48, 192]
