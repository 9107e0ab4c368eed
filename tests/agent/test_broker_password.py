"""The broker password without putting it on the command line: ``--password-file``, ``$EDGEOPS_MQTT_PASSWORD``,
or ``[broker] password_file`` in the agent's config, for every command that talks to a broker (agent, fleet,
flash over MQTT), against a real mosquitto that refuses anonymous clients."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from edgeops.agent import Agent, load_config
from edgeops.agent.config import PASSWORD_ENV, broker_password
from edgeops.errors import UsageError

pytest.importorskip("paho.mqtt")
EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "models"


def edgeops_cli(*args, env=None, timeout=60):
    environ = {k: v for k, v in os.environ.items() if k != PASSWORD_ENV}
    return subprocess.run([sys.executable, "-m", "edgeops", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, env={**environ, "COLUMNS": "200", **(env or {})})


@pytest.fixture
def locked_broker(make_broker):
    from edgeops.agent import localbroker

    if localbroker._which("mosquitto_passwd") is None:
        pytest.skip("mosquitto_passwd is not installed (apt-get install mosquitto)")
    return make_broker(passwords={"ops": "s3cret"}, allow_anonymous=False)


@pytest.fixture
def password_file(tmp_path) -> Path:
    path = tmp_path / "mqtt.pass"
    path.write_text("s3cret\n")  # the trailing newline an editor adds is not part of it
    return path


def test_the_password_comes_from_the_option_the_file_or_the_environment(password_file, monkeypatch):
    monkeypatch.setenv(PASSWORD_ENV, "from-env")
    assert broker_password("given", None) == "given"
    assert broker_password(None, str(password_file)) == "s3cret"
    assert broker_password(None, None) == "from-env"
    monkeypatch.delenv(PASSWORD_ENV)
    assert broker_password(None, None) is None
    with pytest.raises(UsageError, match="--password or --password-file, not both"):
        broker_password("given", str(password_file))
    with pytest.raises(UsageError, match="cannot read the broker password from .*missing"):
        broker_password(None, str(password_file.parent / "missing"))
    (password_file.parent / "empty").write_text("")
    with pytest.raises(UsageError, match="is empty"):
        broker_password(None, str(password_file.parent / "empty"))


TOML = """
[broker]
url = "{url}"
username = "ops"
{secret}
[device]
fleet = "demo"
id = "pi-01"
[store]
dir = "store"
"""


def test_the_agent_config_reads_password_file_relative_to_itself(tmp_path, password_file, locked_broker):
    config = tmp_path / "agent.toml"
    config.write_text(TOML.format(url=locked_broker.url, secret='password_file = "mqtt.pass"'))
    cfg = load_config(config)
    assert cfg.password == "s3cret"
    agent = Agent.from_config(cfg).start()
    try:
        assert agent.transport.wait_connected(10), agent.transport.last_error
    finally:
        agent.stop()
    config.write_text(TOML.format(url=locked_broker.url, secret='password = "x"\npassword_file = "mqtt.pass"'))
    with pytest.raises(UsageError, match=r"\[broker\] password or password_file, not both"):
        load_config(config)


def test_the_agent_config_falls_back_to_the_environment(tmp_path, monkeypatch):
    config = tmp_path / "agent.toml"
    config.write_text(TOML.format(url="mqtt://127.0.0.1:1883", secret=""))
    monkeypatch.setenv(PASSWORD_ENV, "from-env")
    assert load_config(config).password == "from-env"


@pytest.mark.parametrize("how", ["file", "env"])
def test_fleet_status_connects_with_the_password_from_a_file_or_the_environment(locked_broker, password_file, how):
    args = ["fleet", "status", "--broker", locked_broker.url, "--fleet", "demo", "--wait", "0.2", "--username", "ops"]
    proc = edgeops_cli(*args, *(["--password-file", password_file] if how == "file" else []),
                       env={PASSWORD_ENV: "s3cret"} if how == "env" else None)
    assert proc.returncode == 0, proc.stderr
    refused = edgeops_cli(*args)  # no password anywhere
    assert refused.returncode == 2 and "cannot connect" in refused.stderr and "Traceback" not in refused.stderr


def test_flash_over_mqtt_reads_the_password_file(locked_broker, password_file, tmp_path):
    pytest.importorskip("onnx")
    from edgeops.bundle import create

    bundle = tmp_path / "m.eob"
    create(EXAMPLES / "digits_mlp.onnx", bundle, name="digits", version="1.0")
    args = ["flash", bundle, "--broker", locked_broker.url, "--fleet", "demo", "--device", "nobody", "--timeout", "1",
            "--username", "ops"]
    got = edgeops_cli(*args, "--password-file", password_file)
    assert got.returncode == 2 and "never answered" in got.stderr and "never connected" not in got.stderr, got.stderr
    refused = edgeops_cli(*args)
    assert refused.returncode == 2 and "never connected" in refused.stderr, refused.stderr
    both = edgeops_cli(*args, "--password-file", password_file, "--password", "x")
    assert both.returncode == 2 and "not both" in both.stderr
