"""The report: JSON-ready, and an HTML page that holds the numbers a person checks."""

from __future__ import annotations

import base64
import importlib.util
import json
import re
from html import escape

import pytest

from edgeops.validate import Gates, validate


@pytest.fixture(scope="module")
def failed_report(cnn_paths, cnn_broken):
    return validate(cnn_paths["model"], cnn_broken, cnn_paths["data"], labels=cnn_paths["labels"],
                    gates=Gates(max_accuracy_drop=1.0, min_agreement=0.97, min_cosine=0.99), latency=False)


def test_to_dict_is_plain_json(failed_report):
    d = failed_report.to_dict()
    assert json.loads(json.dumps(d, allow_nan=False)) == d
    assert set(d) >= {"reference", "candidate", "samples", "outputs", "accuracy", "latency", "gates", "passed",
                      "failures", "divergence"}
    assert d["passed"] is False and d["latency"] is None
    assert d["gates"] == {"max_accuracy_drop": 1.0, "min_agreement": 0.97, "min_cosine": 0.99}
    assert set(d["outputs"]["probabilities"]) >= {"max_abs_error", "mean_abs_error", "max_rel_error", "cosine",
                                                  "top1_agreement"}
    assert set(d["accuracy"]) >= {"task", "metric", "reference", "candidate", "drop_points", "ci95", "method"}
    assert {"tensor", "op_type", "sqnr_db"} <= set(d["divergence"][0])


def test_html_report_holds_the_numbers(failed_report, tmp_path):
    path = tmp_path / "report.html"
    failed_report.write_html(path)
    html = path.read_text(encoding="utf-8")
    d = failed_report.to_dict()
    m, acc = d["outputs"]["probabilities"], d["accuracy"]
    assert "FAIL" in html and "digits_cnn_broken.onnx" in html
    assert f"{m['cosine']:.6f}" in html and f"{m['top1_agreement']:.4f}" in html
    assert f"{acc['reference'] * 100:.2f} %" in html and f"{acc['candidate'] * 100:.2f} %" in html
    assert f"{acc['drop_points']:.2f}" in html and f"{acc['ci95'][0]:.2f} .. {acc['ci95'][1]:.2f}" in html
    for failure in d["failures"]:
        assert escape(failure) in html
    assert "<code>conv2</code>" in html and "--exclude-nodes conv2" in html
    assert "<style>" in html and not re.search(r'(src|href)="https?://', html)  # self-contained
    if importlib.util.find_spec("matplotlib"):
        png = re.search(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', html)
        assert png and base64.b64decode(png.group(1)).startswith(b"\x89PNG")


def test_a_model_validated_against_itself_gets_a_report_with_its_plot(cnn_paths, tmp_path):
    """Regression: identical models give every sample a cosine of 1; the histogram then had no range and
    matplotlib's 'Too many bins for data range' ended `validate X X --report` in a traceback."""
    pytest.importorskip("matplotlib")
    report = validate(cnn_paths["model"], cnn_paths["model"], cnn_paths["data"], latency=False)
    path = tmp_path / "same.html"
    report.write_html(path)
    html = path.read_text(encoding="utf-8")
    assert report.passed and 'src="data:image/png;base64,' in html
