"""The package type-checks and lints clean: ``mypy edgeops`` and ``ruff check edgeops tests`` (the
settings in pyproject.toml). They run here, inside the README's test command, so that `.ci/run` fails
on a new error with the tool's own line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_mypy_is_clean():
    pytest.importorskip("mypy")
    proc = subprocess.run([sys.executable, "-m", "mypy", "edgeops"], capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0 and "Success" in proc.stdout, proc.stdout[-6000:] + proc.stderr[-2000:]


def test_ruff_is_clean():
    pytest.importorskip("ruff")
    proc = subprocess.run([sys.executable, "-m", "ruff", "check", "edgeops", "tests"], capture_output=True, text=True,
                          cwd=ROOT)
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-2000:]
