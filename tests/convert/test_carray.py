"""A .tflite as C source: the .c/.h compile as C99 and a program sees the exact file, aligned; the
header carries a valid symbol, the I/O and an arena estimate planned like TFLite Micro's; a failed
write leaves nothing behind."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

pytest.importorskip("ai_edge_litert")  # the flatbuffer schema module the estimate reads with

from edgeops.convert.carray import c_identifier, estimate_arena, write_c_array  # noqa: E402
from edgeops.errors import ModelFormatError, UsageError  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
MLP = ROOT / "examples" / "models" / "digits_mlp.tflite"
TINY_INT8 = ROOT / "tests" / "formats" / "data" / "tiny_int8.tflite"
GCC = shutil.which("gcc")
needs_gcc = pytest.mark.skipif(GCC is None, reason="gcc not installed")

MAIN_C = """
#include <stdio.h>
#include <string.h>
#include <stdint.h>
#include "{header}"

int main(void) {{
    if ({symbol}_len != {size}u) {{ printf("length %lu\\n", (unsigned long){symbol}_len); return 1; }}
    if (memcmp({symbol} + 4, "TFL3", 4) != 0) {{ printf("no TFL3 at offset 4\\n"); return 2; }}
    if ((uintptr_t){symbol} % 16 != 0) {{ printf("not 16-byte aligned\\n"); return 3; }}
    printf("%d\\n", {macro});
    return 0;
}}
"""


def gcc(*args: str, cwd: Path) -> None:
    proc = subprocess.run([GCC, "-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic", *args],
                          cwd=cwd, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr


@pytest.fixture(scope="module")
def cnn_fp32() -> bytes:
    onnx = pytest.importorskip("onnx")
    from edgeops.convert.tflite import export

    return export(onnx.load(ROOT / "examples" / "models" / "digits_cnn.onnx")).data


@needs_gcc
@pytest.mark.parametrize("stem", ["model", "my-model.v2"])
def test_c_and_header_compile_and_a_program_sees_the_file(tmp_path, stem):
    data = MLP.read_bytes()
    out = write_c_array(data, tmp_path / f"{stem}.c")
    assert Path(out.h_path) == tmp_path / f"{stem}.h" and out.size == len(data)
    gcc("-c", f"{stem}.c", "-o", "model.o", cwd=tmp_path)
    (tmp_path / "main.c").write_text(MAIN_C.format(header=f"{stem}.h", symbol=out.symbol, size=len(data),
                                                   macro=out.arena_macro))
    gcc("main.c", "model.o", "-o", "main", cwd=tmp_path)
    run = subprocess.run([str(tmp_path / "main")], capture_output=True, text=True, timeout=30)
    assert run.returncode == 0, run.stdout
    assert int(run.stdout) == out.arena_bytes  # the measured arena plus its margin, or the estimate


@pytest.mark.parametrize("name, symbol", [
    ("my-model.v2", "my_model_v2"), ("model", "model"), ("2nd model", "model_2nd_model"),
    ("int", "int_model"), ("_private", "private"), ("模型", "model_"), ("", "model_"),
], ids=["dots-and-dashes", "plain", "leading-digit", "keyword", "leading-underscore", "non-ascii", "empty"])
def test_symbols_are_valid_c_identifiers(name, symbol):
    assert c_identifier(name) == symbol


def test_name_sets_the_symbol_and_the_files_keep_their_path(tmp_path):
    out = write_c_array(MLP.read_bytes(), tmp_path / "firmware.c", name="digits-v1")
    assert out.symbol == "digits_v1" and out.arena_macro == "DIGITS_V1_ARENA_SIZE"
    header = Path(out.h_path).read_text()
    assert "extern EDGEOPS_MODEL_ALIGN const unsigned char digits_v1[];" in header
    assert "extern const size_t digits_v1_len;" in header
    assert '#include "firmware.h"' in Path(out.c_path).read_text()


def test_the_c_file_holds_the_bytes_twelve_to_a_line(tmp_path):
    data = MLP.read_bytes()
    text = Path(write_c_array(data, tmp_path / "m.c").c_path).read_text()
    rows = [line.strip() for line in text.splitlines() if line.startswith("  0x")]
    assert all(row.count("0x") == 12 for row in rows[:-1]) and 1 <= rows[-1].count("0x") <= 12
    assert bytes(int(v, 16) for row in rows for v in row.rstrip(",").split(", ")) == data


def test_header_describes_io_operators_and_the_arena(tmp_path):
    out = write_c_array(MLP.read_bytes(), tmp_path / "m.c")
    header = Path(out.h_path).read_text()
    assert "#ifndef EDGEOPS_M_H_" in header and "#include <stddef.h>" in header and "#include <stdint.h>" in header
    assert "pixels: float32 [?, 64]" in header and "probabilities: float32 [?, 10]" in header
    assert "FULLY_CONNECTED x2, SOFTMAX" in header
    assert f"#define M_ARENA_ESTIMATE {out.arena.bytes}" in header and "GreedyMemoryPlanner" in header
    assert "#define M_ARENA_SIZE " in header


def test_header_gives_quantization_of_int8_io(tmp_path):
    pytest.importorskip("ai_edge_quantizer")
    onnx = pytest.importorskip("onnx")
    import numpy as np

    from edgeops.convert.tflite import export
    from edgeops.convert.tflite.quantize import quantize

    x = np.load(ROOT / "examples" / "models" / "digits_mlp_calib.npz")["pixels"][:20]
    data, _ = quantize(export(onnx.load(ROOT / "examples" / "models" / "digits_mlp.onnx")).data, "int8",
                       calibration=[{"pixels": x[i:i + 1]} for i in range(len(x))], int8_io=True)
    header = Path(write_c_array(data, tmp_path / "q.c").h_path).read_text()
    assert "pixels: int8 [1, 64], scale " in header and "zero point -128" in header


@pytest.mark.parametrize("source", ["mlp", "cnn", "tiny-int8"])
def test_arena_is_between_the_largest_tensor_and_all_tensors(source, cnn_fp32):
    data = {"mlp": MLP.read_bytes(), "cnn": cnn_fp32, "tiny-int8": TINY_INT8.read_bytes()}[source]
    est = estimate_arena(data)
    assert est.largest_tensor_bytes < est.planned_bytes <= est.total_tensor_bytes
    assert est.bytes == est.planned_bytes + est.overhead_bytes and est.bytes % 16 == 0
    assert "GreedyMemoryPlanner" in est.method and "allowance" in est.method


def test_arena_reuses_memory_along_a_chain(cnn_fp32):
    # image 256 -> reshaped 256 -> relu1 2048 -> pool1 512 -> relu2 1024 -> flat 1024 -> logits, probabilities:
    # never more than relu1 and pool1 (2560 bytes) are alive together
    est = estimate_arena(cnn_fp32)
    assert est.planned_bytes == 2048 + 512 and set(est.peak_tensors) == {"relu1", "pool1"}


def test_a_failed_write_leaves_nothing_behind(tmp_path):
    (tmp_path / "model.c").mkdir()  # the .c cannot replace a folder: refused before the header is written
    with pytest.raises(UsageError, match="model.c: it is a folder; give a file name"):
        write_c_array(MLP.read_bytes(), tmp_path / "model.c")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.c"]


def test_a_failed_write_puts_the_old_header_back(tmp_path):
    (tmp_path / "model.h").write_text("old header")
    (tmp_path / "model.c").mkdir()
    with pytest.raises(UsageError, match="model.c: it is a folder; give a file name"):
        write_c_array(MLP.read_bytes(), tmp_path / "model.c")
    assert (tmp_path / "model.h").read_text() == "old header"


def test_invalid_models_and_header_paths_are_refused(tmp_path):
    with pytest.raises(ModelFormatError, match="not a valid TFLite model: no TFL3 file identifier"):
        write_c_array(b"not a model at all", tmp_path / "m.c")
    with pytest.raises(UsageError, match=r"m\.h is a header name; give the \.c path"):
        write_c_array(MLP.read_bytes(), tmp_path / "m.h")
    assert list(tmp_path.iterdir()) == []
