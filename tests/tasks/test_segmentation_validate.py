"""validate --task segmentation: mask IoU of probability maps and argmax class maps, and its gate."""

from __future__ import annotations

import numpy as np
import pytest

from edgeops.validate import Gates, Segmentation, tasks, validate

onnx = pytest.importorskip("onnx")


def _eroded(src, dst) -> None:
    """The segmenter with its foreground probability squared: thinner masks at threshold 0.5."""
    from onnx import helper

    m = onnx.load(str(src))
    for node in m.graph.node:
        node.output[:] = [o + "_raw" if o == "prob" else o for o in node.output]
        node.input[:] = [i + "_raw" if i == "prob" else i for i in node.input]
    m.graph.node.append(helper.make_node("Mul", ["prob_raw", "prob_raw"], ["prob"], name="square"))
    onnx.save(m, str(dst))


def _check(ref, cand, data, output, **gates):
    return validate(ref, cand, data, task="segmentation", task_options=Segmentation(output=output),
                    gates=Gates(**gates), latency=False, diagnose=False)


@pytest.mark.parametrize("output, kind", [("prob", "binary"), ("classes", "multiclass")])
def test_identical_candidate_passes(segmenter, task_data, output, kind):
    r = _check(segmenter, segmenter, task_data["test"], output, min_mask_iou=1.0)
    assert r.passed, r.failures
    assert r.task["kind"] == kind and r.task["mask_iou"] == 1.0 and r.task["pixel_agreement"] == 1.0


def test_thinner_masks_fail_the_iou_gate(segmenter, task_data, tmp_path):
    bad = tmp_path / "eroded.onnx"
    _eroded(segmenter, bad)
    r = _check(segmenter, bad, task_data["test"], "prob", min_mask_iou=0.95)
    assert r.task["mask_iou"] < 0.95 and r.task["min_sample_iou"] <= r.task["mask_iou"] + 0.2
    assert len(r.failures) == 1 and r.failures[0].startswith("mask IoU ")


def test_argmax_map_and_logits():
    ref = np.zeros((1, 3, 4, 4), np.float32)
    ref[0, 1, :2] = 5  # class 1 on the top half, class 0 elsewhere
    cand = ref.copy()
    cand[0, 1, 1] = 0  # one row of class 1 lost
    comp = tasks.comparison(Segmentation(), [("m", "m")])
    comp.update({"m": ref}, {"m": cand})
    s = comp.summary()
    # class 1: IoU 4/8; class 0: IoU 8/12; mean over the two
    assert s["kind"] == "multiclass" and s["mask_iou"] == pytest.approx((4 / 8 + 8 / 12) / 2)
    logits = np.where(np.arange(16).reshape(1, 1, 4, 4) < 8, 3.0, -3.0).astype(np.float32)
    comp = tasks.comparison(Segmentation(), [("m", "m")])
    comp.update({"m": logits}, {"m": logits * 0.1})  # same signs: the same masks after the sigmoid
    assert comp.summary()["logits"] and comp.summary()["mask_iou"] == 1.0


def test_nan_candidate_fails_the_iou_gate():
    ref = np.full((2, 1, 4, 4), 0.9, np.float32)
    cand = ref.copy()
    cand[0, 0, 0, 0] = np.nan
    comp = tasks.comparison(Segmentation(), [("m", "m")])
    comp.update({"m": ref}, {"m": cand})
    s = comp.summary()
    assert np.isnan(s["mask_iou"]) and s["nonfinite"] == 1
    assert "1 NaN/inf" in tasks.failures(Gates(min_mask_iou=0.5), s)[0]
