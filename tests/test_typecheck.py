"""mypy finds no error in the host-side stages that have been brought under the type checker.

The checked paths grow as packages are cleaned up; a new error in one of them fails here, with mypy's line.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("mypy")

ROOT = Path(__file__).resolve().parents[1]
CHECKED = re.compile(r"^edgeops/(convert/|validate/|formats/|bench/|cli/(?!flash\.py)|_io\.py|targets\.py)")


@pytest.mark.slow
def test_mypy_is_clean_on_the_checked_packages():
    proc = subprocess.run([sys.executable, "-m", "mypy", "edgeops"], capture_output=True, text=True, cwd=ROOT)
    assert "error: " in proc.stdout or proc.returncode == 0, proc.stdout + proc.stderr  # mypy itself ran
    errors = [line for line in proc.stdout.splitlines() if CHECKED.match(line) and ": error:" in line]
    assert errors == []
