"""The edgeops CLI: version, help, info, quickstart; exit codes and one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

import edgeops
from tests.conftest import EXAMPLES, HAS_TFLITE, needs_ort


def cli(*args, check=False):
    proc = subprocess.run([sys.executable, "-m", "edgeops", *map(str, args)], capture_output=True, text=True)
    if check:
        assert proc.returncode == 0, proc.stderr
    return proc


def test_version():
    assert cli("--version", check=True).stdout.strip().endswith(edgeops.__version__)


def test_help_lists_the_commands():
    out = cli("--help", check=True).stdout
    for command in ("bench", "info", "quickstart"):
        assert command in out


@pytest.mark.parametrize("name, fmt, ops", [
    ("digits_mlp.onnx", "onnx", {"Gemm": 2, "Relu": 1, "Softmax": 1}),
    ("digits_mlp.tflite", "tflite", {"FULLY_CONNECTED": 2, "SOFTMAX": 1}),
])
def test_info_json(examples, name, fmt, ops):
    proc = cli("info", examples / name, "--json", check=True)
    data = json.loads(proc.stdout)
    assert data["format"] == fmt
    assert data["inputs"] == [{"name": "pixels", "shape": [None, 64], "dtype": "float32"}]
    assert data["outputs"][0]["name"] == "probabilities"
    assert data["outputs"][0]["shape"] == [None, 10]
    assert data["ops"] == ops
    assert data["size_bytes"] == (examples / name).stat().st_size
    assert data["versions"]


@pytest.mark.skipif(not HAS_TFLITE, reason="no usable TFLite runtime")
@pytest.mark.parametrize("name", sorted(p.name for p in EXAMPLES.glob("*.tflite")))
def test_info_json_on_tflite_keeps_stderr_clean_and_names_the_delegate(examples, name):
    """Regression: LiteRT printed "INFO: Created TensorFlow Lite XNNPACK delegate for CPU." to stderr
    on every .tflite load, in every command, --json runs included."""
    proc = cli("info", examples / name, "--json", check=True)
    assert "XNNPACK" not in proc.stderr and proc.stderr == ""
    runtime = json.loads(proc.stdout)["runtime"]
    assert runtime["backend"] in ("litert", "tflite-runtime") and runtime["delegates"] == ["xnnpack"]


@needs_ort
def test_info_verbose_shows_the_backend(examples):
    out = cli("info", "-v", examples / "digits_mlp.onnx", check=True).stdout
    assert "runtime: onnxruntime " in out and "providers CPUExecutionProvider" in out
    assert "runtime:" not in cli("info", examples / "digits_mlp.onnx", check=True).stdout


def test_info_human(examples):
    out = cli("info", examples / "digits_cnn.onnx", check=True).stdout
    assert "image" in out and "Conv" in out and "opset" in out


@pytest.mark.parametrize("name, data, words", [
    pytest.param("missing.onnx", None, "not found (no such file); check the path", id="missing"),
    pytest.param("empty.onnx", b"", "empty", id="empty"),
    pytest.param("junk.tflite", b"junk" * 50, "tflite", id="junk"),
    pytest.param("junk.onnx", bytes(range(256)), "onnx", id="junk-onnx"),
])
def test_info_bad_file_is_exit_2_and_one_line(tmp_path, name, data, words):
    path = tmp_path / name
    if data is not None:
        path.write_bytes(data)
    proc = cli("info", path)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert proc.stderr.startswith("error: ") and words in proc.stderr.lower()
    assert proc.stderr.strip().count("\n") == 0
    assert proc.stdout == ""


def test_unknown_option_is_exit_2():
    assert cli("info", "--bogus").returncode == 2


@needs_ort
def test_quickstart_json(tmp_path, monkeypatch):
    monkeypatch.setenv("EDGEOPS_QUICKSTART_DIR", str(tmp_path))
    proc = cli("quickstart", "--json", check=True)
    report = json.loads(proc.stdout)
    assert report["onnx"]["accuracy"] > 0.95
    assert report["onnx"]["runs"] == report["samples"]
    assert report["guardrails"]["above"] == 10 and report["guardrails"]["nonfinite"] == 1
    assert report["bench"][0]["model"].endswith("digits_mlp.onnx") and report["bench"][0]["runs"] >= 200
    if "skipped" not in report["convert"]:
        c = report["convert"]
        assert c["passed"] and c["size_ratio"] > 2 and c["accuracy"]["drop_points"] <= 1.0
        assert any(b["model"] == c["output"] for b in report["bench"])
    if "skipped" not in report["tflite_export"]:  # the convert extra and LiteRT are installed
        t = report["tflite_export"]
        assert t["passed"] and t["output"].endswith(".tflite") and t["accuracy"]["drop_points"] <= 1.0
        assert report["bench"][-1]["model"] == t["output"]
    a = report["agent"]
    if "skipped" in a:  # no paho or no mosquitto: the reason says what to install
        assert "mosquitto" in a["skipped"] or "agent" in a["skipped"]
    else:  # the agent's telemetry arrived over a real broker, every seq from 1
        assert a["messages"] >= 2 and a["seqs"] == list(range(1, a["messages"] + 1))
        assert a["last"]["inference"]["count"] > 0 and a["last"]["model"]["name"] == "digits_mlp"
        if "outcome" in a["ota"]:  # cryptography installed: the over-the-air update went live
            assert a["ota"]["outcome"] == "committed" and a["ota"]["telemetry_version"] == "2.0"
    if HAS_TFLITE:
        assert report["tflite"]["max_abs_diff_vs_onnx"] < 1e-4
        assert report["bench"][1]["backend"] in ("litert", "tflite-runtime")
