"""``edgeops validate`` on the command line: JSON alone on stdout, exit 1 on a failed gate, exit 2 on bad input."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np

NO_LATENCY = ["--no-latency"]


def cli(*args):
    return subprocess.run([sys.executable, "-m", "edgeops", "validate", *map(str, args)],
                          capture_output=True, text=True)


def test_json_is_the_report_and_nothing_else(cnn_paths, cnn_int8):
    proc = cli(cnn_paths["model"], cnn_int8, "--data", cnn_paths["data"], "--labels", cnn_paths["labels"],
               "--max-accuracy-drop", 1, "--min-agreement", 0.97, "--min-cosine", 0.99, "--json", *NO_LATENCY)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["passed"] is True and report["failures"] == []
    assert report["samples"] == 360 and report["accuracy"]["drop_points"] <= 1


def test_failed_gate_exits_1_after_writing_json_report_and_profile(cnn_paths, cnn_broken, tmp_path):
    html, profile = tmp_path / "report.html", tmp_path / "profile.json"
    proc = cli(cnn_paths["model"], cnn_broken, "--data", cnn_paths["data"], "--labels", cnn_paths["labels"],
               "--max-accuracy-drop", 0.5, "--json", "--report", html, "--profile", profile, *NO_LATENCY)
    assert proc.returncode == 1
    report = json.loads(proc.stdout)
    assert report["passed"] is False and report["failures"][0].startswith("accuracy drop ")
    assert report["divergence"] and report["diagnosis"]["hint"]
    assert "Traceback" not in proc.stderr
    assert proc.stderr.startswith("error: validation failed: accuracy drop ")
    assert html.read_text().count("FAIL") >= 1
    assert json.loads(profile.read_text())["inputs"]["image"]["shape"] == [None, 1, 8, 8]


def test_human_output_has_tables_latency_and_verdict(examples):
    proc = cli(examples / "digits_mlp.onnx", examples / "digits_mlp.onnx", "--data", examples / "digits_mlp_test.npz",
               "--labels", examples / "digits_test_labels.npy", "--min-agreement", 0.99, "--bench-runs", 20,
               "--threads", 1)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    for words in ("parity", "probabilities", "accuracy on labels", "96.94%", "latency", "p95 ms",
                  "PASS all 1 gate(s): min_agreement 0.99"):
        assert words in out, words


def test_labels_count_mismatch_is_exit_2_and_one_line(examples, tmp_path):
    labels = tmp_path / "labels.npy"
    np.save(labels, np.zeros(10, np.int64))
    proc = cli(examples / "digits_mlp.onnx", examples / "digits_mlp.onnx", "--data", examples / "digits_mlp_test.npz",
               "--labels", labels, *NO_LATENCY)
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert proc.stderr.startswith("error: the data holds 360 samples but there are 10 labels")
    assert proc.stderr.strip().count("\n") == 0
