"""The mutation-testing tier (tools/mutation.py) names modules and test files that exist.

The tier runs nightly, not in pytest; this keeps its table from rotting when files move.
"""

from __future__ import annotations

import importlib.util
import sys

import pytest

from tests.conftest import ROOT


def load_tool():
    spec = importlib.util.spec_from_file_location("mutation_tool", ROOT / "tools" / "mutation.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


TOOL = load_tool()


@pytest.mark.parametrize("name", list(TOOL.MODULES))
def test_each_module_and_its_test_files_exist(name):
    target = TOOL.MODULES[name]
    assert (ROOT / target.module).is_file(), target.module
    assert target.tests and all((ROOT / t).is_file() for t in target.tests), target.tests


def test_equivalent_mutants_belong_to_a_module_in_the_table():
    prefixes = tuple(TOOL._prefix(t.module) for t in TOOL.MODULES.values())
    assert [m for m in TOOL.EQUIVALENT if not m.startswith(prefixes)] == []


def test_list_prints_the_table_without_running_anything(capsys):
    assert TOOL.main(["--list", "drift"]) == 0
    assert capsys.readouterr().out.split() == ["drift", "edgeops/monitor/drift.py", "tests/monitor/test_drift.py",
                                               "tests/monitor/test_drift_window.py"]
