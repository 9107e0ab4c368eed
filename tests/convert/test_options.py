"""ConvertOptions: one documented, frozen object for every knob of edgeops.convert, the keywords still taken,
and command-line choices that come from the code's own lists."""

from __future__ import annotations

import ast
import dataclasses
import inspect

import click
import pytest

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

import edgeops.convert  # noqa: E402
from edgeops.cli import cli  # noqa: E402
from edgeops.convert.api import convert  # noqa: E402
from edgeops.convert.options import CALIBRATION_METHODS, FORMATS, MODES, ConvertOptions  # noqa: E402
from edgeops.errors import UsageError  # noqa: E402
from edgeops.targets import TARGETS  # noqa: E402


def _same_result(a, b):
    da, db = a.to_dict(), b.to_dict()
    for key in ("seconds", "output", "profile"):
        da.pop(key), db.pop(key)
    return da == db


def test_options_object_and_keywords_convert_alike(tmp_path, examples):
    src, calib = examples / "digits_mlp.onnx", str(examples / "digits_mlp_calib.npz")
    by_keywords = edgeops.convert(src, tmp_path / "k.onnx", quantize="int8", calibration=calib, per_channel=False)
    options = ConvertOptions(quantize="int8", calibration=calib, per_channel=False)
    by_options = convert(src, tmp_path / "o.onnx", options=options)
    assert _same_result(by_keywords, by_options)
    assert (tmp_path / "k.onnx").read_bytes() == (tmp_path / "o.onnx").read_bytes()
    assert by_options.quantize == "int8" and "per-tensor" in " ".join(by_options.steps)


def test_keywords_given_with_options_replace_its_fields(tmp_path, examples):
    options = ConvertOptions(quantize="fp16")
    report = convert(examples / "digits_mlp.onnx", tmp_path / "d.onnx", options=options, quantize="dynamic")
    assert report.quantize == "dynamic"
    assert options.quantize == "fp16"  # the caller's object is left alone


def test_options_are_frozen_and_every_field_is_documented():
    with pytest.raises(dataclasses.FrozenInstanceError):
        ConvertOptions().quantize = "int8"  # type: ignore[misc]
    tree = ast.parse(inspect.getsource(ConvertOptions))
    body = tree.body[0].body  # type: ignore[attr-defined]
    documented = {stmt.target.id for stmt, after in zip(body, body[1:])
                  if isinstance(stmt, ast.AnnAssign) and isinstance(after, ast.Expr)
                  and isinstance(after.value, ast.Constant) and isinstance(after.value.value, str)}
    assert documented == {f.name for f in dataclasses.fields(ConvertOptions)}


@pytest.mark.parametrize("call, error, match", [
    pytest.param(lambda s, o: convert(s, o, options={"quantize": "int8"}), UsageError, "ConvertOptions",
                 id="options-not-an-options-object"),
    pytest.param(lambda s, o: convert(s, o, quantise="int8"), TypeError, "quantise", id="unknown-keyword"),
    pytest.param(lambda s, o: convert(s, o, options=ConvertOptions(quantize="int4")), UsageError, "int4",
                 id="bad-value-in-options"),
])
def test_bad_options_are_refused_before_any_work(tmp_path, examples, call, error, match):
    with pytest.raises(error, match=match):
        call(examples / "digits_mlp.onnx", tmp_path / "never.onnx")
    assert not (tmp_path / "never.onnx").exists()


def _choices(command, option):
    param = next(p for p in cli.commands[command].params if isinstance(p, click.Option) and option in p.opts)
    return tuple(param.type.choices)


@pytest.mark.parametrize("command, option, values", [
    pytest.param("convert", "--quantize", MODES, id="convert-quantize"),
    pytest.param("convert", "--format", tuple(FORMATS.values()), id="convert-format"),
    pytest.param("convert", "--calibration-method", tuple(CALIBRATION_METHODS), id="convert-calibration-method"),
    pytest.param("validate", "--task", None, id="validate-task"),
    pytest.param("validate", "--detection-layout", None, id="validate-detection-layout"),
    pytest.param("validate", "--box-format", None, id="validate-box-format"),
    pytest.param("bench", "--backend", None, id="bench-backend"),
])
def test_command_line_choices_are_the_codes_lists(command, option, values):
    from edgeops.runtime.backends import BACKENDS
    from edgeops.validate.core import TASKS
    from edgeops.validate.tasks import BOX_FORMATS, LAYOUTS

    expected = values if values is not None else tuple({
        "--task": TASKS, "--detection-layout": LAYOUTS, "--box-format": BOX_FORMATS, "--backend": BACKENDS}[option])
    assert _choices(command, option) == tuple(expected)


def test_every_target_is_named_in_the_target_help():
    param = next(p for p in cli.commands["convert"].params if "--target" in p.opts)
    assert all(name in param.help for name in TARGETS)


def test_a_calibration_method_the_code_does_not_know_is_refused_by_the_command_line(tmp_path, examples):
    from click.testing import CliRunner

    result = CliRunner().invoke(cli, ["convert", str(examples / "digits_mlp.onnx"), "-o", str(tmp_path / "x.onnx"),
                                      "--calibration-method", "median"])
    assert result.exit_code == 2 and "minmax" in result.output
