"""validate --task detection: the candidate's boxes matched to the reference's, recall and precision gates."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from edgeops.errors import DataError, UsageError
from edgeops.validate import Detection, Gates, tasks, validate

onnx = pytest.importorskip("onnx")


def _shifted(src, dst, dx: float) -> None:
    """The detector with every box centre moved ``dx`` px right: same scores, misplaced boxes."""
    from onnx import helper, numpy_helper

    m = onnx.load(str(src))
    out = m.graph.output[0]
    offset = np.zeros((1, 6, 1), np.float32)
    offset[0, 0, 0] = dx
    m.graph.initializer.append(numpy_helper.from_array(offset, "shift"))
    for node in m.graph.node:
        node.output[:] = [o + "_raw" if o == out.name else o for o in node.output]
    m.graph.node.append(helper.make_node("Add", [out.name + "_raw", "shift"], [out.name], name="shift_boxes"))
    onnx.save(m, str(dst))


def _check(ref, cand, data, **gates):
    return validate(ref, cand, data, task="detection", gates=Gates(**gates), latency=False, diagnose=False)


def test_identical_candidate_passes(detector, task_data):
    r = _check(detector, detector, task_data["test"], min_detection_recall=1.0, min_detection_precision=1.0)
    t = r.task
    assert r.passed, r.failures
    assert t["layout"] == "yolo-transposed" and t["reference_detections"] > 20
    assert t["recall"] == t["precision"] == 1.0 and t["mean_matched_iou"] == pytest.approx(1.0)


def test_perturbed_boxes_fail_the_recall_gate(detector, task_data, tmp_path):
    bad = tmp_path / "shifted.onnx"
    _shifted(detector, bad, dx=6.0)
    r = _check(detector, bad, task_data["test"], min_detection_recall=0.9, min_cosine=0.9)
    assert r.outputs["boxes"]["cosine"] > 0.99  # cosine barely sees it
    assert r.task["recall"] < 0.5
    assert len(r.failures) == 1 and r.failures[0].startswith("detection recall ")
    assert "boxes matched" in r.failures[0]


def test_small_shift_within_match_iou_passes(detector, task_data, tmp_path):
    near = tmp_path / "near.onnx"
    _shifted(detector, near, dx=0.5)
    r = _check(detector, near, task_data["test"], min_detection_recall=0.95, min_detection_precision=0.95)
    assert r.passed, r.failures


def test_cli_json_and_html_report(detector, task_data, tmp_path):
    bad = tmp_path / "shifted.onnx"
    _shifted(detector, bad, dx=6.0)
    html = tmp_path / "report.html"
    res = subprocess.run([sys.executable, "-m", "edgeops", "validate", str(detector), str(bad), "--data",
                          str(task_data["test"]), "--task", "detection", "--score-threshold", "0.3",
                          "--min-detection-recall", "0.9", "--no-latency", "--json", "--report", str(html)],
                         capture_output=True, text=True)
    assert res.returncode == 1, res.stderr
    d = json.loads(res.stdout)
    assert d["task"]["task"] == "detection" and d["task"]["score_threshold"] == 0.3
    assert d["gates"] == {"min_detection_recall": 0.9} and not d["passed"]
    page = html.read_text()
    assert "Detection against the reference" in page and 'class="num bad"' in page


@pytest.mark.parametrize("gate", ["min_detection_recall", "min_detection_precision", "min_mask_iou"])
def test_task_gate_needs_its_task(detector, task_data, gate):
    with pytest.raises(UsageError, match="needs task"):
        validate(detector, detector, task_data["test"], gates=Gates(**{gate: 0.9}), latency=False)


def test_task_gates_fail_on_nan():
    metrics = {"recall": float("nan"), "precision": float("nan"), "matched": 0, "reference_detections": 0,
               "candidate_detections": 0, "match_iou": 0.5, "score_threshold": 0.25, "nonfinite": 0}
    lines = tasks.failures(Gates(min_detection_recall=0.0, min_detection_precision=0.0), metrics)
    assert len(lines) == 2 and "reference made no detections" in lines[0]
    seg = {"mask_iou": float("nan"), "min_sample_iou": 0.9, "nonfinite": 3}
    assert "3 NaN/inf" in tasks.failures(Gates(min_mask_iou=0.0), seg)[0]


# -- layouts ---------------------------------------------------------------------------------------------


def _rows() -> np.ndarray:
    """Two samples of a [N, boxes, 4 + 2] YOLO head: two boxes of class 0 and 1, the others below threshold
    (8 boxes, so that auto reads [N, 6, 8] as the transposed layout)."""
    a = np.zeros((2, 8, 6), np.float32)
    a[:, 0] = [20, 20, 10, 10, 0.9, 0.1]
    a[:, 1] = [40, 40, 12, 8, 0.2, 0.8]
    a[:, 2] = [10, 50, 5, 5, 0.1, 0.1]
    return a


@pytest.mark.parametrize("layout", ["yolo", "yolo-transposed", "auto", "boxes-scores"])
def test_layouts_read_the_same_boxes(layout):
    a = _rows()
    arrays = {"yolo": [a], "yolo-transposed": [a.transpose(0, 2, 1)], "auto": [a.transpose(0, 2, 1)],
              "boxes-scores": [np.concatenate([a[..., :2] - a[..., 2:4] / 2, a[..., :2] + a[..., 2:4] / 2], -1),
                               a[..., 4:]]}[layout]
    names = [f"o{i}" for i in range(len(arrays))]
    comp = tasks.comparison(Detection(layout=layout), [(n, n) for n in names])
    comp.update(dict(zip(names, arrays)), dict(zip(names, arrays)))
    s = comp.summary()
    assert s["layout"] == ("yolo-transposed" if layout == "auto" else layout)
    assert s["reference_detections"] == 4 and s["recall"] == 1.0


@pytest.mark.parametrize("shape, layout, match", [
    ((2, 84), "auto", "YOLO-style detection head is one output"),
    ((2, 10, 4), "yolo", "4 box values and at least one class score"),
    ((2, 10, 4, 1), "yolo", r"one output \[N, boxes, 4 \+ classes\]"),
], ids=["rank-2", "no-class-column", "rank-4"])
def test_unsupported_heads_are_refused(shape, layout, match):
    comp = tasks.comparison(Detection(layout=layout), [("out", "out")])
    a = np.zeros(shape, np.float32)
    with pytest.raises(DataError, match=match):
        comp.update({"out": a}, {"out": a})


def test_boxes_scores_needs_a_boxes_output():
    comp = tasks.comparison(Detection(layout="boxes-scores"), [("a", "a"), ("b", "b")])
    a, b = np.zeros((1, 10, 3), np.float32), np.zeros((1, 10, 2), np.float32)
    with pytest.raises(DataError, match=r"boxes output \[N, boxes, 4\]"):
        comp.update({"a": a, "b": b}, {"a": a, "b": b})


@pytest.mark.parametrize("options, match", [
    (Detection(layout="ssd"), "layout must be one of"),
    (Detection(score_threshold=1.5), "between 0 and 1"),
    (Detection(box_format="cxcy"), "xywh"),
], ids=["layout", "threshold", "box-format"])
def test_bad_options_are_usage_errors(options, match):
    with pytest.raises(UsageError, match=match):
        tasks.options_for("detection", options)
