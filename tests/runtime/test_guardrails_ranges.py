"""Guardrail ranges in detail: inclusive bounds, per-element ranges, integer tensors, counters, profiles.

Each test guards a change the rest of the suite let through (found by
``python tools/mutation.py guardrails``).
"""

from __future__ import annotations

import json
import re
import threading

import numpy as np
import pytest

from edgeops.errors import DataError, GuardrailError
from edgeops.runtime import Guardrails
from edgeops.runtime.guardrails import RangeCheck, load_profile

LOCK = threading.Lock()


def apply(check: RangeCheck, values, where="input"):
    return check.apply(where, np.asarray(values), LOCK)


@pytest.mark.parametrize("low, high, values", [
    pytest.param(0.0, 1.0, [0.0, 0.5, 1.0], id="scalar-range"),
    pytest.param([0.0, 10.0], [1.0, 20.0], [0.0, 20.0], id="per-element-range"),
    pytest.param(0.0, [1.0, 20.0], [0.0, 20.0], id="scalar-min-per-element-max"),
    pytest.param([0.0, 10.0], 20.0, [0.0, 20.0], id="per-element-min-scalar-max"),
    pytest.param(3.0, 3.0, [3.0, 3.0], id="min-equals-max"),
])
def test_values_on_the_bounds_are_in_range(low, high, values):
    check = RangeCheck("x", low, high, "reject")
    arr = np.array(values, np.float32)
    assert apply(check, arr) is arr
    assert check.counts.values == 0


@pytest.mark.parametrize("low, high, values, below, above", [
    pytest.param([0.0, 10.0], [1.0, 20.0], [0.5, 5.0], 1, 0, id="second-below-its-own-min"),
    pytest.param(0.0, [1.0, 20.0], [2.0, 15.0], 0, 1, id="first-above-its-own-max"),
    pytest.param([0.0, 10.0], 20.0, [-1.0, 25.0], 1, 1, id="both-sides"),
])
def test_per_element_ranges_are_checked_element_by_element(low, high, values, below, above):
    check = RangeCheck("x", low, high, "pass")
    apply(check, np.array(values, np.float32))
    assert (check.counts.below, check.counts.above, check.counts.values) == (below, above, below + above)


def test_a_single_value_is_checked_too():
    check = RangeCheck("x", 0.0, 1.0, "clip")
    assert apply(check, np.array([5.0], np.float32)).tolist() == [1.0]
    assert check.counts.above == 1


@pytest.mark.parametrize("low, high, expected", [
    pytest.param(0.0, 10.0, 5.0, id="zero-to-ten"),
    pytest.param(2.0, 4.0, 3.0, id="two-to-four"),
])
def test_replace_without_a_fill_uses_the_middle_of_the_range(low, high, expected):
    check = RangeCheck("x", low, high, "replace")
    assert apply(check, np.array([-100.0, np.nan, 100.0], np.float32)).tolist() == [expected] * 3


@pytest.mark.parametrize("policy, expected", [
    pytest.param("clip", [10, 100, 200], id="clip"),
    pytest.param("replace", [105, 100, 105], id="replace"),
    pytest.param("pass", [5, 100, 250], id="pass"),
])
def test_integer_tensors_are_checked_and_fixed_in_their_own_dtype(policy, expected):
    check = RangeCheck("x", 10, 200, policy)
    out = apply(check, np.array([5, 100, 250], np.uint8))
    assert out.dtype == np.uint8 and out.tolist() == expected
    assert (check.counts.below, check.counts.above, check.counts.nonfinite, check.counts.values) == (1, 1, 0, 2)


def test_out_of_range_finite_values_are_not_counted_as_nonfinite():
    check = RangeCheck("x", 0.0, 1.0, "pass")
    apply(check, np.array([2.0, 0.5], np.float32))
    assert (check.counts.above, check.counts.nonfinite, check.counts.values) == (1, 0, 1)


def test_counters_add_up_over_calls():
    check = RangeCheck("x", 0.0, 1.0, "reject")
    for values in ([-1.0, 2.0], [np.nan, 0.5], [3.0, 4.0]):
        with pytest.raises(GuardrailError, match="^input 'x': "):
            apply(check, np.array(values, np.float32))
    assert check.counts.to_dict() == {"below": 1, "above": 2, "nonfinite": 1, "values": 5, "rejected": 3}


@pytest.mark.parametrize("values, seen", [
    pytest.param([np.nan, np.nan], "no finite values", id="all-nan"),
    pytest.param([np.nan, 5.0, -2.0], "min -2, max 5", id="some-finite"),
    pytest.param([5.0, 7.0], "min 5, max 7", id="all-finite"),
])
def test_a_rejection_says_what_was_seen_and_what_to_do(values, seen):
    check = RangeCheck("x", 0.0, 1.0, "reject")
    n = sum(1 for v in values if not 0 <= v <= 1)
    message = (f"output 'x': {n} value(s) outside the reference range [0, 1] or not finite ({seen}); "
               "check the sensor/preprocessing, or relax the policy to 'clip'")
    with pytest.raises(GuardrailError, match=f"^{re.escape(message)}$"):
        apply(check, np.array(values, np.float32), where="output")


# --- built from a profile ------------------------------------------------------------------------

def test_entries_without_both_min_and_max_are_skipped_and_the_rest_are_built():
    g = Guardrails.from_profile({"inputs": {"a": {"min": 0.0}, "b": {"max": 1.0}, "c": 3, "d": {"min": 0, "max": 1}}})
    assert list(g.inputs) == ["d"]


def test_margin_widens_by_a_fraction_of_the_width():
    g = Guardrails.from_profile({"inputs": {"x": {"min": 10.0, "max": 20.0}}}, margin=0.1)
    assert (float(g.inputs["x"].low), float(g.inputs["x"].high)) == (9.0, 21.0)


@pytest.mark.parametrize("mean, fill", [
    pytest.param(4.0, 4.0, id="mean-in-range"),
    pytest.param(50.0, 10.0, id="mean-above-clipped"),
    pytest.param(-5.0, 0.0, id="mean-below-clipped"),
])
def test_the_profile_mean_is_the_fill_clipped_into_the_range(mean, fill):
    g = Guardrails.from_profile({"inputs": {"x": {"min": 0.0, "max": 10.0, "mean": mean}}}, inputs="replace")
    assert g.check_inputs({"x": np.array([np.nan], np.float32)})["x"].tolist() == [fill]


def test_a_policy_per_tensor_name_overrides_the_default():
    g = Guardrails.from_profile({"inputs": {"x": {"min": 0, "max": 1}, "z": {"min": 0, "max": 1}}},
                                inputs="clip", policies={"x": "reject"})
    assert (g.inputs["x"].policy, g.inputs["z"].policy) == ("reject", "clip")


def test_fixing_an_input_leaves_the_callers_feeds_alone_and_checks_every_input():
    g = Guardrails.from_profile({"inputs": {"a": {"min": 0, "max": 1}, "b": {"min": 0, "max": 1}}}, inputs="clip")
    feeds = {"b": np.array([5.0], np.float32)}  # no "a" in this call
    out = g.check_inputs(feeds)
    assert out["b"].tolist() == [1.0] and feeds["b"].tolist() == [5.0] and out is not feeds
    ok = {"a": np.array([0.5], np.float32)}
    assert g.check_inputs(ok) is ok  # nothing to fix: the same dict back


def test_unknown_names_in_the_profile_are_named_with_what_the_model_has():
    g = Guardrails.from_profile({"inputs": {"x": {"min": 0, "max": 1}}, "outputs": {"p": {"min": 0, "max": 1},
                                                                                     "q": {"min": 0, "max": 1}}})
    g.validate_names(["x"], ["p", "q"])
    with pytest.raises(DataError, match=re.escape(
            "guardrail profile names input(s) x that the model does not have (model inputs: a, b); "
            "is it the profile of another model?")):
        g.validate_names(["a", "b"], ["p", "q"])
    with pytest.raises(DataError, match=re.escape("names output(s) p, q that the model does not have "
                                                  "(model outputs: y, z)")):
        g.validate_names(["x"], ["y", "z"])


@pytest.mark.parametrize("profile, message", [
    pytest.param(3, "a reference profile is a JSON object or a path to one, not a int", id="not-a-path"),
    pytest.param("{bad", r"reference profile .*model.profile.json is not readable JSON: the file ", id="bad-json"),
])
def test_profile_errors_say_what_is_wrong(tmp_path, profile, message):
    if isinstance(profile, str):
        path = tmp_path / "model.profile.json"
        path.write_text(profile)
        profile = path
    with pytest.raises(DataError, match=f"^{message}"):
        load_profile(profile)


def test_a_profile_file_is_read_whole(tmp_path):
    path = tmp_path / "big.profile.json"
    entry = {"min": 0.0, "max": 1.0, "note": "x" * 1000}
    path.write_text(json.dumps({"inputs": {f"t{i}": entry for i in range(100)}}), encoding="utf-8")
    assert len(load_profile(path)["inputs"]) == 100


def test_a_value_on_the_bound_is_not_counted_next_to_one_outside():
    check = RangeCheck("x", 0.0, 1.0, "pass")
    apply(check, np.array([0.0, 1.0, 5.0], np.float32))
    assert (check.counts.below, check.counts.above, check.counts.values) == (0, 1, 1)


def test_an_output_rejection_names_the_output():
    g = Guardrails.from_profile({"outputs": {"y": {"min": 0, "max": 1}}}, outputs="reject")
    with pytest.raises(GuardrailError, match="^output 'y': 1 value"):
        g.check_outputs(["y"], [np.array([2.0], np.float32)])


@pytest.mark.parametrize("content, message", [
    pytest.param(None, "reference profile {path} not found", id="missing"),
    pytest.param("[1, 2]", "a reference profile is a JSON object with 'inputs' and/or 'outputs' sections",
                 id="a-list"),
    pytest.param('{"version": 1}', "a reference profile is a JSON object with 'inputs' and/or 'outputs' sections",
                 id="no-sections"),
])
def test_profile_files_that_are_not_profiles(tmp_path, content, message):
    path = tmp_path / "model.profile.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(DataError, match=f"^{re.escape(message.format(path=path))}$"):
        load_profile(path)


def test_a_profile_with_only_outputs_is_a_profile(tmp_path):
    path = tmp_path / "model.profile.json"
    path.write_text('{"outputs": {"y": {"min": 0, "max": 1}}}')
    assert load_profile(path) == {"outputs": {"y": {"min": 0, "max": 1}}}
