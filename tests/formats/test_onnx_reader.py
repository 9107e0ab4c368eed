"""read_onnx agrees with what onnx.load and onnxruntime report, for models built with onnx.helper."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

onnx = pytest.importorskip("onnx")
np = pytest.importorskip("numpy")

from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from edgeops.formats import onnx_external_files, read_onnx, read_summary  # noqa: E402


def onnx_ops(graph) -> Counter:
    """The op histogram by walking the graph with the onnx API, subgraphs included."""
    ops: Counter = Counter()
    for n in graph.node:
        ops[n.op_type if n.domain in ("", "ai.onnx") else f"{n.domain}:{n.op_type}"] += 1
        for a in n.attribute:
            for g in ([a.g] if a.HasField("g") else []) + list(a.graphs):
                ops.update(onnx_ops(g))
    return ops


def onnx_shape(value_info):
    if not value_info.type.HasField("tensor_type"):
        return None
    t = value_info.type.tensor_type
    if not t.HasField("shape"):
        return None
    return tuple(d.dim_value if d.HasField("dim_value") else None for d in t.shape.dim)


def ort_shape(shape):
    return tuple(d if isinstance(d, int) else None for d in shape)


def scan_model():
    """A Loop whose body holds a Scan whose body holds an Add: three levels of graphs."""
    add_body = helper.make_graph(
        [helper.make_node("Add", ["s_in", "e_in"], ["s_out"]), helper.make_node("Identity", ["s_out"], ["e_out"])],
        "scan_body",
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, [2]) for n in ("s_in", "e_in")],
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, [2]) for n in ("s_out", "e_out")])
    loop_body = helper.make_graph(
        [helper.make_node("Scan", ["init", "seq"], ["final", "scanned"], num_scan_inputs=1, body=add_body),
         helper.make_node("Identity", ["cond_in"], ["cond_out"])],
        "loop_body",
        [helper.make_tensor_value_info("i", TensorProto.INT64, []),
         helper.make_tensor_value_info("cond_in", TensorProto.BOOL, [])],
        [helper.make_tensor_value_info("cond_out", TensorProto.BOOL, []),
         helper.make_tensor_value_info("final", TensorProto.FLOAT, [2])])
    graph = helper.make_graph(
        [helper.make_node("Loop", ["trips", "cond"], ["out"], body=loop_body)],
        "loops",
        [helper.make_tensor_value_info("trips", TensorProto.INT64, []),
         helper.make_tensor_value_info("cond", TensorProto.BOOL, []),
         helper.make_tensor_value_info("init", TensorProto.FLOAT, [2]),
         helper.make_tensor_value_info("seq", TensorProto.FLOAT, ["T", 2])],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, ["iterations", 2])])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


def conv_model():
    """Conv -> Relu -> Conv -> Relu -> GlobalAveragePool with a dynamic batch and image size."""
    rng = np.random.default_rng(0)
    w1 = numpy_helper.from_array(rng.standard_normal((4, 3, 3, 3)).astype(np.float32), "w1")
    w2 = numpy_helper.from_array(rng.standard_normal((8, 4, 3, 3)).astype(np.float32), "w2")
    graph = helper.make_graph(
        [helper.make_node("Conv", ["image", "w1"], ["c1"], pads=[1, 1, 1, 1]),
         helper.make_node("Relu", ["c1"], ["r1"]),
         helper.make_node("Conv", ["r1", "w2"], ["c2"], pads=[1, 1, 1, 1]),
         helper.make_node("Relu", ["c2"], ["r2"]),
         helper.make_node("GlobalAveragePool", ["r2"], ["features"])],
        "convs",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["batch", 3, "height", "width"])],
        [helper.make_tensor_value_info("features", TensorProto.FLOAT, ["batch", 8, 1, 1])],
        [w1, w2])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], producer_name="convs", ir_version=8)


@pytest.fixture(params=["tiny-if", "conv-dynamic", "loop-scan"])
def model(request, make_models):
    return {"tiny-if": make_models.build_onnx, "conv-dynamic": conv_model, "loop-scan": scan_model}[request.param]()


def test_inputs_and_outputs_match_onnxruntime(model):
    ort = pytest.importorskip("onnxruntime")
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    summary = read_onnx(model.SerializeToString())
    dtype = {"tensor(float)": "float32", "tensor(bool)": "bool", "tensor(int64)": "int64"}
    for ours, theirs in [(summary.inputs, session.get_inputs()), (summary.outputs, session.get_outputs())]:
        assert [(t.name, t.shape, t.dtype) for t in ours] == [
            (t.name, ort_shape(t.shape), dtype[t.type]) for t in theirs]


def test_inputs_and_outputs_match_onnx_load(model):
    summary = read_onnx(model.SerializeToString())
    initializers = {i.name for i in model.graph.initializer}
    inputs = [v for v in model.graph.input if v.name not in initializers]
    assert [(t.name, t.shape) for t in summary.inputs] == [(v.name, onnx_shape(v)) for v in inputs]
    assert [(t.name, t.shape) for t in summary.outputs] == [(v.name, onnx_shape(v)) for v in model.graph.output]


def test_op_histogram_counts_nodes_in_subgraphs(model):
    assert read_onnx(model.SerializeToString()).ops == dict(onnx_ops(model.graph))


def test_versions_producer_and_metadata_match_onnx_load(model):
    summary = read_onnx(model.SerializeToString())
    assert summary.versions == {
        "ir_version": model.ir_version,
        "opset": {(o.domain or "ai.onnx"): o.version for o in model.opset_import},
    }
    assert summary.producer == (" ".join(p for p in (model.producer_name, model.producer_version) if p) or None)
    assert summary.metadata == {p.key: p.value for p in model.metadata_props}


@pytest.mark.parametrize(
    "elem_type",
    [v.number for v in TensorProto.DataType.DESCRIPTOR.values if v.number],
    ids=[v.name for v in TensorProto.DataType.DESCRIPTOR.values if v.number],
)
def test_dtype_names_match_onnx_helper(elem_type):
    want = np.dtype(helper.tensor_dtype_to_np_dtype(elem_type)).name  # every type of this onnx maps to numpy
    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", elem_type, [2])],
                              [helper.make_tensor_value_info("y", elem_type, [2])])
    summary = read_onnx(helper.make_model(graph).SerializeToString())
    assert summary.inputs[0].dtype == want


def test_custom_domain_ops_are_prefixed():
    graph = helper.make_graph(
        [helper.make_node("FusedMatMul", ["a", "b"], ["c"], domain="com.microsoft"),
         helper.make_node("Relu", ["c"], ["d"])], "g",
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, [2, 2]) for n in ("a", "b")],
        [helper.make_tensor_value_info("d", TensorProto.FLOAT, [2, 2])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17),
                                                    helper.make_opsetid("com.microsoft", 1)])
    summary = read_onnx(model.SerializeToString())
    assert summary.ops == {"com.microsoft:FusedMatMul": 1, "Relu": 1}
    assert summary.versions["opset"] == {"ai.onnx": 17, "com.microsoft": 1}


def test_external_data_model_reads_without_its_data_file(tmp_path):
    model = conv_model()
    path = tmp_path / "convs.onnx"
    onnx.save_model(model, path, save_as_external_data=True, all_tensors_to_one_file=True,
                    location="convs.weights", size_threshold=0)
    data = path.read_bytes()
    assert onnx_external_files(data) == ("convs.weights",)
    (tmp_path / "convs.weights").unlink()
    summary = read_summary(path)
    assert [t.name for t in summary.inputs] == ["image"]
    assert summary.ops == {"Conv": 2, "Relu": 2, "GlobalAveragePool": 1}
    assert summary.size_bytes == len(data) < 1000


def test_a_model_saved_by_onnx_reads_back_the_same(tmp_path, make_models):
    model = make_models.build_onnx()
    onnx.save_model(model, tmp_path / "m.onnx")
    assert read_summary(tmp_path / "m.onnx") == read_onnx(model.SerializeToString())


def test_committed_tiny_onnx_is_a_fresh_build(committed, make_models):
    fresh = make_models.build_onnx().SerializeToString()
    assert committed["tiny.onnx"] == fresh, "run: python tests/formats/data/make_models.py"


BACKEND_DATA = Path(onnx.__file__).parent / "backend" / "test" / "data"
BACKEND_MODELS = sorted(BACKEND_DATA.glob("**/*.onnx"))


@pytest.mark.parametrize("path", BACKEND_MODELS, ids=[str(p.relative_to(BACKEND_DATA)) for p in BACKEND_MODELS])
def test_onnx_backend_test_models_read_like_onnx_load(path):
    """Every model shipped in onnx's own backend test data: same inputs, outputs and ops."""
    data = path.read_bytes()
    model = onnx.load_from_string(data)
    summary = read_onnx(data)
    initializers = {i.name for i in model.graph.initializer} | {i.values.name for i in model.graph.sparse_initializer}
    assert [(t.name, t.shape) for t in summary.inputs] == [
        (v.name, onnx_shape(v)) for v in model.graph.input if v.name not in initializers]
    assert [(t.name, t.shape) for t in summary.outputs] == [(v.name, onnx_shape(v)) for v in model.graph.output]
    assert summary.ops == dict(onnx_ops(model.graph))
