"""The model zoo (issue 12, "Real models"): every zoo model converts in every mode or is refused with a reason.

The small models (trained on the digits, the 1-D keyword spotter, the autoencoder, the U-Net, the
paddle2onnx- and tf2onnx-style graphs, scikit-learn's) run in CI; the full-size ones (MobileNets,
ResNet-18, EfficientNet-B0, SqueezeNet, ShuffleNetV2, the detectors, CRNN, ViT) under ``-m slow``.
Models are built with ``benchmarks/zoo/build.py`` into ``$EDGEOPS_ZOO_DIR`` when it is set (a cache
reused across runs), else into a temporary folder. ``docs/model_zoo.md`` must list every zoo model.
"""

from __future__ import annotations

import importlib.util
import os
import re
from pathlib import Path

import pytest

for _module in ("onnx", "onnxruntime", "ai_edge_litert", "ai_edge_quantizer", "torch", "sklearn", "skl2onnx"):
    pytest.importorskip(_module)

from benchmarks.zoo import build as zb  # noqa: E402
from benchmarks.zoo import matrix as zm  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
ENTRIES = zb.entries()
HAS_ONNXSCRIPT = importlib.util.find_spec("onnxscript") is not None
SAMPLES = 16  # parity samples per model (the digits models: every test digit)


# Cells that crash the process today: bugs for the converter, kept visible. strict: a fix shows as XPASS,
# and the entry goes.
KNOWN_CRASHES: dict[tuple[str, str], str] = {}  # (model, mode) -> the bug; none today (the CRNN's fp16
# segfault is fixed: tests/convert/test_exporter_quirks.py)


# Cells that were refused or did not run and were fixed: they must convert (a regression shows as a failure).
_TFLITE = ("TFLite fp32", "TFLite dynamic", "TFLite int8", "C (int8)")
MUST_CONVERT = {
    **{("yolo_style", m): "no converter for Greater and Where (dynamo's Softplus)" for m in _TFLITE},
    **{(vit, m): "int8 DIV by Erf's x at its zero point stopped LiteRT" for vit in ("digits_vit", "vit_tiny")
       for m in ("TFLite int8", "C (int8)")},
    **{("crnn_text_rec", m): "calibration read an unallocated tensor (an unread LSTM gate)"
       for m in ("TFLite int8", "C (int8)")},
    ("crnn_text_rec", "ONNX fp16"): "onnxruntime segfaulted opening the result (a batch Transpose into MatMul)",
    ("db_text_det", "ONNX fp16"): "Resize's folded scales declared fp16: 'Inferred elem type differs'",
    ("sk_mlp", "ONNX int8"): "skl2onnx's [1, N] intercepts: 'truth value of an array ... is ambiguous'",
}


def slug(mode: zm.Mode) -> str:
    return re.sub(r"[^a-z0-9]+", "-", mode.name.lower()).strip("-")


def cases() -> list:
    out = []
    for e in ENTRIES:
        marks = [] if e.small else [pytest.mark.slow]
        if e.exporter == zb.DYNAMO and not HAS_ONNXSCRIPT:
            marks.append(pytest.mark.skip(reason="torch.onnx.export(dynamo=True) needs onnxscript"))
        for m in zm.MODES:
            crash = KNOWN_CRASHES.get((e.name, m.name))
            extra = [pytest.mark.xfail(strict=True, reason=crash)] if crash else []
            out.append(pytest.param(e, m, id=f"{e.name}-{slug(m)}", marks=marks + extra))
    return out


@pytest.fixture(scope="session")
def zoo_root(tmp_path_factory) -> Path:
    return Path(os.environ["EDGEOPS_ZOO_DIR"]) if os.environ.get("EDGEOPS_ZOO_DIR") \
        else tmp_path_factory.mktemp("zoo")


@pytest.fixture(scope="session")
def built(zoo_root):
    """Build a zoo model once per session and keep its fp32 onnxruntime reference outputs."""
    cache: dict[str, tuple[Path, dict]] = {}

    def get(entry: zb.Entry) -> tuple[Path, dict]:
        if entry.name not in cache:
            folder = zb.build(entry, zoo_root)
            limit = None if (folder / "labels.npy").is_file() else SAMPLES
            cache[entry.name] = (folder, zm.reference(folder, limit))
        return cache[entry.name]

    return get


@pytest.mark.parametrize("entry, mode", cases())
def test_zoo_model_converts_or_is_refused_with_a_reason(entry, mode, built, tmp_path):
    folder, ref = built(entry)
    limit = None if (folder / "labels.npy").is_file() else SAMPLES
    cell = zm.isolated_cell(folder, mode, tmp_path, ref, limit)  # a crash in a dependency fails this case only
    assert cell.error != "crash", cell.reason
    assert cell.converted or (entry.name, mode.name) not in MUST_CONVERT, \
        (MUST_CONVERT.get((entry.name, mode.name)), cell.reason)
    if not cell.converted:  # a refusal is edgeops' own error, and says why
        assert cell.error and cell.reason and len(cell.reason) > 20, cell
        return
    assert cell.size > 0 and cell.parity["cosine"] > 0.9, cell.parity
    if mode.name == "TFLite fp32":  # the exporter itself: same numbers as onnxruntime, within float32 rounding
        assert cell.parity["max_rel"] < 1e-3 and cell.parity["cosine"] > 0.99999, cell.parity
    if cell.parity["accuracy"] is not None:  # trained on the digits: quantization may cost a little accuracy
        fp32 = zm.meta(folder)["accuracy"]
        assert cell.parity["accuracy"] >= fp32 - 0.03, (cell.parity, fp32)
    if mode.suffix == ".c":
        assert cell.arena_bytes and cell.arena_bytes > 0


def test_the_c_array_holds_the_same_bytes_as_the_tflite_file(built, tmp_path):
    entry = next(e for e in ENTRIES if e.name == "digits_cnn")
    folder, _ = built(entry)
    cell = zm.convert_cell(folder, zm.MODE_BY_NAME["C (int8)"], tmp_path)
    data = Path(cell.path).read_bytes()
    assert data[4:8] == b"TFL3" and len(data) == cell.size


def test_docs_model_zoo_lists_every_model():
    doc = (ROOT / "docs" / "model_zoo.md").read_text()
    listed = set(re.findall(r"^\| (\w+) \| ", doc.split("## Models", 1)[1].split("##", 1)[0], re.M)) - {"model"}
    assert listed == {e.name for e in ENTRIES}, ("regenerate docs/model_zoo.md with "
                                                 "`python -m benchmarks.zoo.report --markdown docs/model_zoo.md`")
    matrix = doc.split("## Matrix", 1)[1].split("##", 1)[0]
    for e in ENTRIES:  # and every model has a cell for each mode in the matrix
        assert re.search(rf"^\| {e.name} \| (?:[^|]+\|){{{len(zm.MODES)}}}\s*$", matrix, re.M), e.name
