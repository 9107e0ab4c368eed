"""``edgeops convert ... --format c [--codegen]`` from the command line: an int8 .tflite or an ONNX model
in, C out that builds with the kernels and runs; what cannot be compiled is refused with exit 2 and
nothing written; options that do not apply are refused."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("ai_edge_litert")

from harness import CFLAGS, GCC, KERNELS, ROOT  # noqa: E402

MODELS = ROOT / "examples" / "models"

MAIN = """
#include <stdio.h>
#include "cnn_model.h"
static uint8_t arena[CNN_ARENA_SIZE];
int main(void) {
  int8_t in[CNN_INPUT_SIZE], out[CNN_OUTPUT_SIZE];
  int i, best = 0;
  for (i = 0; i < CNN_INPUT_SIZE; ++i) in[i] = (int8_t)(CNN_INPUT_ZERO_POINT + (i * 37) % 200);
  if (cnn_invoke(in, out, arena) != 0) return 1;
  if (cnn_invoke(in, out, 0) != -1) return 2;
  for (i = 1; i < CNN_OUTPUT_SIZE; ++i) if (out[i] > out[best]) best = i;
  printf("%d %d\\n", best, (int)out[best]);
  return 0;
}
"""


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "edgeops", "convert", *args], capture_output=True, text=True,
                          timeout=300, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})


@pytest.mark.skipif(GCC is None, reason="gcc not installed")
def test_int8_tflite_compiles_to_a_program_that_runs(tmp_path):
    run = cli(str(MODELS / "digits_cnn_int8.tflite"), "-o", str(tmp_path / "cnn_model.c"), "--target", "cortex-m",
              "--codegen", "--json")
    assert run.returncode == 0, run.stderr
    report = json.loads(run.stdout)
    assert report["extra"]["codegen"] and report["extra"]["symbol"] == "cnn"
    (tmp_path / "main.c").write_text(MAIN)
    build = subprocess.run([GCC, *CFLAGS, "-I", str(KERNELS / "include"), "-I", str(tmp_path), "-o",
                            str(tmp_path / "main"), str(tmp_path / "main.c"), str(tmp_path / "cnn_model.c"),
                            *sorted(str(p) for p in (KERNELS / "src").glob("*.c"))], capture_output=True, text=True)
    assert build.returncode == 0, build.stderr
    out = subprocess.run([str(tmp_path / "main")], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0
    best, value = map(int, out.stdout.split())
    assert 0 <= best < 10 and -128 <= value <= 127


def test_unsupported_ops_are_listed_and_nothing_is_written(tmp_path):
    # the MobileNet example keeps SOFTMAX float (after a DEQUANTIZE), for XNNPACK
    run = cli(str(MODELS / "digits_mobilenet_int8.tflite"), "-o", str(tmp_path / "m_model.c"), "--target",
              "cortex-m", "--codegen")
    assert run.returncode == 2
    assert "DEQUANTIZE" in run.stderr and "SOFTMAX" in run.stderr and "nothing written" in run.stderr
    assert "Traceback" not in run.stderr
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("args, says", [
    (["-o", "{tmp}/m.tflite"], "is a TFLite model; edgeops convert takes an ONNX model"),
    (["-o", "{tmp}/m.c", "--quantize", "int8"], "--quantize does not apply to a .tflite"),
    (["-o", "{tmp}/m.c", "--int8-io"], "--int8-io does not apply"),
], ids=["tflite-to-tflite", "quantize", "int8-io"])
def test_a_tflite_input_takes_no_option_that_would_change_it(tmp_path, args, says):
    run = cli(str(MODELS / "digits_cnn_int8.tflite"), "--target", "cortex-m",
              *[a.format(tmp=tmp_path) for a in args])
    assert run.returncode == 2 and says in run.stderr, run.stderr
    assert list(tmp_path.iterdir()) == []


def test_codegen_needs_the_c_format(tmp_path):
    run = cli(str(MODELS / "digits_mlp.onnx"), "-o", str(tmp_path / "m.onnx"), "--codegen")
    assert run.returncode == 2 and "--codegen compiles the model to C" in run.stderr


def test_onnx_to_compiled_c_in_one_command(tmp_path):
    pytest.importorskip("onnx")
    run = cli(str(MODELS / "digits_mlp.onnx"), "-o", str(tmp_path / "digits_model.c"), "--target", "cortex-m",
              "--quantize", "int8", "--calibration", str(MODELS / "digits_mlp_calib.npz"), "--codegen", "--json")
    assert run.returncode == 0, run.stderr
    header = (tmp_path / "digits_model.h").read_text()
    for macro in ("DIGITS_ARENA_SIZE", "DIGITS_INPUT_SIZE 64", "DIGITS_OUTPUT_SIZE 10", "DIGITS_INPUT_SCALE",
                  "DIGITS_INPUT_ZERO_POINT", "DIGITS_OUTPUT_SCALE", "DIGITS_OUTPUT_ZERO_POINT"):
        assert f"#define {macro}" in header
    assert "int digits_invoke(const int8_t *input, int8_t *output, uint8_t *arena);" in header
    extra = json.loads(run.stdout)["extra"]
    assert extra["arena_bytes"] == int(header.split("#define DIGITS_ARENA_SIZE ")[1].split()[0])
    assert np.isfinite(extra["const_bytes"])
