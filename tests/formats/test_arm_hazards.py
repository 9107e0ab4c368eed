"""An int8 FULLY_CONNECTED without a bias: valid, run by LiteRT and by x86 builds, but tflite-runtime
2.14 on aarch64 (the Raspberry Pi OS runtime) crashes on it (SIGSEGV; found by the aarch64 crash run,
tools/aarch64/run.sh with EDGEOPS_AARCH64_FULL=1). The reader reports it as a hazard and the TFLite
backend refuses it exactly there."""

from __future__ import annotations

import importlib.util
import platform

import pytest

from edgeops.errors import ModelLoadError
from edgeops.formats import read_tflite, tflite_io_map
from tests.formats.conftest import mutate
from tests.formats.test_interpreter_crash import HERE

TINY_INT8 = (HERE / "data" / "tiny_int8.tflite").read_bytes()


def mutant(seed: int, index: int) -> bytes:
    for i, (_, data) in enumerate(mutate(TINY_INT8, seed, index + 1)):
        if i == index:
            return data
    raise AssertionError("unreachable")


# the two mutants that crashed tflite-runtime 2.14 under qemu-aarch64 (a Cortex-A72): the FC's bias
# index set to -1, and the FC's input list cut to two
UNBIASED = [pytest.param(7919, 1165, id="bias-index-minus-1"), pytest.param(23757, 3, id="bias-input-dropped")]


@pytest.mark.parametrize("seed, index", UNBIASED)
def test_an_unbiased_int8_fully_connected_is_a_hazard_not_an_error(seed, index):
    data = mutant(seed, index)
    read_tflite(data)  # valid: LiteRT runs it
    hazards: list[str] = []
    tflite_io_map(data, hazards=hazards)
    assert len(hazards) == 1
    assert "FULLY_CONNECTED without a bias" in hazards[0] and "aarch64" in hazards[0] and "ai-edge-litert" in hazards[0]


def test_the_committed_int8_model_has_no_hazard():
    hazards: list[str] = []
    tflite_io_map(TINY_INT8, hazards=hazards)
    assert hazards == []


@pytest.mark.parametrize("seed, index", UNBIASED)
def test_litert_runs_it(tmp_path, seed, index):
    pytest.importorskip("ai_edge_litert")
    import numpy as np

    import edgeops

    path = tmp_path / "m.tflite"
    path.write_bytes(mutant(seed, index))
    m = edgeops.load(str(path), backend="litert")
    out = m.run({m.inputs[0].name: np.ones((1, 4), np.float32)})
    assert np.isfinite(next(iter(out.values()))).all()


@pytest.mark.parametrize("seed, index", UNBIASED)
def test_tflite_runtime_on_aarch64_refuses_it_with_the_reason(tmp_path, monkeypatch, seed, index):
    if importlib.util.find_spec("tflite_runtime") is None:
        pytest.skip("tflite-runtime is not installed (its numpy<2 environment runs this)")
    import edgeops

    path = tmp_path / "m.tflite"
    path.write_bytes(mutant(seed, index))
    if platform.machine().lower() not in ("aarch64", "arm64"):  # on x86 it runs; pretend to be the Pi
        edgeops.load(str(path), backend="tflite-runtime")
        monkeypatch.setattr(platform, "machine", lambda: "aarch64")
    with pytest.raises(ModelLoadError, match="tflite-runtime on aarch64 cannot run an int8 FULLY_CONNECTED"):
        edgeops.load(str(path), backend="tflite-runtime")
