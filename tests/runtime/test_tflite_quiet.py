"""LiteRT's stderr chatter is silenced where edgeops creates the interpreter; its real errors are not.

Regression: every ``.tflite`` load printed ``INFO: Created TensorFlow Lite XNNPACK delegate for CPU.``
on stderr, in every command, ``--json`` runs included. The delegate is reported in
``Model.providers`` (and ``edgeops info --json``'s ``runtime``) instead.
"""

from __future__ import annotations

import os
import sys
import threading

import pytest

import edgeops
from edgeops.errors import ModelFormatError
from edgeops.runtime.backends import tflite as tflite_backend
from tests.conftest import EXAMPLES, needs_tflite


@needs_tflite
def test_loading_a_tflite_model_writes_nothing_to_stderr(capfd):
    models = [edgeops.load(p) for p in sorted(EXAMPLES.glob("*.tflite"))]
    err = capfd.readouterr().err
    assert "XNNPACK" not in err and err == ""
    assert {tuple(m.providers) for m in models} == {("xnnpack",)}


@needs_tflite
def test_loads_from_many_threads_restore_stderr(capfd):
    errors = []

    def load():
        try:
            edgeops.load(EXAMPLES / "digits_mlp.tflite")
        except Exception as exc:  # noqa: BLE001 - collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=load) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    os.write(2, b"still stderr\n")
    assert capfd.readouterr().err == "still stderr\n"


class _Chatty:
    """An interpreter module whose Interpreter writes to fd 2 like LiteRT's C++ code, then fails or not."""

    class OpResolverType:
        BUILTIN_WITHOUT_DEFAULT_DELEGATES = 1

    def __init__(self, fail: bool):
        self.fail = fail

    def Interpreter(self, **kwargs):  # noqa: N802 - LiteRT's name
        os.write(2, b"INFO: Created TensorFlow Lite XNNPACK delegate for CPU.\n")
        os.write(2, b"ERROR: Didn't find op for builtin opcode 'FROBNICATE' version '1'.\n")
        if self.fail:
            raise RuntimeError("Encountered unresolved custom op: Frobnicate.")
        raise _Stop()


class _Stop(Exception):
    """Raised after a successful creation: the rest of the backend's set-up is not under test."""


@pytest.mark.parametrize("fail", [True, False], ids=["refused", "created"])
def test_what_the_interpreter_says_besides_the_routine_line_is_kept(monkeypatch, capfd, fail):
    monkeypatch.setattr(tflite_backend, "import_interpreter", lambda runtime: ("litert", _Chatty(fail)))
    path = EXAMPLES / "digits_mlp.tflite"
    if fail:
        with pytest.raises(ModelFormatError) as info:
            tflite_backend.TFLiteBackend(str(path), threads=None, providers=None, target=None)
        message = str(info.value)
        assert "Encountered unresolved custom op: Frobnicate." in message
        assert "Didn't find op for builtin opcode 'FROBNICATE'" in message and "XNNPACK" not in message
        assert capfd.readouterr().err == ""
    else:
        with pytest.raises(_Stop):
            tflite_backend.TFLiteBackend(str(path), threads=None, providers=None, target=None)
        # fd 2 is restored even when the block raises, and the non-routine line is not swallowed
        err = capfd.readouterr().err
        assert "XNNPACK" not in err and "Didn't find op for builtin opcode 'FROBNICATE'" in err
    os.write(2, b"after\n")
    sys.stderr.write("python after\n")
    sys.stderr.flush()
    assert capfd.readouterr().err.endswith("after\npython after\n")
