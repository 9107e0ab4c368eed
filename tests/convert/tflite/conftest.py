"""Shared helpers for the TFLite exporter tests: build a one-node ONNX model, export it, and
compare LiteRT with onnxruntime on the same inputs."""

from __future__ import annotations

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
pytest.importorskip("ai_edge_litert")

from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from edgeops.convert.tflite import export  # noqa: E402


def graph_model(nodes, inputs, outputs, initializers=None, opset=17):
    """``inputs``/``outputs``: {name: shape}; ``initializers``: {name: array}. Float32 I/O."""
    g = helper.make_graph(
        nodes, "t",
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, s) for n, s in inputs.items()],
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, s) for n, s in outputs.items()],
        [numpy_helper.from_array(np.asarray(v), k) for k, v in (initializers or {}).items()])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])


def node_model(op, inputs, outputs, initializers=None, opset=17, **attrs):
    """One node ``op`` reading ``inputs`` then ``initializers`` (in that order) and writing ``outputs``
    (shapes may be None: inferred)."""
    names = list(inputs) + list(initializers or {})
    node = helper.make_node(op, names, list(outputs), name=f"{op.lower()}0", **attrs)
    m = graph_model([node], inputs, {k: v for k, v in outputs.items()}, initializers, opset)
    return onnx.shape_inference.infer_shapes(m)


def run_onnx(model, feeds):
    """onnxruntime's answer; onnx's reference evaluator where onnxruntime has no kernel (Max of int8
    before 1.24) or is known to be wrong (AveragePool with count_include_pad=1 and uneven pads before 1.24)."""
    import onnxruntime as ort

    from edgeops.convert.graph import fit_ir_version

    copy = onnx.ModelProto()
    copy.CopyFrom(model)  # onnx >= 1.19 stamps IR 14, which older onnxruntime refuses
    if _old_ort_averages_pads_wrongly(copy, ort.__version__):
        return _reference(copy, feeds)
    try:
        sess = ort.InferenceSession(fit_ir_version(copy).SerializeToString(), providers=["CPUExecutionProvider"])
    except Exception as exc:  # noqa: BLE001
        if "NOT_IMPLEMENTED" not in str(exc):
            raise
        return _reference(copy, feeds)
    return dict(zip([o.name for o in sess.get_outputs()], sess.run(None, feeds)))


def _reference(model, feeds):
    from onnx.reference import ReferenceEvaluator

    return dict(zip([o.name for o in model.graph.output], ReferenceEvaluator(model).run(None, feeds)))


def _old_ort_averages_pads_wrongly(model, version):
    if tuple(int(p) for p in version.split(".")[:2]) >= (1, 24):
        return False
    return any(n.op_type == "AveragePool" and any(a.name == "count_include_pad" and a.i for a in n.attribute)
               for n in model.graph.node)


def run_tflite(data, feeds):
    from ai_edge_litert.interpreter import Interpreter

    runner = Interpreter(model_content=data).get_signature_runner()
    return runner(**{k: np.ascontiguousarray(v) for k, v in feeds.items()})


def assert_parity(model, feeds, rtol=1e-4, atol=1e-5, **export_kwargs):
    """Export ``model``, run both, and check every output within ``rtol`` of onnxruntime's; returns the export."""
    exported = export(model, **export_kwargs)
    want = run_onnx(model, feeds)
    got = run_tflite(exported.data, feeds)
    assert set(got) == set(want), (set(got), set(want))
    for name, w in want.items():
        g = got[name]
        assert g.shape == w.shape, f"{name}: {g.shape} != {w.shape}"
        np.testing.assert_allclose(g, w, rtol=rtol, atol=atol, err_msg=name)
    return exported


@pytest.fixture
def rng():
    return np.random.default_rng(0)
