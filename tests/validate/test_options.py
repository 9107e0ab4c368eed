"""ValidateOptions: every knob of edgeops.validate in one documented, frozen object; keywords still taken."""

from __future__ import annotations

import ast
import dataclasses
import inspect

import pytest

from edgeops.errors import UsageError
from edgeops.validate import Gates, validate
from edgeops.validate.options import ValidateOptions


def _comparable(report):
    d = report.to_dict()
    d.pop("latency")
    return d


def test_options_object_and_keywords_validate_alike(cnn_paths, cnn_broken):
    gates = Gates(min_cosine=0.99, max_accuracy_drop=1.0)
    by_keywords = validate(cnn_paths["model"], cnn_broken, cnn_paths["data"], labels=cnn_paths["labels"],
                           gates=gates, latency=False, max_samples=64)
    options = ValidateOptions(labels=cnn_paths["labels"], gates=gates, latency=False, max_samples=64)
    by_options = validate(cnn_paths["model"], cnn_broken, cnn_paths["data"], options=options)
    assert _comparable(by_keywords) == _comparable(by_options)
    assert not by_options.passed and by_options.samples == 64


def test_keywords_given_with_options_replace_its_fields(cnn_paths):
    options = ValidateOptions(latency=False, max_samples=8)
    report = validate(cnn_paths["model"], cnn_paths["model"], cnn_paths["data"], options=options, max_samples=16)
    assert report.samples == 16 and report.latency is None
    assert options.max_samples == 8


def test_options_are_frozen_and_every_field_is_documented():
    with pytest.raises(dataclasses.FrozenInstanceError):
        ValidateOptions().task = "regression"  # type: ignore[misc]
    body = ast.parse(inspect.getsource(ValidateOptions)).body[0].body  # type: ignore[attr-defined]
    documented = {stmt.target.id for stmt, after in zip(body, body[1:])
                  if isinstance(stmt, ast.AnnAssign) and isinstance(after, ast.Expr)
                  and isinstance(after.value, ast.Constant) and isinstance(after.value.value, str)}
    assert documented == {f.name for f in dataclasses.fields(ValidateOptions)}


@pytest.mark.parametrize("kwargs, error, match", [
    pytest.param({"options": {"latency": False}}, UsageError, "ValidateOptions", id="options-not-an-options-object"),
    pytest.param({"lateny": False}, TypeError, "lateny", id="unknown-keyword"),
    pytest.param({"options": ValidateOptions(task="ranking")}, UsageError, "ranking", id="bad-value-in-options"),
    pytest.param({"options": ValidateOptions(bench_runs=0)}, UsageError, "bench_runs", id="bad-number-in-options"),
])
def test_bad_options_are_refused(cnn_paths, kwargs, error, match):
    with pytest.raises(error, match=match):
        validate(cnn_paths["model"], cnn_paths["model"], cnn_paths["data"], **kwargs)
