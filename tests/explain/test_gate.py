"""The explanation-agreement gate: a candidate that answers the same but looks elsewhere (an input zeroed,
its duplicate read instead) passes the accuracy gate and fails this one, in explain, validate and convert."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from click.testing import CliRunner

from edgeops.cli import cli
from edgeops.explain import agreement, compare


def test_a_candidate_with_an_input_zeroed_moves_its_explanation(duplicate_pair):
    ref, cand, x, y = duplicate_pair
    c = compare(ref, cand, x, labels=y, method="permutation", minimum=0.8)
    imp = {r["feature"]: r["mean"] for r in c.candidate.importances()}

    assert imp[0] == 0.0 and imp[5] > 0  # the candidate no longer reads input 0, only its copy
    assert c.agreement < 0.8
    assert not c.passed and "explanation agreement" in c.failures()[0]


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


def test_explain_gate_exit_codes(duplicate_pair):
    ref, cand, x, y = duplicate_pair
    caught = run("explain", ref, cand, "--data", x, "--labels", y, "--min-explanation-agreement", "0.8", "--json")
    same = run("explain", ref, ref, "--data", x, "--labels", y, "--min-explanation-agreement", "0.8", "--json")

    assert caught.exit_code == 1
    assert "explanation agreement" in caught.output
    assert same.exit_code == 0
    d = json.loads(same.output)
    assert d["agreement"] == 1.0 and d["gate"] == {"min_explanation_agreement": 0.8, "passed": True}


def test_validate_passes_the_accuracy_gate_and_fails_the_explanation_gate(duplicate_pair):
    ref, cand, x, y = duplicate_pair
    r = run("validate", ref, cand, "--data", x, "--labels", y, "--no-latency", "--max-accuracy-drop", "0",
            "--min-explanation-agreement", "0.8", "--json")
    d = json.loads(r.stdout if hasattr(r, "stdout") else r.output)

    assert r.exit_code == 1
    assert d["accuracy"]["drop_points"] == 0
    assert len(d["failures"]) == 1 and d["failures"][0].startswith("explanation agreement")
    assert d["explanation"]["agreement"] < 0.8


def test_convert_writes_nothing_when_the_explanation_gate_fails(duplicate_pair, tmp_path):
    pytest.importorskip("onnx")
    ref, cand, x, y = duplicate_pair
    out = tmp_path / "out.onnx"
    r = run("convert", cand, "-o", out, "--quantize", "none", "--validate", x, "--labels", y,
            "--min-explanation-agreement", "0.8")
    # the candidate, converted, still agrees with itself: the gate passes and the model is written
    assert r.exit_code == 0, r.output
    assert out.is_file()


def test_a_non_finite_agreement_fails_the_gate():
    assert math.isnan(agreement.spearman(np.array([1.0, 2.0, 3.0]), np.zeros(3)))
    from edgeops._gates import at_least

    assert not at_least(float("nan"), 0.0)


def test_spearman_handles_ties_and_order():
    assert agreement.spearman(np.array([1, 2, 3, 4.0]), np.array([10, 20, 30, 40.0])) == pytest.approx(1.0)
    assert agreement.spearman(np.array([1, 2, 3, 4.0]), np.array([4, 3, 2, 1.0])) == pytest.approx(-1.0)
    assert agreement.ranks(np.array([5.0, 1.0, 5.0])).tolist() == [2.5, 1.0, 2.5]
    assert agreement.spearman(np.zeros(3), np.zeros(3)) == 1.0


def test_topk_iou_and_cosine():
    a = np.zeros((1, 4, 4))
    a[0, 0, 0] = 1.0
    b = np.zeros((1, 4, 4))
    b[0, 3, 3] = 1.0
    assert agreement.topk_iou(a, a, 0.0625).tolist() == [1.0]
    assert agreement.topk_iou(a, b, 0.0625).tolist() == [0.0]
    assert agreement.cosine(a, b).tolist() == [0.0]
    blank = np.zeros((1, 4, 4))
    assert agreement.topk_iou(a, blank, 0.25).tolist() == [0.0]  # a blank map shares no top pixel
    assert agreement.topk_iou(blank, blank, 0.25).tolist() == [1.0]


def test_convert_gate_removes_the_output_it_fails(duplicate_pair, tmp_path):
    """What ``edgeops convert --min-explanation-agreement`` does after writing a model that looks elsewhere."""
    import shutil

    from edgeops.cli.explain import convert_gate
    from edgeops.errors import CheckFailed

    ref, cand, x, y = duplicate_pair
    out = tmp_path / "converted.onnx"
    shutil.copy(cand, out)
    profile = tmp_path / "converted.profile.json"
    profile.write_text("{}")
    with pytest.raises(CheckFailed, match="explanation gate, nothing written"):
        convert_gate(str(ref), str(out), str(x), str(y), 0.8, False, {"profile": str(profile)})
    assert not out.exists() and not profile.exists()

    shutil.copy(cand, out)
    d = convert_gate(str(ref), str(out), str(x), str(y), 0.8, True, {})  # --force keeps it
    assert out.exists() and d["agreement"] < 0.8
