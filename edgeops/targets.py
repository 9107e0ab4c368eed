"""Device target profiles: what a kind of board can run and how to run it best.

A :class:`Target` names the architecture, the model formats and quantization
modes that make sense there, and the execution providers (onnxruntime) or
delegates (TFLite) to prefer, best first. ``edgeops.load`` uses the target's
preferences, filtered to what the installed runtime offers; ``edgeops convert``
uses the formats and quantization modes to choose defaults and refuse what cannot
work on the device. :func:`detect` guesses the target of the machine it runs on.
"""

from __future__ import annotations

import os
import platform
from dataclasses import dataclass

from .errors import UsageError

FORMATS = {".onnx": "onnx", ".tflite": "tflite", ".c": "c"}
"""The model formats a target takes and ``edgeops convert`` writes, by the file extension that names each."""

QUANTIZATION_MODES = ("none", "fp16", "dynamic", "int8")
"""Quantization modes: keep float, fp16 weights and activations, dynamic int8, static int8 (calibrated)."""


@dataclass(frozen=True)
class Target:
    """One kind of board; ``formats`` are values of :data:`FORMATS`, ``quantization`` of :data:`QUANTIZATION_MODES`."""

    name: str
    description: str
    arch: str
    formats: tuple[str, ...]
    quantization: tuple[str, ...]
    default_quantization: str
    ort_providers: tuple[str, ...]
    tflite_delegates: tuple[str, ...]
    cores: int | None = None
    static_shapes: bool = False


TARGETS: dict[str, Target] = {
    t.name: t
    for t in (
        Target("generic-cpu", "any x86-64 Linux/macOS/Windows machine", "x86_64",
               ("onnx", "tflite"), ("none", "fp16", "dynamic", "int8"), "dynamic",
               ("CPUExecutionProvider",), ("xnnpack",)),
        Target("rpi4", "Raspberry Pi 4 (Cortex-A72, 4 cores, no GPU)", "aarch64",
               ("tflite", "onnx"), ("none", "dynamic", "int8"), "int8",
               ("XnnpackExecutionProvider", "CPUExecutionProvider"), ("xnnpack",), cores=4),
        Target("rpi5", "Raspberry Pi 5 (Cortex-A76, 4 cores, no GPU)", "aarch64",
               ("tflite", "onnx"), ("none", "fp16", "dynamic", "int8"), "int8",
               ("XnnpackExecutionProvider", "CPUExecutionProvider"), ("xnnpack",), cores=4),
        Target("jetson-orin", "NVIDIA Jetson Orin (Ampere GPU, CUDA/TensorRT)", "aarch64",
               ("onnx",), ("none", "fp16", "int8"), "fp16",
               ("TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"), ("xnnpack",)),
        Target("jetson-nano", "NVIDIA Jetson Nano (Maxwell GPU, CUDA/TensorRT)", "aarch64",
               ("onnx",), ("none", "fp16"), "fp16",
               ("TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"), ("xnnpack",)),
        Target("cortex-m", "Arm Cortex-M microcontroller (TFLite Micro, C array)", "armv7e-m",
               ("tflite", "c"), ("int8",), "int8", (), (), static_shapes=True),
    )
}


def get_target(name: str | Target | None) -> Target:
    """The target called ``name``; ``None`` means the machine this runs on."""
    if isinstance(name, Target):
        return name
    if name is None:
        return detect()
    try:
        return TARGETS[name]
    except KeyError:
        raise UsageError(f"unknown target {name!r}; choose one of: {', '.join(TARGETS)}") from None


def detect() -> Target:
    """Best guess of the target this process runs on (Jetson, Raspberry Pi or generic)."""
    if os.path.exists("/etc/nv_tegra_release"):
        return TARGETS["jetson-orin"]
    model = _read("/proc/device-tree/model") or _read("/sys/firmware/devicetree/base/model")
    if "Raspberry Pi 5" in model:
        return TARGETS["rpi5"]
    if "Raspberry Pi" in model:
        return TARGETS["rpi4"]
    if platform.machine().lower() in ("aarch64", "arm64"):
        return TARGETS["rpi4"]  # the closest profile for an unknown Arm Linux board
    return TARGETS["generic-cpu"]


def _read(path: str) -> str:
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            return fh.read()
    except OSError:
        return ""
