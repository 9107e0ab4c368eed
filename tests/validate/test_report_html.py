"""The HTML report shows names, never runs them: every model, input, output and path is escaped by the template."""

from __future__ import annotations

import re

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
pytest.importorskip("jinja2")

from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from edgeops.validate import Gates, validate  # noqa: E402

SCRIPT = "<script>alert(1)</script>"
IMG = '<img src=x onerror="alert(2)">'


def _model(path, scale):
    """y = relu(x * scale) + 0, with an input, an output and every node named to hurt an unescaped page."""
    nodes = [helper.make_node("Mul", [IMG, "scale"], ["mid</td>"], name=f"mul{SCRIPT}"),
             helper.make_node("Relu", ["mid</td>"], [SCRIPT], name="relu<u>")]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info(IMG, TensorProto.FLOAT, [None, 8])],
                              [helper.make_tensor_value_info(SCRIPT, TensorProto.FLOAT, [None, 8])],
                              [numpy_helper.from_array(np.full(8, scale, np.float32), "scale")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def test_hostile_names_come_out_escaped(tmp_path):
    folder = tmp_path / "<script>dir"
    folder.mkdir()
    reference = _model(folder / "ref<script>.onnx", 1.0)
    candidate = _model(folder / "cand<script>.onnx", -1.0)
    data = {IMG: np.random.default_rng(0).normal(size=(16, 8)).astype(np.float32)}
    report = validate(reference, candidate, data, gates=Gates(min_cosine=0.99), latency=False)
    assert not report.passed and any(SCRIPT in f for f in report.failures)  # the name is in the failure line
    path = tmp_path / "report.html"
    report.write_html(path)
    page = path.read_text(encoding="utf-8")

    assert "<script" not in page and "<img src=x" not in page and "mid</td>" not in page and "<u>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page  # shown as text, in the outputs table and the failures
    assert "cand&lt;script&gt;.onnx" in page and "&lt;script&gt;dir" in page
    assert "Where the candidate diverges" in page and "<code>mid&lt;/td&gt;</code>" in page
    # the page's own markup is intact: as many cells opened as closed, one table per section
    assert page.count("<td") == page.count("</td>") and page.count("<table>") == page.count("</table>") >= 2
    assert re.search(r'<span class="verdict fail">FAIL</span>', page)


def test_without_jinja2_the_report_says_how_to_install(tmp_path, monkeypatch):
    import sys

    from edgeops.errors import BackendUnavailableError
    from edgeops.validate import html

    reference = _model(tmp_path / "m.onnx", 1.0)
    report = validate(reference, reference, {IMG: np.ones((2, 8), np.float32)}, latency=False)
    html._template.cache_clear()
    monkeypatch.setitem(sys.modules, "jinja2", None)
    try:
        with pytest.raises(BackendUnavailableError, match=r"pip install 'edgeops\[convert\]'"):
            report.write_html(tmp_path / "r.html")
    finally:
        html._template.cache_clear()
    assert not (tmp_path / "r.html").exists()
