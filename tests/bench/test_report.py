"""Benchmark reports: the table, CSV, markdown and PNG a user gets from ``edgeops bench``."""

from __future__ import annotations

import csv
import io
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from edgeops.bench import report
from edgeops.errors import BackendUnavailableError, UsageError

ROOT = Path(__file__).resolve().parents[2]
PERCENTILES = {"p50": 50, "p90": 90, "p95": 95, "p99": 99, "p999": 99.9}


def make_result(model="examples/models/digits_mlp.onnx", *, median_ms=0.05, sigma=0.3, runs=1000, seed=0,
                end_to_end=False, warnings=(), samples=True, **overrides):
    """A result dict as ``BenchResult.to_dict(samples=True)`` makes it, from lognormal latencies."""
    rng = np.random.default_rng(seed)
    lat = rng.lognormal(np.log(median_ms), sigma, runs)
    stats = {k: float(np.percentile(lat, q)) for k, q in PERCENTILES.items()}
    stats.update(mean=float(lat.mean()), std=float(lat.std()), min=float(lat.min()), max=float(lat.max()))
    result = {
        "model": model, "format": "onnx", "backend": "onnxruntime", "providers": ["CPUExecutionProvider"],
        "threads": 1, "batch": 1, "inputs": "random", "end_to_end": end_to_end,
        "init_ms": 12.3, "first_inference_ms": 0.9, "warmup": {"count": 10, "mean_ms": median_ms * 1.1},
        "runs": runs, "duration_s": float(lat.sum() / 1000), "latency_ms": stats,
        "cv": stats["std"] / stats["mean"], "throughput_per_s": 1000.0 / stats["mean"],
        "peak_rss_mb": 80.1, "rss_delta_mb": 3.2, "cpu_percent": 99.0,
        "system": {"cpu_count": 4, "platform": "Linux-6.1-aarch64", "machine": "aarch64", "throttled_flags": "0x50000",
                   "cpu_freq_mhz": {"start": 1800.0, "end": 1500.0, "min": 600.0, "max": 1800.0},
                   "temperature_c": {"start": 48.0, "end": 61.5, "max": 62.0}},
        "warnings": list(warnings),
    }
    if samples:
        result["samples_ms"] = lat.tolist()
    result.update(overrides)
    return result


@pytest.fixture
def two_models():
    return [
        make_result("examples/models/digits_mlp.onnx", median_ms=0.05, seed=1),
        make_result("build/digits_mlp_int8.tflite", median_ms=0.02, seed=2, backend="litert", format="tflite",
                    providers=["xnnpack"], threads=4,
                    warnings=["CPU frequency fell from 1800 to 1500 MHz during the run", "cv 0.31 | noisy"]),
    ]


def rendered(table) -> str:
    from rich.console import Console

    console = Console(record=True, width=200)
    console.print(table)
    return console.export_text()


def markdown_rows(text: str) -> list[list[str]]:
    rows = [line for line in text.splitlines() if line.startswith("|")]
    return [[c.strip() for c in re.split(r"(?<!\\)\|", row)[1:-1]] for row in rows]


# ------------------------------------------------------------------------------------------------ csv


def test_csv_round_trips_through_dictreader_with_numbers_and_ratio(two_models):
    rows = list(csv.DictReader(io.StringIO(report.to_csv(two_models))))

    assert [r["model"] for r in rows] == [r["model"] for r in two_models]
    for row, result in zip(rows, two_models):
        for stat in report.LATENCY_STATS:
            assert float(row[f"latency_{stat}_ms"]) == result["latency_ms"][stat]
        assert int(row["warmup_count"]) == 10
        assert float(row["warmup_mean_ms"]) == result["warmup"]["mean_ms"]
        assert float(row["cpu_freq_end_mhz"]) == 1500.0
        assert float(row["temperature_max_c"]) == 62.0
        assert (row["cpu_count"], row["machine"], row["throttled_flags"]) == ("4", "aarch64", "0x50000")
        assert row["end_to_end"] == "false"
    expected = two_models[1]["latency_ms"]["p50"] / two_models[0]["latency_ms"]["p50"]
    assert float(rows[0]["p50_ratio_vs_first"]) == 1.0
    assert float(rows[1]["p50_ratio_vs_first"]) == pytest.approx(expected)
    assert 0.3 < expected < 0.5  # the int8 model is the faster one
    assert rows[1]["warnings"] == "CPU frequency fell from 1800 to 1500 MHz during the run; cv 0.31 | noisy"
    assert rows[1]["providers"] == "xnnpack"
    assert "samples_ms" not in rows[0] and not any("sample" in key for key in rows[0])


@pytest.mark.parametrize("field, column", [
    pytest.param(("init_ms",), "init_ms", id="init"),
    pytest.param(("latency_ms", "p99"), "latency_p99_ms", id="p99"),
    pytest.param(("system", "temperature_c"), "temperature_max_c", id="no-thermal-sensor"),
    pytest.param(("system", "cpu_freq_mhz"), "cpu_freq_start_mhz", id="no-cpufreq"),
])
def test_csv_leaves_unmeasurable_fields_empty(field, column):
    result = make_result()
    target = result
    for key in field[:-1]:
        target = target[key]
    target[field[-1]] = None

    row = next(csv.DictReader(io.StringIO(report.to_csv([result]))))

    assert row[column] == ""
    assert float(row["latency_p50_ms"]) == result["latency_ms"]["p50"]


# ------------------------------------------------------------------------------------------- markdown


def test_markdown_has_a_header_one_row_per_model_and_the_warnings(two_models):
    text = report.to_markdown(two_models)
    rows = markdown_rows(text)

    assert rows[0] == [header for header, _ in report.COLUMNS]
    assert set(rows[1]) == {"---", "---:"}
    assert [r[0] for r in rows[2:]] == ["digits_mlp.onnx", "digits_mlp_int8.tflite"]
    assert rows[2][-1] == "1.00x"
    assert rows[3][1] == "litert:xnnpack" and rows[3][2] == "4"
    assert rows[3][6] == f"{two_models[1]['latency_ms']['p50']:.3f}"
    assert "- `digits_mlp_int8.tflite`: CPU frequency fell from 1800 to 1500 MHz during the run" in text
    assert "- `digits_mlp_int8.tflite`: cv 0.31 \\| noisy" in text  # a pipe would split the row otherwise


def test_markdown_without_warnings_has_no_warnings_section():
    text = report.to_markdown([make_result(seed=1), make_result("b.onnx", seed=2)])

    assert "Warnings" not in text
    assert len(markdown_rows(text)) == 4


# ---------------------------------------------------------------------------------------------- table


def test_wide_table_renders_every_model_with_its_numbers_and_ratio(two_models):
    text = rendered(report.to_table(two_models, wide=True))
    lines = {line.split("│")[1].strip(): line for line in text.splitlines() if line.count("│") > 10}

    first, second = lines["digits_mlp.onnx"], lines["digits_mlp_int8.tflite"]
    for header in ("init ms", "p50 ms", "p99 ms", "CV %", "throughput/s", "peak RSS MB", "p50 vs first"):
        assert header in text
    assert f"{two_models[0]['latency_ms']['p50']:.3f}" in first and "1.00x" in first
    ratio = two_models[1]["latency_ms"]["p50"] / two_models[0]["latency_ms"]["p50"]
    assert f"{ratio:.2f}x" in second and "litert:xnnpack" in second
    assert f"{two_models[1]['cv'] * 100:.1f}" in second
    assert "CPU frequency" not in text  # warnings are printed by the CLI, below the table


def side_by_side():
    """Five results as the quickstart makes them, with long names, a delegate, a batch and wide numbers."""
    return [
        make_result("examples/models/digits_mlp.onnx", seed=1),
        make_result("/tmp/edgeops-quickstart/digits_cnn_int8_per_channel_calibrated.tflite", seed=2, backend="litert",
                    providers=["xnnpack"], cv=6.98, throughput_per_s=1_234_567.0),
        make_result("build/digits_cnn.onnx", median_ms=12.5, seed=3, batch=4),
        make_result("a/very/long/folder/name/model_exported_from_pytorch_with_dynamic_axes.onnx", median_ms=150.0,
                    seed=4, end_to_end=True),
        make_result("m.onnx", seed=5, init_ms=None, peak_rss_mb=None),
    ]


def render(table, width: int) -> str:
    from rich.console import Console

    console = Console(record=True, width=width)
    console.print(table)
    return console.export_text()


@pytest.mark.parametrize("width", [80, 120])
def test_the_default_table_reads_at_80_and_120_columns(width):
    """Regression (issue 11): at 80 and 120 columns the model and backend columns shrank to nothing and
    numbers showed as "0…". Now: fewer columns, names cut in the middle, every number whole."""
    results = side_by_side()
    lines = render(report.to_table(results, width=width), width).splitlines()
    full = dict(zip([h for h, _ in report.COLUMNS], zip(*markdown_rows(report.to_markdown(results))[2:])))
    rule = next(i for i, line in enumerate(lines) if line.startswith("──"))
    rows = lines[rule + 1:rule + 1 + len(results)]

    assert max(len(line) for line in lines) <= width
    for i, (line, name) in enumerate(zip(rows, report._labels(results))):
        shown = line.split(" ")[0]
        head, cut, tail = shown.partition("…")
        assert name.startswith(head) and len(head) >= 5, shown
        if cut:  # cut in the middle: the start and the end of the name kept
            assert len(tail) >= 5 and name.split(" ")[0].endswith(tail), shown
        cells = line[len(shown):].replace("(e2e)", "").split()
        for header in ("backend", "p50 ms", "p95 ms", "p99 ms", "CV %", "throughput/s", "p50 vs first"):
            assert full[header][i] in cells, (header, line)
        assert all("…" not in cell for cell in cells), line
        assert cells[1] == full["batch"][i]  # shown because one model ran with batch 4
    assert all(line.count("…") <= 1 for line in lines)


def test_the_default_table_keeps_names_whole_when_there_is_room():
    results = side_by_side()
    text = render(report.to_table(results, width=200), 200)

    assert "…" not in text
    assert all(name in text for name in report.model_names(results))
    assert "init" not in text and "RSS" not in text  # those are --wide columns


def test_a_single_result_and_batch_1_leave_their_columns_out():
    text = render(report.to_table([make_result()], width=80), 80)

    assert "batch" not in text and "first" not in text
    assert "CV" in text and "throughput" in text


def test_shorten_middle_keeps_the_start_and_the_end():
    assert report.shorten_middle("digits_cnn_int8.tflite", 15) == "digits_….tflite"
    assert report.shorten_middle("short.onnx", 15) == "short.onnx"
    assert len(report.shorten_middle("x" * 100, 20)) == 20


@pytest.mark.parametrize("flags, in_title, marked_rows", [
    pytest.param([False, False], False, 0, id="model-only"),
    pytest.param([True, True], True, 2, id="all-end-to-end"),
    pytest.param([False, True], True, 1, id="mixed"),
])
def test_table_title_says_end_to_end_and_marks_those_rows(flags, in_title, marked_rows):
    results = [make_result(f"m{i}.onnx", end_to_end=e2e, seed=i) for i, e2e in enumerate(flags)]
    table = report.to_table(results, wide=True)
    text = rendered(table)

    assert ("end-to-end (preprocessing included)" in str(table.title)) is in_title
    model_cells = [line.split("│")[1] for line in text.splitlines() if line.count("│") > 10]
    assert sum("(e2e)" in cell for cell in model_cells) == marked_rows
    assert ("end-to-end" in report.to_markdown(results)) is in_title


def test_unmeasurable_values_show_as_a_dash_not_none_or_nan():
    result = make_result(init_ms=None, peak_rss_mb=None, cv=None, threads=None)
    text = rendered(report.to_table([result], wide=True)) + rendered(report.to_table([result]))
    row = markdown_rows(report.to_markdown([result]))[2]

    assert "None" not in text and "nan" not in text.lower()
    assert row[2] == row[4] == row[11] == row[13] == report.MISSING


# --------------------------------------------------------------------------------------------- ratios


@pytest.mark.parametrize("p50s, expected", [
    pytest.param([2.0], [1.0], id="baseline-alone-is-1"),
    pytest.param([2.0, 1.0, 6.0], [1.0, 0.5, 3.0], id="faster-and-slower"),
    pytest.param([2.0, None, 3.0], [1.0, None, 1.5], id="missing-p50-gives-none"),
    pytest.param([None, 1.0], [None, None], id="missing-baseline-gives-all-none"),
    pytest.param([0.0, 1.0], [None, None], id="zero-baseline-gives-all-none"),
    pytest.param([], [], id="no-results"),
])
def test_ratios_divide_each_p50_by_the_first(p50s, expected):
    results = []
    for i, p50 in enumerate(p50s):
        result = make_result(f"m{i}.onnx", samples=False)
        result["latency_ms"]["p50"] = p50
        results.append(result)

    assert report.ratios(results) == pytest.approx(expected)


# ----------------------------------------------------------------------------------------------- plot


@pytest.mark.parametrize("results", [
    pytest.param(lambda: [make_result(seed=1), make_result("b.onnx", median_ms=0.06, seed=2)], id="narrow-spread"),
    pytest.param(lambda: [make_result(seed=1, sigma=0.5, end_to_end=True),
                          make_result("int8.tflite", median_ms=0.004, seed=2, runs=20000)], id="wide-spread-log-x"),
    pytest.param(lambda: [make_result(runs=1, seed=3)], id="single-sample"),
])
def test_plot_writes_a_readable_png_of_about_1100x440(tmp_path, results):
    image = pytest.importorskip("matplotlib.image")
    path = tmp_path / "latency.png"

    report.plot(results(), path)

    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(data) > 10_000
    height, width = image.imread(path).shape[:2]
    assert abs(width - 1100) <= 10 and abs(height - 440) <= 10


@pytest.mark.parametrize("samples", [
    pytest.param(None, id="samples-not-kept"),
    pytest.param([], id="empty"),
    pytest.param([None, float("nan")], id="all-unmeasurable"),
])
def test_plot_without_samples_raises_usage_error(tmp_path, samples):
    second = make_result("int8.tflite", seed=2, samples=False)
    if samples is not None:
        second["samples_ms"] = samples

    with pytest.raises(UsageError, match="int8.tflite.*samples"):
        report.plot([make_result(seed=1), second], tmp_path / "latency.png")
    assert not (tmp_path / "latency.png").exists()


def test_plot_without_matplotlib_says_how_to_install(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)

    with pytest.raises(BackendUnavailableError, match=r"pip install 'edgeops\[plot\]'"):
        report.plot([make_result()], tmp_path / "latency.png")


def test_plot_makes_missing_folders(tmp_path):
    """Regression (issue 11): the plot follows the one rule for output paths (edgeops._io.output_folder)."""
    pytest.importorskip("matplotlib")
    path = tmp_path / "no" / "such" / "dir" / "latency.png"

    report.plot([make_result()], path)

    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_plot_through_a_regular_file_is_a_usage_error(tmp_path):
    pytest.importorskip("matplotlib")
    (tmp_path / "file").write_text("x")

    with pytest.raises(UsageError, match="file is a file, not a folder"):
        report.plot([make_result()], tmp_path / "file" / "latency.png")


# ---------------------------------------------------------------------------------------------- names


@pytest.mark.parametrize("paths, names", [
    pytest.param(["a/mlp.onnx", "b/cnn.onnx"], ["mlp.onnx", "cnn.onnx"], id="distinct-file-names"),
    pytest.param(["fp32/model.onnx", "int8/model.onnx", "x.onnx"], ["fp32/model.onnx", "int8/model.onnx", "x.onnx"],
                 id="same-name-other-dir"),
    pytest.param(["/runs/1/out/m.onnx", "/runs/2/out/m.onnx"], ["1/out/m.onnx", "2/out/m.onnx"],
                 id="shortest-distinguishing-suffix"),
    pytest.param(["m.onnx", "./m.onnx", "m.onnx"], ["m.onnx", "m.onnx#2", "m.onnx#3"], id="same-path-twice"),
    pytest.param(["C:\\models\\a\\m.onnx", "C:\\models\\b\\m.onnx"], ["a/m.onnx", "b/m.onnx"], id="windows-paths"),
])
def test_duplicate_file_names_are_disambiguated(paths, names):
    results = [make_result(p, seed=i, samples=False) for i, p in enumerate(paths)]

    assert report.model_names(results) == names
    assert [row[0] for row in markdown_rows(report.to_markdown(results))[2:]] == names
    text = rendered(report.to_table(results))
    assert all(name in text for name in names)


# ------------------------------------------------------------------------------------------ footprint


def test_importing_report_loads_neither_rich_nor_matplotlib():
    code = "import edgeops.bench.report, sys, json; print(json.dumps(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT).stdout
    loaded = {m.split(".")[0] for m in json.loads(out)}

    assert not loaded & {"rich", "matplotlib"}
