"""``edgeops flash``: to a folder (an SD card) and over ssh, end to end through the real CLI.

No SSH host exists here, so ``ssh`` and ``scp`` are small executable scripts put first on PATH:
``scp`` copies the file locally, ``ssh`` runs the remote command line locally with ``sh -c``.
Everything else is real: the command lines flash builds (quoting included), the remote
``edgeops store install`` and its JSON answer, the cleanup of the remote temporary file.

A failing ssh (exit 255, "Connection refused") is a transport error: exit 2, like bad input,
with ssh's own message; exit 1 is kept for "the device refused or rolled back the bundle".
"""

from __future__ import annotations

import json
import os
import socket
import stat
import subprocess
import sys

import pytest

from edgeops.deploy import FlashError, ModelStore, flash, parse_ssh_url
from edgeops.errors import UsageError
from tests.conftest import ROOT, needs_ort, needs_tflite

pytestmark = [needs_ort, needs_tflite]

FAKE_SCP = """#!/bin/sh
# fake scp: drop the options, copy SRC to the PATH of HOST:PATH on this machine
echo "scp $*" >> "{log}"
while [ "$#" -gt 2 ]; do shift; done
exec cp "$1" "${{2#*:}}"
"""
FAKE_SSH = """#!/bin/sh
# fake ssh: drop the options and the destination, run the remote command line here
echo "ssh $*" >> "{log}"
while [ "$#" -gt 1 ]; do shift; done
exec sh -c "$1"
"""
FAILING_SSH = """#!/bin/sh
echo "ssh: connect to host pi.local port 22: Connection refused" >&2
exit 255
"""


def script(path, text):
    path.write_text(text)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


@pytest.fixture
def fake_ssh(tmp_path):
    """A bin folder with the fake ssh and scp, and the environment that puts it (and edgeops) on PATH."""
    bin_dir, log = tmp_path / "bin", tmp_path / "ssh.log"
    bin_dir.mkdir()
    script(bin_dir / "scp", FAKE_SCP.format(log=log))
    script(bin_dir / "ssh", FAKE_SSH.format(log=log))
    path = os.pathsep.join([str(bin_dir), os.path.dirname(sys.executable), os.environ.get("PATH", "")])
    env = {**os.environ, "PATH": path, "PYTHONPATH": str(ROOT)}
    return bin_dir, log, env


def cli(*args, env=None):
    return subprocess.run([sys.executable, "-m", "edgeops", *map(str, args)], capture_output=True, text=True,
                          cwd=ROOT, env=env)


def test_flash_to_a_folder_then_status_shows_the_version(tmp_path, bundles):
    card = tmp_path / "sdcard"
    card.mkdir()
    proc = cli("flash", bundles.v1, "--to", card, "--store-path", "/var/lib/edgeops/models",
               "--trusted-key", bundles.pub, "--json")
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["transport"] == "dir" and result["version"] == "1.0.0" and result["activated"] is True
    store = card / "var" / "lib" / "edgeops" / "models"
    status = cli("store", "status", "--store", store, "--json")
    assert json.loads(status.stdout)["active"]["version"] == "1.0.0"
    again = cli("flash", bundles.v2, "--to", store)
    assert again.returncode == 0 and "2.0.0" in again.stderr
    assert ModelStore(store).active().version == "2.0.0" and ModelStore(store).previous().version == "1.0.0"


@pytest.mark.parametrize("case, code, words", [
    pytest.param("nested", 1, "model.onnx is itself an edgeops bundle", id="bundle-inside-a-bundle-exit-1"),
    pytest.param("deep-manifest", 1, "manifest.json nests arrays or objects 5000 deep", id="deep-manifest-exit-1"),
    pytest.param("deep-pointer", 2, "nests arrays or objects 5000 deep", id="deep-pointer-exit-2"),
])
def test_flash_to_a_folder_refuses_hostile_input_in_one_line(tmp_path, bundles, hostile, case, code, words):
    """Regression: a bundle inside a bundle was flashed and activated; ``[`` * 5000 in the manifest or the
    store's pointer was a RecursionError traceback."""
    from tests.deploy.conftest import DEEP

    store = tmp_path / "store"
    store.mkdir()
    assert cli("flash", bundles.v1, "--to", store).returncode == 0
    bundle = {"nested": hostile.nested, "deep-manifest": hostile.deep}.get(case, bundles.v2)
    if case == "deep-pointer":
        (store / "active.json").write_bytes(DEEP)
    proc = cli("flash", bundle, "--to", store, "--trusted-key", bundles.pub) if case == "nested" else \
        cli("flash", bundle, "--to", store)
    assert proc.returncode == code, proc.stderr
    assert proc.stderr.startswith("error: ") and proc.stderr.count("\n") == 1, proc.stderr
    assert words in proc.stderr and "Traceback" not in proc.stderr
    if case != "deep-pointer":
        assert ModelStore(store).active().version == "1.0.0" and ModelStore(store).slot("b") is None


def test_flash_over_ssh_end_to_end(tmp_path, bundles, fake_ssh):
    _, log, env = fake_ssh
    store = tmp_path / "device store"  # a space: the remote command line must be quoted
    proc = cli("flash", bundles.v2, "--to", f"ssh://pi@raspberrypi.local:2222{store}", "--json", env=env)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["transport"] == "ssh" and result["host"] == "raspberrypi.local"
    assert result["version"] == "2.0.0" and result["activated"] is True and result["slot"] == "a"
    assert ModelStore(store).active(verify=True).version == "2.0.0"
    calls = log.read_text().splitlines()
    assert calls[0].startswith("scp -P 2222 ") and " pi@raspberrypi.local:/tmp/edgeops-" in calls[0]
    assert calls[1].startswith("ssh -p 2222 pi@raspberrypi.local edgeops store install /tmp/edgeops-")
    assert f"--store '{store}' --activate --json" in calls[1]
    assert calls[2].startswith("ssh -p 2222 pi@raspberrypi.local rm -f /tmp/edgeops-")
    remote_tmp = calls[2].rsplit(" ", 1)[1]
    assert not os.path.exists(remote_tmp), "the copied bundle is removed from the device"


def test_flash_over_ssh_with_an_injected_command(tmp_path, bundles, fake_ssh):
    bin_dir, _, env = fake_ssh
    os.environ["PATH"], saved = env["PATH"], os.environ["PATH"]  # the remote `edgeops` must be found
    try:
        result = flash(bundles.v1, f"ssh://device{tmp_path / 'store'}", ssh_command=(str(bin_dir / "ssh"),),
                       scp_command=(str(bin_dir / "scp"),), trusted_keys=[bundles.pub], progress=False)
    finally:
        os.environ["PATH"] = saved
    assert result["version"] == "1.0.0" and ModelStore(tmp_path / "store").active().version == "1.0.0"


def test_ssh_that_cannot_connect_is_exit_2_with_its_message(tmp_path, bundles, fake_ssh):
    bin_dir, _, env = fake_ssh
    script(bin_dir / "ssh", FAILING_SSH)
    script(bin_dir / "scp", FAILING_SSH)
    proc = cli("flash", bundles.v1, "--to", "ssh://pi@pi.local/var/lib/edgeops/models", env=env)
    assert proc.returncode == 2
    assert "exit 255" in proc.stderr and "Connection refused" in proc.stderr and "Traceback" not in proc.stderr
    with pytest.raises(FlashError, match="Connection refused"):
        flash(bundles.v1, "ssh://pi.local/x", ssh_command=(str(bin_dir / "ssh"),),
              scp_command=(str(bin_dir / "scp"),), progress=False)


def test_remote_without_edgeops_is_a_clear_error(tmp_path, bundles, fake_ssh):
    _, _, env = fake_ssh
    proc = cli("flash", bundles.v1, "--to", f"ssh://pi{tmp_path / 'store'}", "--remote-edgeops",
               "/opt/nowhere/edgeops", env=env)
    assert proc.returncode == 2 and "edgeops is not installed on pi" in proc.stderr


def test_device_that_refuses_the_bundle_is_exit_1(tmp_path, bundles, fake_ssh):
    bin_dir, _, env = fake_ssh
    picky = script(bin_dir / "edgeops-picky", f'#!/bin/sh\nexec edgeops "$@" --trusted-key "{bundles.other_pub}"\n')
    store = tmp_path / "store"
    proc = cli("flash", bundles.v1, "--to", f"ssh://pi{store}", "--remote-edgeops", picky, env=env)
    assert proc.returncode == 1 and "pi refused the bundle" in proc.stderr, proc.stderr
    assert ModelStore(store).active() is None


def test_damaged_device_store_is_reported_with_its_fix(tmp_path, bundles, fake_ssh):
    _, _, env = fake_ssh
    store = tmp_path / "store"
    store.mkdir()
    (store / "active.json").write_text("{")
    proc = cli("flash", bundles.v1, "--to", f"ssh://pi{store}", env=env)
    assert proc.returncode == 2 and "edgeops store rollback" in proc.stderr


def test_broker_without_an_answer_is_exit_2(bundles):
    pytest.importorskip("paho.mqtt.client")
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    proc = cli("flash", bundles.v1, "--broker", f"mqtt://127.0.0.1:{port}", "--fleet", "demo", "--device", "pi-01",
               "--timeout", "1", "--trusted-key", bundles.pub, "--json")
    assert proc.returncode == 2 and "did not happen" in proc.stderr, proc.stderr
    assert json.loads(proc.stdout)["outcome"] == "failed"


def test_broker_refuses_an_untrusted_bundle_before_sending(bundles):
    proc = cli("flash", bundles.v1, "--broker", "mqtt://127.0.0.1:1", "--fleet", "demo", "--device", "pi-01",
               "--trusted-key", bundles.other_pub)
    assert proc.returncode == 1 and "not a trusted key" in proc.stderr


@pytest.mark.parametrize("args, words", [
    pytest.param(("--to", "mqtt://broker.local"), "--broker", id="mqtt-url-points-to-broker"),
    pytest.param(("--to", "ftp://host/x"), "cannot flash", id="unknown-scheme"),
    pytest.param(("--to", "ssh:///no-host"), "not an ssh URL", id="ssh-without-host"),
    pytest.param((), "exactly one of", id="no-destination"),
    pytest.param(("--broker", "mqtt://localhost"), "--fleet", id="broker-without-fleet"),
    pytest.param(("--to", "/tmp", "--fleet", "f"), "go with --broker", id="fleet-with-to"),
])
def test_usage_errors_are_exit_2(bundles, args, words):
    proc = cli("flash", bundles.v1, *args)
    assert proc.returncode == 2 and words in proc.stderr and "Traceback" not in proc.stderr


def test_parse_ssh_url():
    t = parse_ssh_url("ssh://pi@10.0.0.5:2200/var/lib/edgeops/models")
    assert (t.user, t.host, t.port, t.path, t.destination) == ("pi", "10.0.0.5", 2200, "/var/lib/edgeops/models",
                                                               "pi@10.0.0.5")
    assert parse_ssh_url("ssh://jetson", "/data/models").path == "/data/models"
    assert parse_ssh_url("ssh://pi@[fe80::1]/x").scp_host == "pi@[fe80::1]"
    with pytest.raises(UsageError, match="MQTT flashing goes through the device agent"):
        flash(__file__, "mqtt://broker:1883")
