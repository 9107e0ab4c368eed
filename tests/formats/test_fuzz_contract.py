"""The readers' contract under fuzzing: any bytes give a summary or a ModelFormatError, nothing else.

Deterministic (seeded) and bounded to a few seconds; stdlib only, on the committed models.
Set EDGEOPS_FUZZ_CASES to run more mutants per model (default 1500).
"""

from __future__ import annotations

import json
import os
import random
from pathlib import Path

import pytest

from edgeops.errors import ModelFormatError
from edgeops.formats import (
    ModelSummary,
    onnx_external_files,
    read_onnx,
    read_tflite,
    sniff_format,
    tflite_io_map,
)

DATA = Path(__file__).resolve().parent / "data"
MODELS = ("tiny.tflite", "tiny_int8.tflite", "tiny.onnx")
CASES = int(os.environ.get("EDGEOPS_FUZZ_CASES", "1500"))
READERS = (read_onnx, read_tflite, tflite_io_map, onnx_external_files)


def check(name: str, data: bytes, tally: dict) -> None:
    """Every reader on ``data``: a result or a ModelFormatError; anything else fails the test."""
    assert sniff_format(data) in (None, "onnx", "tflite", "zip"), name
    for reader in READERS:
        try:
            result = reader(data)
        except ModelFormatError as exc:
            assert "re-export" in str(exc) or "check that" in str(exc), (name, str(exc))
            tally["rejected"] += 1
            continue
        except Exception as exc:  # the contract: nothing else escapes
            pytest.fail(f"{reader.__name__} raised {type(exc).__name__} on case {name!r}: {exc}")
        if isinstance(result, ModelSummary):
            json.dumps(result.to_dict())
        tally["accepted"] += 1


def junk() -> list[tuple[str, bytes]]:
    rng = random.Random(20240607)
    tflite, onnx = (DATA / "tiny.tflite").read_bytes(), (DATA / "tiny.onnx").read_bytes()
    cases = [
        ("empty", b""),
        ("text", b"this is not a model\n" * 20),
        ("png-header", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x10"),
        ("zip-header", b"PK\x03\x04\x14\x00\x00\x00\x08\x00"),
        ("identifier-only", b"\x00\x00\x00\x00TFL3"),
        ("zeros-4096", bytes(4096)),
        ("ones-4096", b"\xff" * 4096),
        ("tflite-with-onnx-tail", tflite[:8] + onnx),
        ("onnx-head-with-tflite-body", onnx[:16] + tflite[16:]),
    ]
    for i in range(300):
        cases.append((f"random#{i}", rng.randbytes(rng.randrange(0, 2048))))
        cases.append((f"random-with-TFL3#{i}", rng.randbytes(4) + b"TFL3" + rng.randbytes(rng.randrange(0, 1024))))
        cases.append((f"random-onnx-like#{i}", b"\x08\x08\x12" + rng.randbytes(rng.randrange(0, 1024))))
    return cases


@pytest.mark.parametrize("model", MODELS)
def test_truncated_at_every_offset(model):
    data, tally = (DATA / model).read_bytes(), {"accepted": 0, "rejected": 0}
    for cut in range(len(data)):
        check(f"{model}[:{cut}]", data[:cut], tally)
    assert tally["rejected"] > len(data)  # each cut is rejected by at least the right reader


@pytest.mark.parametrize("model", MODELS)
def test_mutated(model, mutants):
    tally = {"accepted": 0, "rejected": 0}
    for name, data in mutants((DATA / model).read_bytes(), seed=1, count=CASES):
        check(f"{model} {name}", data, tally)
    assert tally["rejected"] > CASES


def test_junk_and_random_bytes():
    tally = {"accepted": 0, "rejected": 0}
    for name, data in junk():
        check(name, data, tally)
    assert tally["accepted"] == 0  # random bytes never pass for a model


def test_reader_rejects_the_other_format():
    with pytest.raises(ModelFormatError, match="no TFL3 file identifier"):
        read_tflite((DATA / "tiny.onnx").read_bytes())
    with pytest.raises(ModelFormatError, match="not a valid ONNX model"):
        read_onnx((DATA / "tiny.tflite").read_bytes())
