"""Fixtures for the format readers: the tiny models (built fresh, or the committed copies) and
a deterministic mutator for the fuzz tests.

The committed models in ``data/`` and ``data/expected.json`` let the stdlib-only tests run
where neither onnx nor ai_edge_litert is installed (the numpy<2 / tflite_runtime env).
"""

from __future__ import annotations

import importlib.util
import json
import random
from collections.abc import Iterator
from pathlib import Path

import pytest

DATA = Path(__file__).resolve().parent / "data"
COMMITTED = ("tiny.tflite", "tiny_int8.tflite", "tiny.onnx")


def _load_script(name: str):
    spec = importlib.util.spec_from_file_location(f"edgeops_tests_formats_{name}", DATA / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def make_models():
    """``data/make_models.py`` as a module: ``build_tflite()``, ``build_onnx()``, ..."""
    return _load_script("make_models")


@pytest.fixture(scope="session")
def make_tflite_tables():
    return _load_script("make_tflite_tables")


@pytest.fixture(scope="session")
def committed() -> dict[str, bytes]:
    """File name -> bytes of the committed tiny models."""
    return {name: (DATA / name).read_bytes() for name in COMMITTED}


@pytest.fixture(scope="session")
def expected() -> dict[str, dict]:
    """File name -> the summary (without size_bytes) a reader must report."""
    return json.loads((DATA / "expected.json").read_text())


@pytest.fixture(scope="session")
def tflite_bytes(make_models) -> bytes:
    """FULLY_CONNECTED + SOFTMAX with a SignatureDef, built with the LiteRT schema."""
    pytest.importorskip("ai_edge_litert")
    return make_models.build_tflite()


def mutate(data: bytes, seed: int, count: int) -> Iterator[tuple[str, bytes]]:
    """``count`` deterministic mutants of ``data``, each named by what was done to it.

    Byte and bit flips; 32-bit words that hold small numbers (indices, counts, types,
    shapes) rewritten to other small numbers; any word set to an edge value; a chunk copied
    from elsewhere in the file.
    """
    rng = random.Random(seed)
    n = len(data)
    words = list(range(0, n - 3, 4))
    small = [p for p in words if int.from_bytes(data[p : p + 4], "little") < 64] or words
    edges = [-1, -2, 0, 1, 2, 3, 4, 8, 16, n, n - 4, 0xFFFF, 0x10000, 0x7FFFFFFF, -(1 << 31)]
    for i in range(count):
        out = bytearray(data)
        r = rng.random()
        if r < 0.3:
            what = []
            for _ in range(rng.randint(1, 4)):
                pos, value = rng.randrange(n), rng.randrange(256)
                out[pos] = value
                what.append(f"{pos}={value}")
            name = "bytes@" + ",".join(what)
        elif r < 0.45:
            pos, bit = rng.randrange(n), rng.randrange(8)
            out[pos] ^= 1 << bit
            name = f"bit@{pos}.{bit}"
        elif r < 0.75:
            pos, value = rng.choice(small), rng.randrange(16)
            out[pos : pos + 4] = value.to_bytes(4, "little")
            name = f"small-word@{pos}={value}"
        elif r < 0.9:
            pos, value = rng.choice(words), rng.choice(edges)
            out[pos : pos + 4] = (value & 0xFFFFFFFF).to_bytes(4, "little")
            name = f"word@{pos}={value}"
        else:
            src, dst, length = rng.randrange(n), rng.randrange(n), rng.randint(1, 16)
            chunk = data[src : src + length]
            out[dst : dst + len(chunk)] = chunk
            del out[n:]
            name = f"copy@{src}->{dst}+{length}"
        yield f"seed{seed}#{i} {name}", bytes(out)


@pytest.fixture(scope="session")
def mutants():
    """The mutator: ``mutants(data, seed, count) -> iterator of (name, bytes)``."""
    return mutate
