"""The firmware_bridge C library on the host: ``make -C firmware_bridge test`` in its two builds.

test-strict: gcc -std=c99 -Wall -Wextra -Werror -pedantic -O2, the golden frames, the link and the model
slots with a power cut at every byte of the update sequence. test-asan: the same tests under
-fsanitize=address,undefined (cut points sampled), and the fuzz harness on every golden frame.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

FIRMWARE = Path(__file__).resolve().parents[2] / "firmware_bridge"
MAKE, GCC = shutil.which("make"), shutil.which("gcc")

pytestmark = pytest.mark.skipif(MAKE is None or GCC is None, reason="gcc or make not installed")


def _make(target: str, build: Path, timeout: float = 300) -> str:
    proc = subprocess.run([str(MAKE), "-C", str(FIRMWARE), target, f"BUILD={build}", f"CC={GCC}"],
                          capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"make {target} failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
    return proc.stdout


def _has_sanitizers(tmp_path: Path) -> bool:
    src = tmp_path / "probe.c"
    src.write_text("int main(void) { return 0; }\n")
    proc = subprocess.run([str(GCC), "-fsanitize=address,undefined", str(src), "-o", str(tmp_path / "probe")],
                          capture_output=True, text=True)
    return proc.returncode == 0


def _results(out: str) -> dict[str, tuple[int, int]]:
    return {m[0]: (int(m[1]), int(m[2])) for m in re.findall(r"^(test_\w+): (\d+) checks, (\d+) failed$", out, re.M)}


def test_strict_build_passes_every_c_test(tmp_path):
    out = _make("test-strict", tmp_path)
    results = _results(out)
    assert set(results) == {"test_golden", "test_slots", "test_link", "test_demo"}
    assert all(failed == 0 and checks > 50 for checks, failed in results.values()), results
    cuts = [int(n) for n in re.findall(r"(\d+) cut points", out)]
    assert len(cuts) == 2 and min(cuts) > 10000, out  # every byte of the sequence, two flash geometries


def test_sanitizer_build_passes_every_c_test(tmp_path):
    if not _has_sanitizers(tmp_path):
        pytest.skip("this gcc cannot link -fsanitize=address,undefined (libasan/libubsan missing)")
    out = _make("test-asan", tmp_path)
    results = _results(out)
    assert set(results) == {"test_golden", "test_slots", "test_link", "test_demo"}
    assert all(failed == 0 for _, failed in results.values()), results
    assert out.count("bytes=") == len(list((FIRMWARE / "tests" / "golden").glob("*.bin")))


def test_cortex_m4_footprint_is_measured(tmp_path):
    if shutil.which("arm-none-eabi-gcc") is None or shutil.which("arm-none-eabi-size") is None:
        pytest.skip("arm-none-eabi-gcc not installed (Debian: gcc-arm-none-eabi)")
    out = _make("size", tmp_path)
    rows = {m[4].rsplit("/", 1)[-1]: int(m[0]) for m in re.findall(r"^\s*(\d+)\s+(\d+)\s+(\d+)\s+(\d+)\s+\S+\s+(\S+)$",
                                                                      out, re.M)}
    assert set(rows) == {"eob_frame.o", "eob_msg.o", "eob_sha256.o", "eob_slots.o", "eob_link.o"}
    assert 0 < sum(rows.values()) < 16 * 1024  # text of the whole library, -Os


STAND_INS = {
    "board.h": "#include <stdbool.h>\n#include <stddef.h>\n#include <stdint.h>\n"
               "size_t uart_write(void *ctx, const uint8_t *p, size_t n);\n"
               "size_t uart_read(void *ctx, uint8_t *p, size_t n);\nuint32_t micros(void *ctx);\n"
               "bool flash_read(void *ctx, uint8_t region, uint32_t off, uint8_t *p, uint32_t n);\n"
               "bool flash_erase(void *ctx, uint8_t region, uint32_t off, uint32_t n);\n"
               "bool flash_write(void *ctx, uint8_t region, uint32_t off, const uint8_t *p, uint32_t n);\n",
    "digits_model.h": "#include <stdint.h>\n#define DIGITS_ARENA_SIZE 2304\n#define DIGITS_INPUT_SIZE 64\n"
                      "#define DIGITS_OUTPUT_SIZE 10\n"
                      "int digits_invoke(const int8_t *input, int8_t *output, uint8_t *arena);\n",
}


@pytest.mark.parametrize("compiler", ["gcc", "arm-none-eabi-gcc"])
def test_readme_integration_example_compiles(tmp_path, compiler):
    cc = shutil.which(compiler)
    if cc is None:
        pytest.skip(f"{compiler} not installed")
    readme = (FIRMWARE / "README.md").read_text()
    example = re.search(r"### A bare-metal main loop\n\n```c\n(.*?)```", readme, re.S)
    assert example is not None, "firmware_bridge/README.md lost its main-loop example"
    (tmp_path / "main.c").write_text(example.group(1))
    for name, text in STAND_INS.items():
        (tmp_path / name).write_text(text)
    flags = ["-mcpu=cortex-m4", "-mthumb", "-Os"] if compiler.startswith("arm") else ["-O2"]
    proc = subprocess.run([cc, *flags, "-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic", f"-I{tmp_path}",
                           f"-I{FIRMWARE / 'include'}", "-c", str(tmp_path / "main.c"), "-o", str(tmp_path / "main.o")],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
