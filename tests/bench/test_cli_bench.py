"""`edgeops bench` on the command line: formats, side-by-side ratios, gates that fail when they should."""

from __future__ import annotations

import csv
import io
import json
import os
import re
import shutil
import subprocess
import sys

import pytest

from tests.conftest import HAS_TFLITE, needs_ort

pytestmark = needs_ort
FAST = ["--runs", "50", "--warmup", "2", "--min-duration", "0", "--threads", "1"]


def cli(*args, columns=None):
    env = {**os.environ, "COLUMNS": str(columns)} if columns else None
    return subprocess.run([sys.executable, "-m", "edgeops", "bench", *map(str, args)], capture_output=True, text=True,
                          env=env)


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


@pytest.fixture(scope="module")
def long_named(examples, tmp_path_factory):
    """digits_cnn.onnx under a long name, as converted models get."""
    path = tmp_path_factory.mktemp("long") / "digits_cnn_int8_per_channel_entropy_calibrated_for_rpi5.onnx"
    shutil.copy(examples / "digits_cnn.onnx", path)
    return path


def table_rows(stdout: str, count: int) -> list[str]:
    lines = stdout.splitlines()
    rule = next(i for i, line in enumerate(lines) if line.startswith("──"))
    return lines[rule + 1:rule + 1 + count]


@pytest.mark.parametrize("columns", [80, 120])
def test_the_table_reads_at_80_and_120_columns(examples, long_named, columns):
    """Regression (issue 11): at 80 and 120 columns the model and backend columns shrank to nothing and
    numbers showed as "0…"."""
    models = [examples / "digits_mlp.onnx", long_named]
    proc = cli(*models, *FAST, "--batch", "2", columns=columns)
    assert proc.returncode == 0, proc.stderr
    rows = json.loads(cli(*models, *FAST, "--batch", "2", "--json").stdout)

    assert max(len(line) for line in proc.stdout.splitlines()) <= columns
    for line, row in zip(table_rows(proc.stdout, 2), rows):
        name, backend, batch, *numbers = line.split()
        head, _, tail = name.partition("…")
        assert os.path.basename(row["model"]).startswith(head) and row["model"].endswith(tail) and len(head) >= 5
        assert (backend, batch) == (row["backend"], "2")
        assert all(re.fullmatch(r"[\d,]+(\.\d+)?x?", n) for n in numbers), line  # whole numbers, none cut to "0…"
        assert len(numbers) == 6  # p50 p95 p99 CV throughput ratio
    assert "digits_mlp.onnx" in proc.stdout
    assert ("…" in table_rows(proc.stdout, 2)[1]) is (columns == 80)  # the long name cut in the middle at 80 only


def test_wide_shows_every_column_whole_even_on_a_narrow_terminal(examples, long_named):
    proc = cli(examples / "digits_mlp.onnx", long_named, *FAST, "--wide", columns=80)

    assert proc.returncode == 0, proc.stderr
    for header in ("init ms", "first ms", "mean ms", "std ms", "peak RSS MB", "p50 vs first"):
        assert header in proc.stdout
    assert long_named.name in proc.stdout and "…" not in proc.stdout


def test_runs_1_with_a_short_max_duration_needs_no_min_duration(examples):
    """Regression (issue 11): ``--runs 1 --max-duration 0.1`` failed with a message about ``min-duration``, which
    the user never set. Its default (1 s) now gives way to a shorter ``--max-duration``."""
    proc = cli(examples / "digits_mlp.onnx", "--runs", "1", "--max-duration", "0.1", "--json")

    assert proc.returncode == 0, proc.stderr
    (row,) = json.loads(proc.stdout)
    assert row["runs"] >= 1 and row["duration_s"] < 1.0  # stopped at its 0.1 s, not at the 1 s default


def test_a_min_duration_above_max_duration_names_both(examples):
    proc = cli(examples / "digits_mlp.onnx", "--min-duration", "5", "--max-duration", "1")

    assert proc.returncode == 2
    assert proc.stderr.strip() == "error: --min-duration 5 s must be between 0 and --max-duration 1 s"


def test_plot_makes_missing_folders(examples, tmp_path):
    """Regression (issue 11): --plot follows the one rule for output paths (edgeops._io.output_folder)."""
    pytest.importorskip("matplotlib")
    png = tmp_path / "dir" / "sub" / "x.png"
    proc = cli(examples / "digits_mlp.onnx", *FAST, "--plot", png)

    assert proc.returncode == 0, proc.stderr
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_plot_through_a_regular_file_fails_before_benchmarking(examples, tmp_path):
    (tmp_path / "notes.txt").write_text("x")
    proc = cli(examples / "digits_mlp.onnx", "--min-duration", "30", "--max-duration", "30", "--plot",
               tmp_path / "notes.txt" / "x.png")

    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [f"error: cannot write {tmp_path}/notes.txt/x.png: "
                                                f"{tmp_path}/notes.txt is a file, not a folder"]


def test_the_bench_command_gates_through_the_nan_safe_rule(monkeypatch):
    """Regression: `edgeops bench`'s own gate check was `value > limit`, so a NaN p95 or mean passed."""
    from edgeops.cli import bench as cli_bench

    rows = [{"model": "m.onnx", "latency_ms": {"p95": float("nan"), "mean": 0.1}, "peak_rss_mb": 10.0}]
    assert cli_bench.gate_failures(rows, max_p95_ms=5.0, max_mean_ms=None, max_rss_mb=None) == [
        "m.onnx: p95 is nan (not measured), so it cannot be shown to be <= 5 ms"]
