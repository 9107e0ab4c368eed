"""read_summary, sniff_format and the summary types, on the committed tiny models (stdlib only)."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from edgeops.errors import EdgeOpsError, ModelFormatError, ModelNotFoundError
from edgeops.formats import (
    ModelSummary,
    TensorInfo,
    read_onnx,
    read_summary,
    read_tflite,
    sniff_format,
    tflite_io_map,
)

DATA = Path(__file__).resolve().parent / "data"
COMMITTED = ("tiny.tflite", "tiny_int8.tflite", "tiny.onnx")


@pytest.mark.parametrize("name", COMMITTED)
def test_read_summary_reports_what_the_model_declares(name, expected):
    summary = read_summary(DATA / name)
    want = dict(expected[name], size_bytes=(DATA / name).stat().st_size)
    assert summary.to_dict() == want


@pytest.mark.parametrize("name", COMMITTED)
def test_ops_are_listed_most_frequent_first(name):
    counts = list(read_summary(DATA / name).ops.values())
    assert counts == sorted(counts, reverse=True)


@pytest.mark.parametrize("name", COMMITTED)
def test_to_dict_is_json_ready(name):
    summary = read_summary(DATA / name)
    again = json.loads(json.dumps(summary.to_dict()))
    assert again == summary.to_dict()


def test_dynamic_dims_are_none_and_json_null():
    summary = read_summary(DATA / "tiny.tflite")
    assert summary.inputs == (TensorInfo("x", (None, 4), "float32"),)
    assert '"shape": [null, 4]' in json.dumps(summary.to_dict())


def test_summaries_are_frozen():
    summary = read_summary(DATA / "tiny.onnx")
    assert isinstance(summary, ModelSummary)
    with pytest.raises(dataclasses.FrozenInstanceError, match="cannot assign to field 'format'"):
        summary.format = "tflite"


def test_tflite_io_map_names_signature_inputs_by_tensor_index(committed):
    assert tflite_io_map(committed["tiny.tflite"]) == {"inputs": {"x": 0}, "outputs": {"probs": 4}}


def test_tflite_io_map_without_signature_uses_subgraph_tensor_names(committed):
    assert tflite_io_map(committed["tiny_int8.tflite"]) == {"inputs": {"x": 0}, "outputs": {"y": 7}}


@pytest.mark.parametrize(
    ("head", "kind"),
    [
        pytest.param((DATA / "tiny.tflite").read_bytes()[:64], "tflite", id="tflite"),
        pytest.param((DATA / "tiny.onnx").read_bytes()[:64], "onnx", id="onnx"),
        pytest.param(b"PK\x03\x04\x14\x00\x00\x00", "zip", id="zip"),
        pytest.param(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", None, id="png"),
        pytest.param(b"hello world, this is text\n", None, id="text"),
        pytest.param(b"", None, id="empty"),
        pytest.param(b"\x08\x08\x12\x0dedge", "onnx", id="onnx-cut-inside-a-field"),
        pytest.param(b"\x08\x00", None, id="ir-version-0"),
        pytest.param(b"\x0a\x02hi", None, id="field-1-with-wrong-wire-type"),
    ],
)
def test_sniff_format(head, kind):
    assert sniff_format(head) == kind


def write(tmp_path, name: str, data: bytes):
    path = tmp_path / name
    path.write_bytes(data)
    return path


def zip_bytes(tmp_path) -> bytes:
    with zipfile.ZipFile(tmp_path / "b.zip", "w") as z:
        z.writestr("model.onnx", b"x")
    return (tmp_path / "b.zip").read_bytes()


@pytest.mark.parametrize(
    ("name", "content", "says"),
    [
        pytest.param("m.onnx", b"", "empty", id="empty-onnx"),
        pytest.param("m.tflite", b"", "empty", id="empty-tflite"),
        pytest.param("m.bin", b"", "empty", id="empty-unknown-extension"),
        pytest.param("m.onnx", b"just some text\n", "not a valid ONNX model", id="text-named-onnx"),
        pytest.param("m.tflite", b"just some text\n", "no TFL3 file identifier", id="text-named-tflite"),
        pytest.param("notes.txt", b"just some text\n", "neither an ONNX nor a TFLite", id="text"),
        pytest.param("m.png", b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR", "neither an ONNX nor a TFLite", id="png"),
        pytest.param("m.tflite", (DATA / "tiny.tflite").read_bytes()[:500], "truncated", id="cut-tflite"),
        pytest.param("m.onnx", (DATA / "tiny.onnx").read_bytes()[:300], "truncated", id="cut-onnx"),
        pytest.param("m.zip", None, "zip archive", id="zip"),
    ],
)
def test_unreadable_content_is_a_format_error_naming_the_file(tmp_path, name, content, says):
    path = write(tmp_path, name, zip_bytes(tmp_path) if content is None else content)
    with pytest.raises(ModelFormatError) as info:
        read_summary(path)
    message = str(info.value)
    assert str(path) in message
    assert says in message
    assert any(todo in message for todo in ("re-export", "pass a .onnx", "extract the model"))


def test_truncation_message_says_where_and_how_big_the_file_is(tmp_path):
    data = (DATA / "tiny.onnx").read_bytes()[:300]
    with pytest.raises(ModelFormatError, match=r"truncated: field .* at byte \d+ runs past the end "
                       r"of the 300-byte file; re-export the model or check the copy"):
        read_summary(write(tmp_path, "m.onnx", data))


@pytest.mark.parametrize("where, says", [("missing", "no such file"), ("directory", "is a directory")])
def test_missing_or_unreadable_path_is_model_not_found(tmp_path, where, says):
    path = tmp_path / "nope.onnx" if where == "missing" else tmp_path
    with pytest.raises(ModelNotFoundError, match=says) as info:
        read_summary(path)
    assert str(path) in str(info.value)
    assert isinstance(info.value, EdgeOpsError)


def test_large_files_are_mapped_not_read(tmp_path):
    """Files of 64 MiB and more go through mmap; trailing bytes do not bother a flatbuffer."""
    path = write(tmp_path, "big.tflite", (DATA / "tiny.tflite").read_bytes())
    with open(path, "r+b") as fh:
        fh.truncate(64 << 20)  # sparse: no 64 MiB written
    summary = read_summary(path)
    assert summary.size_bytes == 64 << 20
    assert summary.ops == read_summary(DATA / "tiny.tflite").ops


def test_content_wins_over_the_extension(tmp_path):
    path = write(tmp_path, "model.onnx", (DATA / "tiny.tflite").read_bytes())
    assert read_summary(path).format == "tflite"


def test_readers_take_any_bytes_like(committed):
    data = committed["tiny.tflite"]
    assert read_tflite(bytearray(data)) == read_tflite(memoryview(data)) == read_tflite(data)
    onnx_data = committed["tiny.onnx"]
    assert read_onnx(memoryview(onnx_data)) == read_onnx(onnx_data)


def test_source_names_the_file_in_reader_errors():
    with pytest.raises(ModelFormatError, match=r"^my\.tflite: not a valid TFLite model"):
        read_tflite(b"1234TFL3", source="my.tflite")


def test_import_loads_no_framework():
    code = (
        "import sys, edgeops.formats\n"
        "heavy = {'onnx', 'onnxruntime', 'flatbuffers', 'ai_edge_litert', 'tflite_runtime'}\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in heavy))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=DATA.parents[2])
    assert out.stdout.strip() == "[]"


EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "models"


def without_outputs() -> bytes:
    """digits_cnn_int8.tflite with bytes 98 to 156 zeroed: its SignatureDef then lists no outputs."""
    data = bytearray((EXAMPLES / "digits_cnn_int8.tflite").read_bytes())
    data[98:157] = bytes(157 - 98)
    return bytes(data)


def test_a_tflite_without_outputs_is_a_format_error(tmp_path):
    """Regression: this corrupt file loaded, ran and returned {} (and `edgeops info` exited 0)."""
    path = write(tmp_path, "m.tflite", without_outputs())
    for read in (read_summary, lambda p: read_tflite(p.read_bytes(), source=str(p)),
                 lambda p: tflite_io_map(p.read_bytes(), source=str(p))):
        with pytest.raises(ModelFormatError, match=f"{path}: not a valid TFLite model: .*has no outputs"):
            read(path)
    proc = subprocess.run([sys.executable, "-m", "edgeops", "info", str(path)], capture_output=True, text=True)
    assert proc.returncode == 2 and proc.stdout == "", proc.stderr
    assert proc.stderr.startswith("error: ") and "has no outputs" in proc.stderr and proc.stderr.count("\n") == 1


def test_a_model_without_outputs_or_inputs_is_a_format_error(tmp_path):
    from tests.formats.test_onnx_wire import graph, model

    for data, says in ((model(graph(outputs=())), "no outputs"), (model(graph(inputs=())), "no inputs")):
        with pytest.raises(ModelFormatError, match=f"not a valid ONNX model: the graph has {says}"):
            read_summary(write(tmp_path, "m.onnx", data))
