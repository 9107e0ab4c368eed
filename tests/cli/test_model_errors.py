"""One fault, one message: every command that opens a model file says the same words for a missing
or a corrupt one (from :mod:`edgeops.formats`), as one line with exit 2 and no traceback.

Regression: ``info`` said "no such file; check the path" where ``bench`` and ``validate`` said
"model file … not found", and ``bench``/``validate`` passed on onnxruntime's raw "INVALID_PROTOBUF"
where ``info`` and ``convert`` decoded the protobuf and said where it breaks.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys

import pytest

from edgeops.errors import ModelLoadError
from edgeops.formats import read_summary
from tests.conftest import EXAMPLES, needs_ort

pytestmark = needs_ort

MLP, DATA = EXAMPLES / "digits_mlp.onnx", EXAMPLES / "digits_mlp_test.npz"

COMMANDS = {
    "info": ["info", "{model}"],
    "bench": ["bench", "{model}", "--runs", "2", "--warmup", "0"],
    "validate-reference": ["validate", "{model}", MLP, "--data", DATA, "--no-latency"],
    "validate-candidate": ["validate", MLP, "{model}", "--data", DATA, "--no-latency"],
    "convert": ["convert", "{model}", "-o", "{tmp}/out.onnx"],
    "bundle-create": ["bundle", "create", "{model}", "-o", "{tmp}/b.eob", "--name", "b", "--version", "1.0.0"],
    "flash": ["flash", "{model}", "--to", "{tmp}"],
}

FAULTS = {
    "missing": None,
    "corrupt": b"\x08\x07garbage" * 10,
    "truncated": MLP.read_bytes()[:300],
}


def run(command, model, tmp):
    argv = [str(a).format(model=model, tmp=tmp) for a in COMMANDS[command]]
    return subprocess.run([sys.executable, "-m", "edgeops", *argv], capture_output=True, text=True)


@pytest.mark.parametrize("fault", list(FAULTS))
@pytest.mark.parametrize("command", [c for c in COMMANDS if c != "flash"])
def test_a_bad_model_file_gets_the_same_message_in_every_command(tmp_path, command, fault):
    if command == "convert" and fault != "missing" and importlib.util.find_spec("onnx") is None:
        pytest.skip("convert decodes a corrupt file with onnx, which this environment lacks")
    model = tmp_path / "model.onnx"
    if FAULTS[fault] is not None:
        model.write_bytes(FAULTS[fault])
    with pytest.raises(ModelLoadError) as expected:
        read_summary(model)
    proc = run(command, model, tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr == f"error: {expected.value}\n"
    if fault == "missing":
        assert str(expected.value) == f"{model}: not found (no such file); check the path"
    else:
        assert "INVALID_PROTOBUF" not in proc.stderr and "re-export the model" in proc.stderr
    assert not (tmp_path / "out.onnx").exists() and not (tmp_path / "b.eob").exists()


def test_flash_says_the_same_for_a_missing_bundle(tmp_path):
    proc = run("flash", tmp_path / "nope.eob", tmp_path)
    assert proc.returncode == 2
    assert proc.stderr == f"error: {tmp_path / 'nope.eob'}: not found (no such file); check the path\n"
