"""Opening bad model files gives a clear EdgeOpsError: never a segfault, never a raw backend traceback."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

import edgeops
from edgeops.errors import BackendUnavailableError, ModelFormatError, ModelNotFoundError, UsageError
from tests.conftest import HAS_ORT, needs_ort, needs_tflite


def _write(tmp_path, name, data):
    p = tmp_path / name
    p.write_bytes(data)
    return p


def test_missing_file(tmp_path):
    with pytest.raises(ModelNotFoundError, match="not found"):
        edgeops.load(tmp_path / "nope.onnx")


def test_directory(tmp_path):
    with pytest.raises(ModelNotFoundError, match="directory"):
        edgeops.load(tmp_path)


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads every file")
def test_unreadable_file(tmp_path):
    p = _write(tmp_path, "m.onnx", b"x")
    p.chmod(0)
    with pytest.raises(ModelNotFoundError, match="not readable"):
        edgeops.load(p)


@pytest.mark.parametrize("name, data, says", [
    pytest.param("empty.onnx", b"", "empty", id="empty-onnx"),
    pytest.param("empty.tflite", b"", "empty", id="empty-tflite"),
    pytest.param("text.onnx", b"hello, this is not a model\n" * 10, "not a valid ONNX model", id="text-as-onnx"),
    pytest.param("text.tflite", b"hello, this is not a model\n" * 10, "no TFL3 file identifier", id="text-as-tflite"),
    pytest.param("noext", b"\x89PNG\r\n\x1a\n" + b"\0" * 100,
                 "neither an ONNX nor a TFLite model|not a model edgeops can run", id="png-no-extension"),
    pytest.param("random.onnx", bytes(range(256)) * 4, "not a valid ONNX model", id="random-onnx"),
])
def test_not_a_model(tmp_path, name, data, says):
    if name.endswith(".onnx") and not HAS_ORT:
        pytest.skip("onnxruntime not installed")
    with pytest.raises(ModelFormatError, match=says) as info:
        edgeops.load(_write(tmp_path, name, data))
    assert str(tmp_path) in str(info.value)


@needs_ort
@pytest.mark.parametrize("keep", [0.1, 0.5, 0.9, 0.99])
def test_truncated_onnx(tmp_path, examples, keep):
    data = (examples / "digits_mlp.onnx").read_bytes()
    with pytest.raises(ModelFormatError, match="re-export"):
        edgeops.load(_write(tmp_path, "cut.onnx", data[: int(len(data) * keep)]))


@needs_tflite
@pytest.mark.parametrize("keep", [0.05, 0.3, 0.6, 0.95, 0.999])
def test_truncated_tflite(tmp_path, examples, keep):
    data = (examples / "digits_mlp.tflite").read_bytes()
    with pytest.raises(ModelFormatError, match=r"not a valid TFLite model: truncated or corrupt: .* runs past the end "
                       r"of the \d+-byte file"):
        edgeops.load(_write(tmp_path, "cut.tflite", data[: int(len(data) * keep)]))


@needs_ort
def test_tflite_data_under_an_onnx_name(tmp_path, examples):
    p = _write(tmp_path, "model.onnx", (examples / "digits_mlp.tflite").read_bytes())
    with pytest.raises(ModelFormatError, match="holds tflite data"):
        edgeops.load(p)


@needs_tflite
def test_corrupt_tflite_files_never_crash_the_process(tmp_path, examples):
    """Flip bytes all over a real .tflite; each load+run must succeed or raise EdgeOpsError, in a child
    process so that a segfault shows up as a failed test instead of killing the test run."""
    src = (examples / "digits_mlp.tflite").read_bytes()
    script = f"""
import random, numpy as np, edgeops
src = open({str(examples / 'digits_mlp.tflite')!r}, 'rb').read()
rng = random.Random(7)
ok = refused = 0
for case in range(150):
    data = bytearray(src)
    for _ in range(rng.choice([1, 2, 8])):
        data[rng.randrange(len(data))] = rng.randrange(256)
    path = {str(tmp_path)!r} + '/m.tflite'
    open(path, 'wb').write(bytes(data))
    try:
        m = edgeops.load(path)
        m.run(np.zeros((1, 64), np.float32))
        ok += 1
    except edgeops.EdgeOpsError:
        refused += 1
print(ok, refused)
"""
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    ok, refused = map(int, proc.stdout.split())
    assert ok + refused == 150 and refused > 0
    assert len(src) > 1000


@needs_tflite
def test_a_tflite_without_outputs_is_refused_not_run(tmp_path, examples):
    """Regression: digits_cnn_int8.tflite with bytes 98 to 156 zeroed (its SignatureDef's outputs) loaded,
    ran and returned {}."""
    data = bytearray((examples / "digits_cnn_int8.tflite").read_bytes())
    data[98:157] = bytes(157 - 98)
    with pytest.raises(ModelFormatError, match="not a valid TFLite model: corrupt: .* has no outputs"):
        edgeops.load(_write(tmp_path, "no_outputs.tflite", bytes(data)))


@needs_ort
@pytest.mark.parametrize("kind", ["outputs", "inputs"])
def test_an_onnx_graph_without_outputs_or_inputs_is_refused(make_onnx, kind):
    """Without outputs onnxruntime loaded the model and every run failed; without inputs it is a constant."""
    from onnx import TensorProto as T
    from onnx import helper

    if kind == "outputs":
        path = make_onnx([helper.make_node("Relu", ["x"], ["y"])], [("x", T.FLOAT, [1, 3])], [], name="no_outputs")
    else:
        const = helper.make_node("Constant", [], ["y"], value=helper.make_tensor("c", T.FLOAT, [1], [1.0]))
        path = make_onnx([const], [], [("y", T.FLOAT, [1])], name="no_inputs")
    with pytest.raises(ModelFormatError, match=f"{path}: not a valid ONNX model: the graph has no {kind}"):
        edgeops.load(path)


@needs_ort
def test_backend_must_fit_the_format(examples):
    with pytest.raises(UsageError, match="runs tflite models"):
        edgeops.load(examples / "digits_mlp.onnx", backend="litert")
    with pytest.raises(UsageError, match="unknown backend"):
        edgeops.load(examples / "digits_mlp.onnx", backend="tensorflow")
    with pytest.raises(UsageError, match="threads"):
        edgeops.load(examples / "digits_mlp.onnx", threads=0)


def test_missing_backend_package_says_what_to_install(examples, monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_ort(name, globals=None, locals=None, fromlist=(), level=0):
        if level == 0 and name.split(".")[0] == "onnxruntime":
            raise ImportError("No module named 'onnxruntime'")
        return real_import(name, globals, locals, fromlist, level)

    monkeypatch.setattr(builtins, "__import__", no_ort)
    with pytest.raises(BackendUnavailableError, match=r"pip install 'edgeops\[onnx\]'"):
        edgeops.load(examples / "digits_mlp.onnx")
