"""`import edgeops` stays light: numpy and the standard library, no engines, no converters."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

HEAVY = ["onnx", "onnxruntime", "ai_edge_litert", "tflite_runtime", "paho", "cryptography", "torch",
         "tensorflow", "serial", "psutil", "matplotlib", "sklearn", "rich"]


@pytest.mark.parametrize("statement", [
    "import edgeops",
    "import edgeops; edgeops.load; edgeops.Model; edgeops.TensorSpec",
    "import edgeops.formats",
])
def test_import_pulls_in_nothing_heavy(statement):
    code = f"{statement}\nimport sys, json\nprint(json.dumps(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    loaded = set(json.loads(out))
    heavy = sorted(m for m in loaded if m.split(".")[0] in HEAVY)
    assert heavy == [], f"{statement!r} imported {heavy}"
