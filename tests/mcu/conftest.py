"""tests/mcu: generated C checked bit for bit against TFLite Micro. The modules skip themselves where
gcc, LiteRT's schema module (ai-edge-litert) or the tflite-micro interpreter is missing."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import GCC, kernel_objects  # noqa: E402


@pytest.fixture(scope="session")
def kernels(tmp_path_factory) -> list[str]:
    if GCC is None:
        pytest.skip("gcc not installed")
    return kernel_objects(tmp_path_factory.mktemp("kernels"))
