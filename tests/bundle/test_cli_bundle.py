"""``edgeops keygen`` and ``edgeops bundle create|inspect|verify``: output, exit codes, one-line errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from click.testing import CliRunner

from edgeops.cli import cli


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def test_keygen_create_inspect_verify(tmp_path, examples):
    out = run("keygen", "--out", tmp_path / "rel", "--json")
    assert out.exit_code == 0, out.output
    pair = json.loads(out.stdout)
    assert os.stat(pair["key"]).st_mode & 0o777 == 0o600 and len(pair["key_id"]) == 16

    eob = tmp_path / "digits.eob"
    made = run("bundle", "create", examples / "digits_mlp.onnx", "-o", eob, "--name", "digits", "--version", "1.0.0",
               "--key", pair["key"], "--sample", examples / "digits_mlp_test.npz", "--tolerance", "max_abs=1e-3",
               "--target", "rpi4", "--json")
    assert made.exit_code == 0, made.output
    created = json.loads(made.stdout)
    assert created["signed"] and created["key_id"] == pair["key_id"]
    assert created["manifest"]["tolerances"] == {"max_abs": 0.001}

    shown = json.loads(run("bundle", "inspect", eob, "--json").stdout)
    assert shown["manifest"] == created["manifest"] and shown["signed"]
    human = run("bundle", "inspect", eob).stdout
    assert "digits 1.0.0" in human and f"signed by key {pair['key_id']}" in human and "model.onnx" in human

    ok = run("bundle", "verify", eob, "--pubkey", pair["pub"])
    assert ok.exit_code == 0 and f"signed by trusted key {pair['key_id']}" in ok.stdout
    checked = json.loads(run("bundle", "verify", eob, "--pubkey", pair["pub"], "--json").stdout)
    assert checked["verified"] and checked["trusted"] and checked["id"] == created["manifest"]["id"]


def test_keygen_refuses_to_overwrite(tmp_path):
    assert run("keygen", "--out", tmp_path / "k").exit_code == 0
    again = run("keygen", "--out", tmp_path / "k")
    assert again.exit_code == 2 and "already exists" in again.stderr


def test_verify_failures_are_exit_1_one_line_no_traceback(tmp_path, signed_mlp, unsigned_mlp):
    assert run("keygen", "--out", tmp_path / "other").exit_code == 0
    other = tmp_path / "other.pub"
    for args, words in [
        (("bundle", "verify", signed_mlp, "--pubkey", other), "not a trusted key"),
        (("bundle", "verify", unsigned_mlp, "--require-signature"), "not signed"),
    ]:
        proc = subprocess.run([sys.executable, "-m", "edgeops", *map(str, args)], capture_output=True, text=True)
        assert proc.returncode == 1, proc.stderr
        assert proc.stdout == "" and proc.stderr.startswith("error: ") and words in proc.stderr
        assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr


def test_verify_json_reports_the_failure_on_stdout(tmp_path, unsigned_mlp):
    result = run("bundle", "verify", unsigned_mlp, "--require-signature", "--json")
    assert result.exit_code == 1
    report = json.loads(result.stdout)
    assert report["verified"] is False and "not signed" in report["error"]


@pytest.mark.parametrize("args, code, words", [
    pytest.param(("bundle", "verify", "missing.eob"), 2, "does not exist", id="missing-bundle"),
    pytest.param(("bundle", "create", "MODEL", "-o", "x.eob", "--name", "a b", "--version", "1"), 2, "plain word",
                 id="bad-name"),
    pytest.param(("bundle", "create", "MODEL", "-o", "x.eob", "--name", "a", "--version", "1", "--tolerance", "abs"),
                 2, "NAME=NUMBER", id="bad-tolerance"),
])
def test_bad_usage_is_exit_2(tmp_path, examples, args, code, words):
    args = [examples / "digits_mlp.onnx" if a == "MODEL" else tmp_path / a if a.endswith(".eob") else a for a in args]
    result = run(*args)
    assert result.exit_code == code and words in result.stderr


@pytest.mark.parametrize("option", ["--profile", "--preprocessing"])
def test_create_with_json_nested_5000_deep_is_exit_2_and_one_line(tmp_path, examples, option):
    """Regression: ``[`` * 5000 in a profile or --preprocessing file was a RecursionError traceback."""
    deep = tmp_path / "deep.json"
    deep.write_bytes(b"[" * 5000)
    proc = subprocess.run([sys.executable, "-m", "edgeops", "bundle", "create", str(examples / "digits_mlp.onnx"),
                           "-o", str(tmp_path / "x.eob"), "--name", "a", "--version", "1", option, str(deep)],
                          capture_output=True, text=True)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.startswith("error: ") and proc.stderr.count("\n") == 1, proc.stderr
    assert "nests arrays or objects 5000 deep" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "x.eob").exists()


def test_inspect_of_a_file_that_is_not_a_bundle_is_exit_1(examples):
    result = run("bundle", "inspect", examples / "digits_mlp.onnx")
    assert result.exit_code == 1 and "not an edgeops bundle" in result.stderr


def test_help_lists_the_bundle_commands():
    out = run("--help").stdout
    assert "bundle" in out and "keygen" in out
    assert all(c in run("bundle", "--help").stdout for c in ("create", "inspect", "verify"))
