"""What ``--help`` tells a user: defaults shown where there is one, every option explained."""

from __future__ import annotations

import subprocess
import sys

import click
import pytest


def help_text(*command):
    proc = subprocess.run([sys.executable, "-m", "edgeops", *command, "--help"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    return " ".join(proc.stdout.split())  # unwrapped: the words, not click's line breaks


def test_flash_timeout_shows_its_default():
    assert "--timeout FLOAT Seconds to wait for the device's verdict (with --broker). [default: 300.0]" \
        in help_text("flash")


def test_convert_calibration_method_is_explained():
    text = help_text("convert")
    method = text[text.index("--calibration-method"):text.index("--per-channel")]
    assert "minmax" in method and "entropy" in method and "percentile" in method
    assert "activation ranges" in method and "[default: minmax]" in method


@pytest.mark.parametrize("command", ["convert", "validate", "flash", "info"])
def test_every_option_has_help(command):
    from edgeops.cli import cli

    bare = [p.opts[0] for p in cli.commands[command].params if isinstance(p, click.Option) and not p.help]
    assert bare == []


def test_timeout_still_goes_with_broker_only(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "edgeops", "flash", str(tmp_path / "b.eob"), "--to", str(tmp_path),
                           "--timeout", "5"], capture_output=True, text=True)
    assert proc.returncode == 2 and "--timeout go with --broker" in proc.stderr
