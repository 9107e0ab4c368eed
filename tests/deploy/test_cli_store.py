"""``edgeops store install|status|rollback`` through the real CLI: JSON, human output, exit codes."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.conftest import ROOT, needs_ort, needs_tflite
from tests.deploy.conftest import DEEP

pytestmark = [needs_ort, needs_tflite]


def cli(*args, env=None):
    return subprocess.run([sys.executable, "-m", "edgeops", *map(str, args)], capture_output=True, text=True,
                          cwd=ROOT, env=env)


def ok(*args):
    proc = cli(*args)
    assert proc.returncode == 0, proc.stderr
    return proc


def test_install_activate_status_rollback_json(tmp_path, bundles):
    store = tmp_path / "store"
    first = json.loads(ok("store", "install", bundles.v1, "--store", store, "--trusted-key", bundles.pub,
                          "--activate", "--json").stdout)
    assert first["slot"] == "a" and first["version"] == "1.0.0" and first["activated"] is True
    staged = json.loads(ok("store", "install", bundles.v2, "--store", store, "--json").stdout)
    assert staged["slot"] == "b" and staged["activated"] is False
    status = json.loads(ok("store", "status", "--store", store, "--json").stdout)
    assert status["active"]["version"] == "1.0.0" and status["slots"]["b"]["version"] == "2.0.0"
    ok("store", "install", bundles.v2, "--store", store, "--activate")
    back = json.loads(ok("store", "rollback", "--store", store, "--json").stdout)
    assert back["slot"] == "a" and back["version"] == "1.0.0"
    status = json.loads(ok("store", "status", "--store", store, "--verify", "--json").stdout)
    assert status["active"]["slot"] == "a" and status["previous"]["slot"] == "b"
    assert status["verified"] == {"a": True, "b": True}


def test_status_human_output(tmp_path, bundles):
    store = tmp_path / "store"
    ok("store", "install", bundles.v1, "--store", store, "--activate")
    out = ok("store", "status", "--store", store).stdout
    assert "active" in out and "1.0.0" in out and "(empty)" in out


def test_store_from_environment(tmp_path, bundles):
    import os

    env = {**os.environ, "EDGEOPS_STORE": str(tmp_path / "store")}
    assert cli("store", "install", bundles.v1, "--activate", env=env).returncode == 0
    assert json.loads(cli("store", "status", "--json", env=env).stdout)["active"]["version"] == "1.0.0"


@pytest.mark.parametrize("case, code, words", [
    pytest.param("tampered", 1, "model.tflite does not match its sha256", id="tampered-bundle-exit-1"),
    pytest.param("untrusted", 1, "which is not a trusted key", id="untrusted-key-exit-1"),
    pytest.param("nested", 1, "model.onnx is itself an edgeops bundle", id="bundle-inside-a-bundle-exit-1"),
    pytest.param("deep-manifest", 1, "manifest.json nests arrays or objects 5000 deep", id="deep-manifest-exit-1"),
    pytest.param("missing", 2, "nope.eob not found", id="missing-bundle-exit-2"),
    pytest.param("rollback-empty", 2, "nothing to roll back", id="rollback-without-previous-exit-2"),
    pytest.param("corrupt-pointer", 2, "edgeops store rollback", id="corrupt-pointer-exit-2"),
    pytest.param("deep-pointer", 2, "nests arrays or objects 5000 deep", id="deep-pointer-exit-2"),
    pytest.param("deep-slot-json", 2, "nests arrays or objects 5000 deep", id="deep-slot-json-exit-2"),
])
def test_failures_are_one_line_and_an_exit_code(tmp_path, bundles, hostile, tampered, case, code, words):
    store = tmp_path / "store"
    ok("store", "install", bundles.v1, "--store", store, "--activate")
    args = {
        "tampered": ("store", "install", tampered(bundles.v2), "--store", store, "--activate"),
        "untrusted": ("store", "install", bundles.v2, "--store", store, "--trusted-key", bundles.other_pub),
        "nested": ("store", "install", hostile.nested, "--store", store, "--trusted-key", bundles.pub, "--activate"),
        "deep-manifest": ("store", "install", hostile.deep, "--store", store, "--activate"),
        "missing": ("store", "install", tmp_path / "nope.eob", "--store", store),
        "rollback-empty": ("store", "rollback", "--store", store),
        "corrupt-pointer": ("store", "status", "--store", store),
        "deep-pointer": ("store", "install", bundles.v2, "--store", store),
        "deep-slot-json": ("store", "status", "--store", store),
    }[case]
    damaged = {"corrupt-pointer": ("active.json", b"{"), "deep-pointer": ("active.json", DEEP),
               "deep-slot-json": ("slots/a/slot.json", DEEP)}.get(case)
    if damaged:
        (store / damaged[0]).write_bytes(damaged[1])
    proc = cli(*args)
    assert proc.returncode == code, proc.stderr
    assert proc.stderr.startswith("error: ") and proc.stderr.count("\n") == 1, proc.stderr
    assert "Traceback" not in proc.stderr and words in proc.stderr
    if not damaged:
        assert json.loads(ok("store", "status", "--store", store, "--json").stdout)["active"]["version"] == "1.0.0"
