"""C on an emulated Cortex-M4 (QEMU mps2-an386): the board port and harness, and tools/cortexm.py that drives them.

A hand-written int8 FULLY_CONNECTED gives, on the emulated board, exactly the bytes numpy computes; a loop of
known length gives the instruction count it must; a fault, a hang and a missing toolchain each give a clear
error. Skips, with the reason, where arm-none-eabi-gcc, newlib or qemu-system-arm are not installed.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from tools import cortexm

HERE = Path(__file__).resolve().parent


def _toolchain_or_skip() -> cortexm.Toolchain:
    try:
        return cortexm.toolchain()
    except cortexm.Unavailable as exc:
        pytest.skip(str(exc))


@pytest.fixture(scope="module")
def tools() -> cortexm.Toolchain:
    return _toolchain_or_skip()


def _high_mul(a: np.ndarray, b: int) -> np.ndarray:
    ab = a.astype(np.int64) * b
    nudge = np.where(ab >= 0, 1 << 30, 1 - (1 << 30))
    num = ab + nudge
    return (np.sign(num) * (np.abs(num) >> 31)).astype(np.int64)  # C's division truncates toward zero


def _rounding_shift(x: np.ndarray, shift: int) -> np.ndarray:
    mask = (1 << shift) - 1
    remainder = x & mask
    threshold = (mask >> 1) + (x < 0)
    return (x >> shift) + (remainder > threshold)


def fully_connected(x, w, bias, zp_in, zp_out, multiplier, shift):
    acc = (x.astype(np.int64) - zp_in) @ w.astype(np.int64).T + bias
    out = _rounding_shift(_high_mul(acc, multiplier), shift) + zp_out
    return np.clip(out, -128, 127).astype(np.int8)


def _fc_case(tmp_path: Path, rng: np.random.Generator, n_in: int, n_out: int, multiplier: int, shift: int):
    w = rng.integers(-127, 128, (n_out, n_in), dtype=np.int8)
    bias = rng.integers(-4000, 4000, n_out).astype(np.int32)
    zp_in, zp_out = -3, 5
    rows = ",\n".join("{" + ", ".join(map(str, r)) + "}" for r in w)
    (tmp_path / "fc_params.h").write_text(
        f"#define FC_IN {n_in}\n#define FC_OUT {n_out}\n#define FC_INPUT_ZP ({zp_in})\n#define FC_OUTPUT_ZP ({zp_out})\n"
        f"#define FC_MULTIPLIER {multiplier}\n#define FC_SHIFT {shift}\n"
        f"static const int8_t fc_weights[{n_out}][{n_in}] = {{\n{rows}\n}};\n"
        f"static const int32_t fc_bias[{n_out}] = {{{', '.join(map(str, bias))}}};\n")
    return w, bias, (zp_in, zp_out, multiplier, shift)


# (multiplier, shift): an output scale of about 0.0014 with a long shift, and about 0.001 with a 1-bit
# shift, where half of the values sit on a rounding tie
SCALES = {"scale-0.0014-shift-9": (1_518_500_250, 9), "scale-0.001-shift-1": (4_294_967, 1)}


@pytest.mark.parametrize("float_abi", ["soft", "hard"])
@pytest.mark.parametrize("scale", list(SCALES))
def test_fully_connected_on_the_board_equals_numpy(tools, tmp_path, float_abi, scale):
    rng = np.random.default_rng(16)
    n_in, n_out = 64, 10
    w, bias, (zp_in, zp_out, multiplier, shift) = _fc_case(tmp_path, rng, n_in, n_out, *SCALES[scale])
    x = rng.integers(-128, 128, (16, n_in), dtype=np.int8)
    x[0] = -128  # the extremes: every product at its largest
    x[1] = 127
    build = cortexm.build([HERE / "fc_int8.c"], [tmp_path], function="fc_invoke", inputs=x, output_size=n_out,
                          arena_size=4 * n_out, workdir=tmp_path / "build", float_abi=float_abi)
    result = cortexm.run(build, timeout=30)
    expected = fully_connected(x, w, bias, zp_in, zp_out, multiplier, shift)
    assert len(np.unique(expected)) > 20  # the case exercises the arithmetic, not only the clamps
    np.testing.assert_array_equal(result.outputs, expected)
    assert result.returns == (0,) * len(x)
    # 640 multiply-accumulates at least one instruction each, and well under 20 each
    assert all(640 < n < 20 * 640 for n in result.instructions), result.instructions
    assert 0 < result.stack_bytes < 4096
    assert build.text > n_in * n_out  # the weights are in the image


LOOP = """
#include <stdint.h>
int loop_invoke(const int8_t *input, int8_t *output, uint8_t *arena);
int loop_invoke(const int8_t *input, int8_t *output, uint8_t *arena)
{
    uint32_t n = (uint32_t)(uint8_t)input[0] * 100u;
    (void)arena;
    output[0] = input[0];
    __asm__ volatile("1: subs %0, %0, #1\\n\\tbne 1b" : "+r"(n) : : "cc");
    return (int)input[1];
}
"""


@pytest.mark.parametrize("shift", [5, 7, 10])
def test_instruction_counts_follow_a_loop_of_known_length(tools, tmp_path, shift):
    (tmp_path / "loop.c").write_text(LOOP)
    x = np.array([[1, 0], [11, -7], [201 - 256, 3]], np.int8)  # 100, 1100 and 20100 iterations of 2 instructions
    build = cortexm.build([tmp_path / "loop.c"], [], function="loop_invoke", inputs=x, output_size=1,
                          arena_size=0, workdir=tmp_path)
    result = cortexm.run(build, timeout=30, icount_shift=shift)
    assert result.returns == (0, -7, 3)
    np.testing.assert_array_equal(result.outputs[:, 0], x[:, 0])
    n = np.array(result.instructions)
    # the loop's 2 instructions an iteration exactly; the resolution is one timer tick (40 ns) in 2**shift ns
    tick = cortexm.TICK_NS / 2 ** shift
    np.testing.assert_allclose(n[1:] - n[0], [2000, 40000], atol=2 * tick)
    assert 200 <= n[0] <= 220  # the loop and a few instructions around it
    assert result.dwt_cycles == 0  # QEMU does not model the DWT cycle counter: a count is not a cycle count


def test_a_fault_on_the_board_is_an_error_naming_it(tools, tmp_path):
    (tmp_path / "bad.c").write_text(
        "#include <stdint.h>\nint bad_invoke(const int8_t *input, int8_t *output, uint8_t *arena);\n"
        "int bad_invoke(const int8_t *input, int8_t *output, uint8_t *arena)\n"
        "{ (void)input; (void)output; (void)arena; __asm__ volatile(\"udf #0\"); return 0; }\n")
    build = cortexm.build([tmp_path / "bad.c"], [], function="bad_invoke", inputs=np.zeros((1, 1), np.int8),
                          output_size=1, arena_size=0, workdir=tmp_path)
    with pytest.raises(cortexm.CortexMError, match="FAULT HardFault"):
        cortexm.run(build, timeout=30)


def test_a_hang_on_the_board_is_a_timeout_error(tools, tmp_path):
    (tmp_path / "hang.c").write_text(
        "#include <stdint.h>\nint hang_invoke(const int8_t *input, int8_t *output, uint8_t *arena);\n"
        "int hang_invoke(const int8_t *input, int8_t *output, uint8_t *arena)\n"
        "{ (void)output; (void)arena; while (input[0] == 0) { __asm__ volatile(\"\"); } return 0; }\n")
    build = cortexm.build([tmp_path / "hang.c"], [], function="hang_invoke", inputs=np.zeros((1, 1), np.int8),
                          output_size=1, arena_size=0, workdir=tmp_path)
    with pytest.raises(cortexm.CortexMError, match="ran past 2 s"):
        cortexm.run(build, timeout=2)


def test_a_warning_fails_the_build_with_the_compilers_message(tools, tmp_path):
    (tmp_path / "warn.c").write_text(
        "#include <stdint.h>\nint warn_invoke(const int8_t *input, int8_t *output, uint8_t *arena);\n"
        "int warn_invoke(const int8_t *input, int8_t *output, uint8_t *arena) { int unused; return 0; }\n")
    with pytest.raises(cortexm.CortexMError, match="unused"):
        cortexm.build([tmp_path / "warn.c"], [], function="warn_invoke", inputs=np.zeros((1, 1), np.int8),
                      output_size=1, arena_size=0, workdir=tmp_path)


def test_bad_harness_arguments_are_refused():
    with pytest.raises(ValueError, match="int8"):
        cortexm.harness_header("f", np.zeros((1, 4), np.float32), 1, 0)
    with pytest.raises(ValueError, match="C identifier"):
        cortexm.harness_header("f(); x", np.zeros((1, 4), np.int8), 1, 0)


def test_a_missing_toolchain_says_what_to_install(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(cortexm.Unavailable, match="gcc-arm-none-eabi libnewlib-arm-none-eabi qemu-system-arm"):
        cortexm.toolchain()


LIBRARY = sorted((cortexm.ROOT / "firmware_bridge" / "src").glob("*.c"))
HOST_GCC = shutil.which("gcc")


@pytest.mark.parametrize("compiler", ["arm-soft", "arm-hard", "host"])
def test_the_firmware_bridge_library_compiles_warning_free(tmp_path, compiler):
    """Every C file in firmware_bridge/src, with -std=c99 -Wall -Wextra -Werror -pedantic, for the Cortex-M4 and the host."""
    if not LIBRARY:
        pytest.skip("no firmware_bridge/src/*.c in this checkout")
    include = cortexm.ROOT / "firmware_bridge" / "include"
    if compiler == "host":
        if HOST_GCC is None:
            pytest.skip("no host gcc")
        proc = subprocess.run([HOST_GCC, "-O2", *cortexm.WARNINGS, f"-I{include}", "-c", *map(str, LIBRARY)],
                              cwd=tmp_path, capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr
    else:
        _toolchain_or_skip()
        objects = cortexm.compile_objects(LIBRARY, [include], tmp_path, float_abi=compiler.split("-")[1])
        assert all(o.stat().st_size > 0 for o in objects)
