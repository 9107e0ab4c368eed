"""Where convert and validate write: one rule for every output path (``edgeops._io.output_folder``),
checked before the long work starts, and never onto an input.

Regressions: ``convert -o FILE/out.onnx`` and ``validate --report FILE/r.html`` ended in a
FileExistsError traceback after the whole conversion or validation had run; ``convert X -o X``
silently replaced the source model with the converted one.
"""

from __future__ import annotations

import shutil

import pytest
from click.testing import CliRunner

import edgeops.convert.graph
import edgeops.validate
from edgeops.cli import cli
from tests.conftest import EXAMPLES, needs_ort

pytestmark = needs_ort

MLP, DATA, LABELS = EXAMPLES / "digits_mlp.onnx", EXAMPLES / "digits_mlp_test.npz", EXAMPLES / "digits_test_labels.npy"


def invoke(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


@pytest.fixture
def no_long_work(monkeypatch):
    """Loading the model (convert) or running the validation fails the test: the paths come first."""
    def too_late(*args, **kwargs):
        raise AssertionError("the long work started before the output paths were checked")

    monkeypatch.setattr(edgeops.convert.graph, "load", too_late)
    monkeypatch.setattr(edgeops.validate, "validate", too_late)
    monkeypatch.setattr(edgeops.validate, "build_profile", too_late)


@pytest.mark.parametrize("args, option", [
    pytest.param(["convert", MLP, "-o", "{file}/out.onnx"], "-o", id="convert-onnx"),
    pytest.param(["convert", MLP, "-o", "{file}/deeper/out.tflite"], "-o", id="convert-tflite-deeper"),
    pytest.param(["convert", MLP, "-o", "{file}/m.c", "--target", "cortex-m", "--quantize", "none"], "-o",
                 id="convert-c"),
    pytest.param(["validate", MLP, MLP, "--data", DATA, "--report", "{file}/r.html"], "--report",
                 id="validate-report"),
    pytest.param(["validate", MLP, MLP, "--data", DATA, "--profile", "{file}/p.json"], "--profile",
                 id="validate-profile"),
])
def test_an_output_path_through_a_file_is_one_line_before_any_work(tmp_path, no_long_work, args, option):
    file = tmp_path / "FILE"
    file.write_text("a regular file")
    result = invoke(*[str(a).format(file=file) for a in args])
    assert result.exit_code == 2, result.output
    assert result.stderr == f"error: cannot write {args[args.index(option) + 1].format(file=file)}: " \
                            f"{file} is a file, not a folder\n"
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["FILE"]


def test_missing_output_folders_are_created(tmp_path):
    pytest.importorskip("onnx")  # converting needs the convert extra
    out = tmp_path / "a" / "b" / "out.onnx"
    result = invoke("convert", MLP, "-o", out, "--quantize", "none")
    assert result.exit_code == 0, result.output
    assert out.is_file()


@pytest.mark.parametrize("link", [False, True], ids=["same-path", "symlink-to-the-source"])
def test_convert_refuses_to_overwrite_its_source(tmp_path, no_long_work, link):
    src = tmp_path / "model.onnx"
    shutil.copyfile(MLP, src)
    out = tmp_path / "link.onnx" if link else src
    if link:
        out.symlink_to(src)
    result = invoke("convert", src, "-o", out)
    assert result.exit_code == 2, result.output
    assert result.stderr == (f"error: -o {out} would overwrite {src}, the source model of this conversion; "
                             "write the converted model to another file\n")
    assert src.read_bytes() == MLP.read_bytes()


def test_convert_refuses_to_write_its_profile_over_the_calibration_data(tmp_path, no_long_work):
    calib = tmp_path / "m.profile.json"
    calib.write_text("{}")
    result = invoke("convert", MLP, "-o", tmp_path / "m.onnx", "--calibration", calib)
    assert result.exit_code == 2 and "would overwrite" in result.stderr and "an input" in result.stderr
    assert calib.read_text() == "{}"


def test_validate_refuses_to_write_its_report_over_an_input(tmp_path, no_long_work):
    model = tmp_path / "model.onnx"
    shutil.copyfile(MLP, model)
    result = invoke("validate", MLP, model, "--data", DATA, "--profile", model)
    assert result.exit_code == 2
    assert result.stderr == (f"error: --profile {model} would overwrite {model}, an input of this validation; "
                             "write it to another file\n")
    assert model.read_bytes() == MLP.read_bytes()
