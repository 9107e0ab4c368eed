"""Generated model C on an emulated Cortex-M4 gives TFLite Micro's int8 outputs, bit for bit.

Every example model, as int8: the committed ``digits_cnn_int8.tflite`` (float I/O around an int8 graph) and
the three ONNX examples converted here with ``--quantize int8 --int8-io``. Each is compiled by
``edgeops.convert.codegen`` (``--format c --codegen``), cross-compiled with the kernels of
``firmware_bridge/src`` for a Cortex-M4 (``-Os -mthumb``, soft float; one model with the FPU too), run on
QEMU's mps2-an386 board on held-out digits and random inputs, and compared with the ``tflite-micro``
interpreter on the same int8 inputs.

Skips, saying why, where the code generator, the cross toolchain, QEMU or tflite-micro is missing.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import EXAMPLES
from tools import cortexm, tflm

pytestmark = [
    pytest.mark.skipif(importlib.util.find_spec("edgeops.convert.codegen") is None,
                       reason="no code generator (edgeops.convert.codegen) in this checkout"),
    pytest.mark.skipif(importlib.util.find_spec("tflite_micro") is None, reason="tflite-micro not installed"),
]

KERNELS = cortexm.ROOT / "firmware_bridge"
CONVERTED = ["digits_mlp", "digits_cnn", "digits_mobilenet"]


@pytest.fixture(scope="module")
def toolchain() -> cortexm.Toolchain:
    try:
        return cortexm.toolchain()
    except cortexm.Unavailable as exc:
        pytest.skip(str(exc))


@pytest.fixture(scope="module")
def int8_models(tmp_path_factory) -> dict[str, Path]:
    """The example models as int8 .tflite: the committed one, and the ONNX examples converted with int8 I/O."""
    import edgeops

    out = tmp_path_factory.mktemp("int8")
    models = {"digits_cnn_int8": EXAMPLES / "digits_cnn_int8.tflite"}
    for name in CONVERTED:
        path = out / f"{name}_io8.tflite"
        try:
            edgeops.convert(EXAMPLES / f"{name}.onnx", path, quantize="int8", int8_io=True, profile=False,
                            calibration=str(EXAMPLES / f"{name}_calib.npz"))
        except ImportError as exc:  # the int8 TFLite path needs ai-edge-quantizer
            models[name] = exc  # type: ignore[assignment]
            continue
        models[name] = path
    return models


TEST_DATA = {"digits_cnn_int8": "digits_cnn", "digits_mlp": "digits_mlp", "digits_cnn": "digits_cnn",
             "digits_mobilenet": "digits_mobilenet"}


def generated_on_the_board(model: Path, workdir: Path, data: str, float_abi: str = "soft"):
    """Generate C for ``model``, run it on the emulated board; the inputs, its run and TFLite Micro's outputs."""
    from edgeops.convert.codegen import generate_c

    result = generate_c(model.read_bytes(), workdir / f"{model.stem}_model.c")
    macros = cortexm.header_macros(result.h_path)
    sym = result.symbol.upper()
    in_q = (macros[f"{sym}_INPUT_SCALE"], int(macros[f"{sym}_INPUT_ZERO_POINT"]))
    out_q = (macros[f"{sym}_OUTPUT_SCALE"], int(macros[f"{sym}_OUTPUT_ZERO_POINT"]))
    size = int(macros[f"{sym}_INPUT_SIZE"])
    with np.load(EXAMPLES / f"{data}_test.npz") as npz:  # held-out digits, quantized as the header says
        digits = next(iter(npz.values()))[:4].reshape(4, -1)
    assert digits.shape[1] == size
    real = np.clip(np.round(digits / in_q[0]) + in_q[1], -128, 127).astype(np.int8)
    noise = np.random.default_rng(16).integers(-128, 128, (4, size), dtype=np.int8)
    samples = np.concatenate([real, noise])
    assert macros[f"{sym}_ARENA_SIZE"] == result.arena_bytes
    build = cortexm.build([result.c_path, *sorted((KERNELS / "src").glob("*.c"))],
                          [KERNELS / "include", Path(result.h_path).parent], function=f"{result.symbol}_invoke",
                          inputs=samples, output_size=int(macros[f"{sym}_OUTPUT_SIZE"]),
                          arena_size=result.arena_bytes, headers=[Path(result.h_path).name],
                          workdir=workdir / f"m4-{float_abi}", float_abi=float_abi)
    run = cortexm.run(build, timeout=120)
    reference = tflm.int8_reference(model, samples, in_q, out_q)
    return samples, run, reference


@pytest.mark.parametrize("name", ["digits_cnn_int8", *CONVERTED])
def test_example_model_on_the_cortex_m4_equals_tflite_micro(toolchain, int8_models, tmp_path, name):
    model = int8_models[name]
    if isinstance(model, Exception):
        pytest.skip(f"cannot convert {name} to int8 here: {model}")
    samples, run, reference = generated_on_the_board(model, tmp_path, TEST_DATA[name])
    np.testing.assert_array_equal(run.outputs, reference)
    assert run.returns == (0,) * len(samples)
    # not a constant or saturated answer: several different outputs, some values strictly inside int8's range
    assert len({tuple(r) for r in reference}) >= len(samples) // 2
    assert ((reference > -128) & (reference < 127)).any()
    assert all(n > 1000 for n in run.instructions)


def test_the_fpu_build_gives_the_same_bytes(toolchain, int8_models, tmp_path):
    """The generated code is integer-only; a hard-float build (-mfpu=fpv4-sp-d16, the FPU switched on) agrees."""
    samples, run, reference = generated_on_the_board(int8_models["digits_cnn_int8"], tmp_path, "digits_cnn",
                                                      float_abi="hard")
    np.testing.assert_array_equal(run.outputs, reference)


def test_a_null_pointer_is_refused_on_the_board_too(toolchain, int8_models, tmp_path):
    """The generated function's documented -1 for a NULL pointer, on the target: a wrapper passes a NULL arena."""
    from edgeops.convert.codegen import generate_c

    result = generate_c(int8_models["digits_cnn_int8"].read_bytes(), tmp_path / "net_model.c")
    (tmp_path / "null_arena.c").write_text(
        '#include <stdint.h>\n#include "net_model.h"\n'
        "int null_arena_invoke(const int8_t *input, int8_t *output, uint8_t *arena);\n"
        "int null_arena_invoke(const int8_t *input, int8_t *output, uint8_t *arena)\n"
        f"{{ (void)arena; return {result.symbol}_invoke(input, output, (uint8_t *)0); }}\n")
    build = cortexm.build([result.c_path, tmp_path / "null_arena.c", *sorted((KERNELS / "src").glob("*.c"))],
                          [KERNELS / "include", tmp_path], function="null_arena_invoke",
                          inputs=np.zeros((1, 64), np.int8), output_size=10, arena_size=0, workdir=tmp_path / "m4")
    assert cortexm.run(build, timeout=60).returns == (-1,)
