"""The TFLite Micro baseline that benchmarks/mcu_footprint.py measures against (tools/tflm.py).

The smallest arena it reports is the smallest that works: 16 bytes less fails; probing small arenas crashes
no one. Skips without tflite-micro.
"""

from __future__ import annotations

import importlib.util

import pytest

from tests.conftest import EXAMPLES
from tools import tflm

pytestmark = pytest.mark.skipif(importlib.util.find_spec("tflite_micro") is None, reason="tflite-micro not installed")


@pytest.mark.parametrize("model", ["digits_cnn_int8", "digits_mlp"])
def test_the_smallest_arena_is_the_smallest_that_runs(model):
    path = EXAMPLES / f"{model}.tflite"
    arena = tflm.min_arena(path)
    assert arena.bytes % 16 == 0
    assert 0 < arena.head < arena.bytes and 0 < arena.tail < arena.bytes
    assert tflm._runs(path, arena.bytes)
    assert not tflm._runs(path, arena.bytes - 16)


def test_failing_arenas_stay_quiet_and_a_crash_is_a_failure(capfd):
    mlp = EXAMPLES / "digits_mlp.tflite"
    assert not tflm._runs(mlp, 1024)  # TFLite Micro says why on file descriptor 1 or 2
    assert not tflm._runs(mlp, 64)  # the Python binding segfaults: only the forked child dies
    out, err = capfd.readouterr()
    assert out + err == ""
    with tflm.captured() as said:
        tflm.interpreter(mlp, 4096).print_allocations()
    assert "Arena allocation head" in said[0]


def test_a_model_too_big_for_the_arena_is_refused():
    with pytest.raises(RuntimeError, match="cannot run"):
        tflm.min_arena(EXAMPLES / "digits_mobilenet_int8.tflite", upper=1024)
