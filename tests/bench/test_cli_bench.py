"""`edgeops bench` on the command line: formats, side-by-side ratios, gates that fail when they should."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys

import pytest

from tests.conftest import HAS_TFLITE, needs_ort

pytestmark = needs_ort
FAST = ["--runs", "50", "--warmup", "2", "--min-duration", "0", "--threads", "1"]


def cli(*args):
    return subprocess.run([sys.executable, "-m", "edgeops", "bench", *map(str, args)], capture_output=True, text=True)


@pytest.fixture(scope="module")
def models(examples):
    ms = [examples / "digits_mlp.onnx", examples / "digits_cnn.onnx"]
    if HAS_TFLITE:
        ms.append(examples / "digits_mlp.tflite")
    return ms


def test_json_is_a_list_with_one_object_per_model(models):
    proc = cli(*models, *FAST, "--json")
    assert proc.returncode == 0, proc.stderr
    rows = json.loads(proc.stdout)
    assert [r["model"] for r in rows] == [str(m) for m in models]
    for r in rows:
        assert r["runs"] == 50 and r["warmup"] == {"count": 2, "mean_ms": pytest.approx(r["warmup"]["mean_ms"])}
        assert r["latency_ms"]["p50"] > 0 and isinstance(r["warnings"], list)


def test_csv_and_markdown(models):
    proc = cli(*models[:2], *FAST, "--csv")
    assert proc.returncode == 0, proc.stderr
    rows = list(csv.DictReader(io.StringIO(proc.stdout)))
    assert len(rows) == 2 and float(rows[0]["latency_p50_ms"]) > 0
    md = cli(*models[:2], *FAST, "--markdown").stdout
    assert md.count("\n|") >= 3 and "digits_cnn.onnx" in md


def test_human_table_with_ratios_and_a_plot(models, tmp_path):
    pytest.importorskip("matplotlib")
    png = tmp_path / "lat.png"
    proc = cli(*models[:2], *FAST, "--plot", png)
    assert proc.returncode == 0, proc.stderr
    assert "digits_mlp.onnx" in proc.stdout and "1.00x" in proc.stdout
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("gate, value, fails", [
    pytest.param("--max-p95-ms", "0.000001", True, id="p95-too-tight"),
    pytest.param("--max-p95-ms", "10000", False, id="p95-generous"),
    pytest.param("--max-mean-ms", "0.000001", True, id="mean-too-tight"),
    pytest.param("--max-mean-ms", "10000", False, id="mean-generous"),
    pytest.param("--max-rss-mb", "1", True, id="rss-too-tight"),
    pytest.param("--max-rss-mb", "100000", False, id="rss-generous"),
])
def test_gates(examples, gate, value, fails):
    proc = cli(examples / "digits_mlp.onnx", *FAST, gate, value, "--json")
    assert proc.returncode == (1 if fails else 0), proc.stderr
    assert json.loads(proc.stdout)  # the report is printed either way
    if fails:
        assert "benchmark gate failed" in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.parametrize("args, words", [
    pytest.param(["missing.onnx"], "not found", id="missing-model"),
    pytest.param(["{mlp}", "--json", "--csv"], "one of", id="two-formats"),
    pytest.param(["{mlp}", "--end-to-end"], "--preprocess", id="e2e-without-preprocess"),
    pytest.param(["{mlp}", "--input-shape", "pixels=1,64"], "NAME:D1", id="bad-input-shape"),
    pytest.param(["{mlp}", "--runs", "0"], "at least 1", id="zero-runs"),
    pytest.param(["{mlp}", "--data", "nope.npz"], "not found", id="missing-data"),
])
def test_bad_usage_is_exit_2(examples, args, words):
    proc = cli(*[a.format(mlp=examples / "digits_mlp.onnx") for a in args])
    assert proc.returncode == 2
    assert words in proc.stderr and "Traceback" not in proc.stderr


def test_end_to_end_and_data_file(examples, tmp_path):
    proc = cli(examples / "digits_mlp.onnx", *FAST, "--data", examples / "digits_mlp_test.npz", "--batch", "4", "--json")
    assert proc.returncode == 0, proc.stderr
    (row,) = json.loads(proc.stdout)
    assert row["inputs"].startswith("data:") and row["batch"] == 4
    proc = cli(examples / "digits_cnn.onnx", *FAST, "--end-to-end", "--preprocess", "scale=1/16", "--json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)[0]["end_to_end"] is True
