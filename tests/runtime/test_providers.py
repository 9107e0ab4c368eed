"""Execution providers and delegates follow the target; a missing one is a clear error."""

from __future__ import annotations

import pytest

import edgeops
from edgeops.errors import ProviderUnavailableError
from edgeops.runtime.backends.onnxruntime import resolve_providers
from edgeops.targets import TARGETS, detect, get_target
from tests.conftest import needs_ort, needs_tflite

CPU_ONLY = ["CPUExecutionProvider"]
JETSON = ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]


@pytest.mark.parametrize("target, available, expected", [
    ("jetson-orin", JETSON, JETSON),
    ("jetson-orin", CPU_ONLY, CPU_ONLY),
    ("rpi4", ["XnnpackExecutionProvider", "CPUExecutionProvider"], ["XnnpackExecutionProvider", "CPUExecutionProvider"]),
    ("rpi4", CPU_ONLY, CPU_ONLY),
    ("generic-cpu", JETSON, CPU_ONLY),
])
def test_target_preferences_are_filtered_to_what_is_installed(target, available, expected):
    assert resolve_providers(None, TARGETS[target], available) == expected


def test_requested_providers_take_aliases_and_options():
    got = resolve_providers(["cuda", ("TensorrtExecutionProvider", {"trt_fp16_enable": True})],
                            TARGETS["generic-cpu"], JETSON)
    assert got == ["CUDAExecutionProvider", ("TensorrtExecutionProvider", {"trt_fp16_enable": True}),
                   "CPUExecutionProvider"]


def test_a_requested_provider_that_is_missing_says_what_is_there():
    with pytest.raises(ProviderUnavailableError, match="'cuda'.*onnxruntime-gpu.*available: CPUExecutionProvider"):
        resolve_providers(["cuda"], TARGETS["generic-cpu"], CPU_ONLY)


def test_targets():
    assert detect().name in TARGETS
    assert get_target("rpi5").cores == 4
    with pytest.raises(edgeops.EdgeOpsError, match="unknown target 'pi9'.*rpi4"):
        get_target("pi9")


@needs_ort
def test_load_with_an_unavailable_provider(examples):
    with pytest.raises(ProviderUnavailableError, match="CUDAExecutionProvider"):
        edgeops.load(examples / "digits_mlp.onnx", providers=["cuda"])


@needs_ort
def test_load_on_a_jetson_target_falls_back_to_cpu_here(examples, digits):
    m = edgeops.load(examples / "digits_mlp.onnx", target="jetson-orin")
    assert m.providers[-1] == "CPUExecutionProvider"
    assert m.run(digits["pixels"][:1])["probabilities"].shape == (1, 10)


@needs_tflite
@pytest.mark.parametrize("providers, expected", [(None, ["xnnpack"]), (["cpu"], ["cpu"]), (["xnnpack"], ["xnnpack"])])
def test_tflite_delegates(examples, digits, providers, expected):
    m = edgeops.load(examples / "digits_mlp.tflite", providers=providers)
    assert m.providers == expected
    assert m.run(digits["pixels"][:2])["probabilities"].shape == (2, 10)


@needs_tflite
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")  # LiteRT's Delegate.__del__ after a failed load
def test_tflite_external_delegate_that_is_missing(examples):
    with pytest.raises(ProviderUnavailableError, match="libedgetpu"):
        edgeops.load(examples / "digits_mlp.tflite", providers=["/nonexistent/libedgetpu.so.1"])
