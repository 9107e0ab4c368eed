"""``edgeops flash`` checks what it was given before it touches the target.

Regression: ``flash model.onnx --to EMPTYDIR`` exited 1 (as if a device had refused a bundle) and
left ``.lock`` and ``slots/`` in the folder; a model is not a bundle, which is bad input: exit 2,
and the target stays as it was.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.conftest import EXAMPLES


def cli(*args):
    return subprocess.run([sys.executable, "-m", "edgeops", *map(str, args)], capture_output=True, text=True)


@pytest.mark.parametrize("name, content, words", [
    pytest.param("digits_mlp.onnx", (EXAMPLES / "digits_mlp.onnx").read_bytes(), "is an ONNX model", id="onnx"),
    pytest.param("digits_mlp.tflite", (EXAMPLES / "digits_mlp.tflite").read_bytes(), "is a TFLite model",
                 id="tflite"),
    pytest.param("empty.eob", b"", "is empty", id="empty"),
    pytest.param("junk.eob", b"junk" * 200, "is not an edgeops bundle", id="junk"),
])
def test_flashing_what_is_not_a_bundle_is_exit_2_and_leaves_the_target_empty(tmp_path, name, content, words):
    src, card = tmp_path / name, tmp_path / "card"
    src.write_bytes(content)
    card.mkdir()
    proc = cli("flash", src, "--to", card)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.startswith(f"error: {src} {words}, and flash ships bundles (.eob); make one with "
                                  "`edgeops bundle create ")
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
    assert list(card.iterdir()) == []


def test_a_model_given_to_the_broker_flash_is_exit_2_before_any_connection(tmp_path):
    proc = cli("flash", EXAMPLES / "digits_mlp.onnx", "--broker", "mqtt://127.0.0.1:1", "--fleet", "demo",
               "--device", "pi-01")
    assert proc.returncode == 2, proc.stderr
    assert "is an ONNX model, and flash ships bundles" in proc.stderr


def test_the_suggested_command_makes_a_bundle_that_flashes(tmp_path):
    pytest.importorskip("onnxruntime")
    model, card = tmp_path / "digits.onnx", tmp_path / "card"
    model.write_bytes((EXAMPLES / "digits_mlp.onnx").read_bytes())
    card.mkdir()
    hint = cli("flash", model, "--to", card).stderr
    suggested = hint.split("`")[1].split()
    assert suggested[:3] == ["edgeops", "bundle", "create"]
    made = cli(*suggested[1:])
    assert made.returncode == 0, made.stderr
    proc = cli("flash", tmp_path / "digits.eob", "--to", card)
    assert proc.returncode == 0, proc.stderr
