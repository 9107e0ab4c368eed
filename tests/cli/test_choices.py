"""Option choices come from the code, and reading them costs nothing until a command needs them."""

from __future__ import annotations

import json
import subprocess
import sys

from edgeops.cli._choices import CodeChoice


def test_loading_the_command_line_imports_no_stage_package():
    """``edgeops agent`` on a device starts without edgeops.convert / edgeops.validate, whose lists
    feed the convert and validate choices."""
    code = "import edgeops.cli, sys, json; print(json.dumps(sorted(sys.modules)))"
    loaded = set(json.loads(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                           check=True).stdout))
    assert not {m for m in loaded if m.split(".")[:2] in (["edgeops", "convert"], ["edgeops", "validate"])}


def test_a_code_choice_reads_its_list_when_first_asked():
    choice = CodeChoice("edgeops.targets", "TARGETS")
    assert choice._values is None
    from edgeops.targets import TARGETS

    assert tuple(choice.choices) == tuple(TARGETS) and choice.convert("rpi4", None, None) == "rpi4"
