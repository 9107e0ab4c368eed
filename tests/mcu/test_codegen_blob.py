"""Blob mode of the code generator (--codegen --codegen-blob): the same outputs as the default code, the
constants really read through the blob pointer, a graph hash that names the compiled code and nothing else,
and a range check that refuses blobs no kernel can take."""

from __future__ import annotations

import ctypes
import random

import numpy as np
import pytest

pytest.importorskip("ai_edge_litert")

from harness import ROOT, build, compile_model  # noqa: E402

MODELS = ROOT / "examples" / "models"
DIGITS = MODELS / "digits_cnn_int8.tflite"


def blob_lib(data: bytes, tmp_path, kernels, stem: str = "digits_model"):
    from edgeops.convert.codegen import generate_c

    result = generate_c(data, tmp_path / f"{stem}.c", blob=True)
    lib = build(tmp_path / f"{stem}.c", tmp_path, kernels)
    return lib, result


def run_blob(lib, symbol: str, blob: bytes, x: np.ndarray, arena: int, n_out: int) -> tuple[int, np.ndarray]:
    words = np.frombuffer(blob + bytes(-len(blob) % 4), np.uint32).copy()  # 4-byte aligned
    out = np.zeros(n_out, np.int8)
    a = np.zeros(arena, np.uint8)
    ptr8 = ctypes.POINTER(ctypes.c_int8)
    fn = getattr(lib, f"{symbol}_invoke_blob")
    rc = fn(words.ctypes.data_as(ctypes.POINTER(ctypes.c_uint8)), np.ascontiguousarray(x, np.int8).ctypes.data_as(ptr8),
            out.ctypes.data_as(ptr8), a.ctypes.data_as(ctypes.POINTER(ctypes.c_uint8)))
    return rc, out


def test_blob_mode_gives_the_default_codes_outputs(tmp_path, kernels):
    from edgeops.convert.codegen import compile_blob

    data = DIGITS.read_bytes()
    default, _ = compile_model(data, tmp_path, stem="plain_model", objects=kernels)
    lib, result = blob_lib(data, tmp_path, kernels)
    compiled = compile_blob(data)
    assert result.graph_hash == compiled.graph_hash.hex() and result.blob_bytes == len(compiled.blob)
    rng = np.random.default_rng(0)
    ptr8 = ctypes.POINTER(ctypes.c_int8)
    for _ in range(20):
        x = rng.integers(-128, 128, 64, dtype=np.int8)
        expected = default(x)[0]
        rc, ours = run_blob(lib, "digits", compiled.blob, x, result.arena_bytes, 10)
        assert rc == 0
        np.testing.assert_array_equal(ours, expected)
        out = np.zeros(10, np.int8)
        arena = np.zeros(result.arena_bytes, np.uint8)
        assert lib.digits_invoke(x.ctypes.data_as(ptr8), out.ctypes.data_as(ptr8),
                                 arena.ctypes.data_as(ctypes.POINTER(ctypes.c_uint8))) == 0  # the built-in blob
        np.testing.assert_array_equal(out, expected)
    # the weights really come from the blob: zeroed weights give another output
    zeroed = bytearray(compiled.blob)
    for _, ctype, off, n in compiled.arrays:
        if ctype == "int8_t" and n != 256:
            zeroed[off:off + n] = bytes(n)
    x = rng.integers(-128, 128, 64, dtype=np.int8)
    assert not np.array_equal(run_blob(lib, "digits", bytes(zeroed), x, result.arena_bytes, 10)[1], default(x)[0])


def test_default_output_has_no_blob(tmp_path):
    from edgeops.convert.codegen import generate_c

    result = generate_c(DIGITS.read_bytes(), tmp_path / "d_model.c")
    text = (tmp_path / "d_model.c").read_text()
    assert "blob" not in text and result.graph_hash == "" and result.blob_bytes == 0


def fc_model(seed: int, units: int = 6, scales=(0.01, 0.02, 0.03, 0.01, 0.02, 0.04), out_zero_point: int = -11):
    from oneop import Spec, bias, build, weights

    rng = np.random.default_rng(seed)
    return build("FULLY_CONNECTED", [Spec((1, 16), 0.05, 9), Spec((units, 16), list(scales)[:units], 0,
                                                                   weights(rng, (units, 16))),
                                     Spec((units,), None, 0, bias(rng, units), np.int32)],
                 [Spec((1, units), 0.1, out_zero_point)], "FullyConnectedOptions", fusedActivationFunction=0)


def test_graph_hash_names_the_compiled_code_only(tmp_path):
    from edgeops.convert.codegen import compile_blob, generate_c

    data = DIGITS.read_bytes()
    a = generate_c(data, tmp_path / "a_model.c", blob=True)
    b = generate_c(data, tmp_path / "other_name.c", blob=True)
    assert a.graph_hash == b.graph_hash  # independent of the C symbol
    base = compile_blob(fc_model(0))
    retrained = compile_blob(fc_model(1, scales=(0.02, 0.01, 0.05, 0.02, 0.01, 0.03)))  # weights and their scales
    assert retrained.graph_hash == base.graph_hash and retrained.blob != base.blob
    assert compile_blob(fc_model(0, units=5)).graph_hash != base.graph_hash  # another shape
    assert compile_blob(fc_model(0, out_zero_point=3)).graph_hash != base.graph_hash  # a compiled-in parameter


def test_blob_check_refuses_out_of_range_shifts_and_biases(tmp_path, kernels):
    from edgeops.convert.codegen import compile_blob

    data = DIGITS.read_bytes()
    lib, _ = blob_lib(data, tmp_path, kernels)
    compiled = compile_blob(data)

    def check(blob: bytes) -> int:
        words = np.frombuffer(blob, np.uint32).copy()
        return lib.digits_blob_check(words.ctypes.data_as(ctypes.POINTER(ctypes.c_uint8)))

    assert check(compiled.blob) == 0
    shifts = [(off, n) for name, ctype, off, n in compiled.arrays if name.startswith("shift")]
    bad = bytearray(compiled.blob)
    bad[shifts[0][0]:shifts[0][0] + 4] = (32).to_bytes(4, "little", signed=True)
    assert check(bytes(bad)) == -1
    exp = [off for name, ctype, off, n in compiled.arrays if name.startswith("exp")][0]
    bad = bytearray(compiled.blob)
    bad[exp:exp + 4] = bytes(4)  # exp(0) = 0: the softmax sum could be 0 and its kernel shift by 32
    assert check(bytes(bad)) == -1
    assert check(bytes(len(compiled.blob))) == -1
    shuffled = bytearray(compiled.blob)
    random.Random(1).shuffle(shuffled)
    assert check(bytes(shuffled)) == -1


def test_cli_codegen_blob(tmp_path):
    from test_cli_codegen import cli

    out = tmp_path / "digits_model.c"
    res = cli(str(DIGITS), "-o", str(out), "--target", "cortex-m", "--format", "c", "--codegen", "--codegen-blob")
    assert res.returncode == 0, res.stderr
    assert "digits_invoke_blob" in out.with_suffix(".h").read_text() and "graph hash" in res.stdout
    assert out.read_text() == (ROOT / "firmware_bridge" / "app" / "model" / "digits_model.c").read_text()
    res = cli(str(DIGITS), "-o", str(tmp_path / "x.c"), "--target", "cortex-m", "--format", "c", "--codegen-blob")
    assert res.returncode != 0 and "--codegen-blob" in res.stderr
