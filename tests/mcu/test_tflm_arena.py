"""The tensor arena of ``--format c``, measured in TFLite Micro: the model allocates and runs at the
measured size and not one byte below; there it gives LiteRT's outputs (int8 within one step, float
within 1e-5); the header states the figure, the margin and the estimate; without tflite-micro the
header says so and the estimate stands."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("ai_edge_litert")
pytest.importorskip("tflite_micro")

from harness import ROOT, litert_run, tflm_run  # noqa: E402

from edgeops.convert import tflm_arena  # noqa: E402
from edgeops.convert.carray import write_c_array  # noqa: E402

MODELS = ROOT / "examples" / "models"
EXAMPLES = ["digits_mlp", "digits_cnn", "digits_cnn_int8", "digits_mobilenet", "digits_mobilenet_int8"]


def sample_for(name: str, data: bytes) -> np.ndarray:
    from edgeops.formats.tflite_file import read_tflite

    spec = read_tflite(data).inputs[0]
    x = np.load(MODELS / f"{name.replace('_int8', '')}_test.npz")["pixels" if "mlp" in name else "image"][:1]
    return x.reshape([d or 1 for d in spec.shape]).astype(spec.dtype)


@pytest.mark.parametrize("name", EXAMPLES)
def test_measured_arena_is_the_smallest_that_runs_and_matches_litert(name, tmp_path):
    data = (MODELS / f"{name}.tflite").read_bytes()
    m = tflm_arena.measure_arena(data)
    assert m.minimum is not None, m.note
    assert m.margin >= 256 and m.margin % 16 == 0 and m.size == m.minimum + m.margin
    model = tmp_path / "m.tflite"
    model.write_bytes(data)
    with tempfile_log() as log:
        worker = tflm_arena._Worker(str(model), 1, log)
        try:
            assert worker.runs(m.minimum) and not worker.runs(m.minimum - 1)
        finally:
            worker.close()
    x = sample_for(name, data)
    ours = tflm_run(data, [x], arena_size=m.minimum)[0]
    ref = litert_run(data, [x])[0]
    if ref.dtype == np.int8:
        assert np.abs(ours.astype(int) - ref.astype(int)).max() <= 1
    else:
        np.testing.assert_allclose(ours, ref, atol=1e-5, rtol=0)
    assert np.argmax(ours) == np.argmax(litert_run(data, [x], reference=False)[0])


def tempfile_log():
    import tempfile

    return tempfile.TemporaryFile()


def test_header_states_the_measurement_the_margin_and_the_estimate(tmp_path):
    out = write_c_array((MODELS / "digits_cnn_int8.tflite").read_bytes(), tmp_path / "cnn.c")
    header = Path(out.h_path).read_text()
    m = out.measured
    assert f"#define CNN_ARENA_MEASURED {m.minimum}" in header and f"#define CNN_ARENA_MARGIN {m.margin}" in header
    assert "#define CNN_ARENA_SIZE (CNN_ARENA_MEASURED + CNN_ARENA_MARGIN)" in header
    assert f"#define CNN_ARENA_ESTIMATE {out.arena.bytes}" in header
    assert "64-bit host build" in header and "32-bit" in header
    assert out.arena_bytes == m.minimum + m.margin


def test_without_tflite_micro_the_header_says_so_and_keeps_the_estimate(tmp_path, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda n, *a: None if n == "tflite_micro" else real(n, *a))
    out = write_c_array((MODELS / "digits_mlp.tflite").read_bytes(), tmp_path / "mlp.c")
    header = Path(out.h_path).read_text()
    assert "tflite-micro package is not importable" in header
    assert "#define MLP_ARENA_SIZE MLP_ARENA_ESTIMATE" in header and out.arena_bytes == out.arena.bytes


def test_a_model_tflite_micro_cannot_run_keeps_the_estimate():
    data = (ROOT / "tests" / "formats" / "data" / "tiny_int8.tflite").read_bytes()
    m = tflm_arena.measure_arena(data)
    assert (m.minimum is None) == m.note.startswith("not measured")
