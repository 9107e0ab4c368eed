"""Export the example ONNX models to TFLite with edgeops (no TensorFlow) and keep the results.

    python examples/digits/export_tflite.py [--models examples/models]

Writes ``digits_cnn.tflite`` and ``digits_mobilenet.tflite`` (float32, drop-ins for the ONNX
models), ``digits_cnn_int8.tflite`` and ``digits_mobilenet_int8.tflite`` (static int8 with float I/O, calibrated on the models'
``*_calib.npz``). The device-side tests run these files in whichever TFLite runtime is installed
(tflite-runtime 2.14 with numpy<2 on Raspberry Pi OS, LiteRT elsewhere) against the ONNX models in
onnxruntime, so the exporter's output is checked on the runtime that has no exporter next to it.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import edgeops

FILES = [  # (source, output, quantize)
    ("digits_cnn", "digits_cnn.tflite", "none"),
    ("digits_cnn", "digits_cnn_int8.tflite", "int8"),
    ("digits_mobilenet", "digits_mobilenet.tflite", "none"),
    ("digits_mobilenet", "digits_mobilenet_int8.tflite", "int8"),
]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default=str(Path(__file__).resolve().parents[1] / "models"))
    models = Path(ap.parse_args().models)
    for src, out, mode in FILES:
        report = edgeops.convert(models / f"{src}.onnx", models / out, quantize=mode, profile=False,
                                 calibration=str(models / f"{src}_calib.npz") if mode == "int8" else None)
        print(f"{out}: {report.size_after} bytes, ops {report.ops_after}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
