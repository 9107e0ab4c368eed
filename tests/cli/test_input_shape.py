"""``--input-shape NAME:D1,D2,...``: one parser and one checker for every command that takes it (bench, convert).

Regression tests for issue 11: ``bench --input-shape image:-1,...`` printed a traceback, ``image:0,...``
benchmarked an empty batch, an unknown input name was silently ignored by bench (convert refused it),
and ``image:4,1,8,8`` reported batch 1 and a throughput 4x too low.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from edgeops.errors import UsageError
from edgeops.runtime import input_shapes
from tests.conftest import needs_ort

FAST = ["--runs", "50", "--warmup", "2", "--min-duration", "0", "--threads", "1"]


def run_cli(command, examples, tmp_path, *args):
    model = examples / "digits_cnn.onnx"
    extra = FAST if command == "bench" else ["-o", tmp_path / "out.onnx", "--quantize", "none"]
    return subprocess.run([sys.executable, "-m", "edgeops", command, model, *map(str, extra), *args],
                          capture_output=True, text=True)


BAD = [
    pytest.param("image:-1,1,8,8", "at least 1, not -1", id="negative-dim"),
    pytest.param("image:0,1,8,8", "at least 1, not 0", id="empty-batch"),
    pytest.param("pixels:1,64", "pixels, which the model does not have (inputs: image)", id="unknown-name"),
    pytest.param("image:1,8,8", "rank 4, not 3", id="wrong-rank"),
    pytest.param("image:1,3,8,8", "axis 1 is fixed at 1", id="fixed-dim"),
    pytest.param("image=1,1,8,8", "must look like NAME:D1,D2", id="no-colon"),
    pytest.param("image:1,x,8,8", "must look like NAME:D1,D2", id="not-a-number"),
]


@needs_ort
@pytest.mark.parametrize("command", ["bench", "convert"])
@pytest.mark.parametrize("shape, words", BAD)
def test_a_bad_input_shape_is_one_line_and_exit_2(examples, tmp_path, command, shape, words):
    if command == "convert":
        pytest.importorskip("onnx")
    proc = run_cli(command, examples, tmp_path, "--input-shape", shape)

    assert proc.returncode == 2, proc.stderr
    assert words in proc.stderr
    assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


@needs_ort
@pytest.mark.parametrize("command", ["bench", "convert"])
def test_the_same_input_twice_is_refused(examples, tmp_path, command):
    proc = run_cli(command, examples, tmp_path, "--input-shape", "image:1,1,8,8", "--input-shape", "image:2,1,8,8")

    assert proc.returncode == 2 and "names image twice" in proc.stderr


@needs_ort
def test_bench_reports_the_batch_given_through_input_shape_and_counts_it_in_throughput(examples, tmp_path):
    proc = run_cli("bench", examples, tmp_path, "--input-shape", "image:4,1,8,8", "--json")

    assert proc.returncode == 0, proc.stderr
    (row,) = json.loads(proc.stdout)
    assert row["batch"] == 4
    assert row["throughput_per_s"] == pytest.approx(row["runs"] * 4 / row["duration_s"])


@needs_ort
def test_bench_refuses_a_batch_that_disagrees_with_input_shape(examples, tmp_path):
    proc = run_cli("bench", examples, tmp_path, "--input-shape", "image:4,1,8,8", "--batch", "2")

    assert proc.returncode == 2 and "--batch 2" in proc.stderr and "image:4" in proc.stderr


@needs_ort
def test_convert_fixes_the_given_shape(examples, tmp_path):
    pytest.importorskip("onnx")
    import edgeops

    proc = run_cli("convert", examples, tmp_path, "--input-shape", "image:4,1,8,8")

    assert proc.returncode == 0, proc.stderr
    assert edgeops.load(tmp_path / "out.onnx").inputs[0].shape == (4, 1, 8, 8)


@pytest.mark.parametrize("shapes, words", [
    pytest.param({"x": (0, 4)}, "at least 1, not 0", id="zero"),
    pytest.param({"x": (2.5, 4)}, "whole numbers", id="float"),
    pytest.param({"y": (1, 4)}, "does not have", id="unknown"),
])
def test_the_python_api_goes_through_the_same_check(shapes, words):
    with pytest.raises(UsageError, match=words):
        input_shapes.check(shapes, {"x": (None, 4)})


def test_batch_of_reads_the_dynamic_leading_dim():
    declared = {"a": (None, 4), "b": (None, 2), "c": (3, 2)}

    assert input_shapes.batch_of({"a": (8, 4), "c": (3, 2)}, declared) == 8
    assert input_shapes.batch_of({"c": (3, 2)}, declared) is None
    with pytest.raises(UsageError, match="different batches"):
        input_shapes.batch_of({"a": (8, 4), "b": (2, 2)}, declared)
