"""LocalBroker runs a real mosquitto: fast start, restart on the same port keeping retained messages,
TLS from a test PKI, passwords, and errors that say what to install or what the broker logged."""

from __future__ import annotations

import os
import socket
import time

import pytest

from edgeops.agent import localbroker
from edgeops.agent.localbroker import LocalBroker
from edgeops.errors import BackendUnavailableError, EdgeOpsError, UsageError


def accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


def connect_result(broker: LocalBroker, **auth) -> str:
    """Connect a paho client once; the CONNACK reason as text."""
    import paho.mqtt.client as mqtt

    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="probe", protocol=mqtt.MQTTv5)
    if auth:
        client.username_pw_set(auth["username"], auth["password"])
    result: list[str] = []
    client.on_connect = lambda c, u, f, rc, p: result.append(str(rc))
    client.connect("127.0.0.1", broker.port)
    deadline = time.monotonic() + 3
    while not result and time.monotonic() < deadline:
        client.loop(0.05)
    client.disconnect()
    return result[0] if result else "no CONNACK"


def test_starts_fast_and_stops(make_broker):
    t0 = time.perf_counter()
    broker = make_broker()
    assert time.perf_counter() - t0 < 2.0
    assert broker.url == f"mqtt://127.0.0.1:{broker.port}"
    assert accepts(broker.port) and broker.running
    broker.stop()
    assert not broker.running and not accepts(broker.port)


def test_context_manager_removes_its_workdir():
    if not LocalBroker.available():
        pytest.skip("mosquitto is not installed (apt-get install mosquitto)")
    with LocalBroker() as broker:
        workdir = broker.workdir
        assert os.path.exists(os.path.join(workdir, "mosquitto.conf"))
    assert not os.path.exists(workdir)


def test_restart_keeps_port_and_retained_messages(broker, collector):
    collector().publish("edgeops/demo/pi-01/status", b"online", retain=True)
    port = broker.port
    broker.restart(down_s=0.1)
    assert broker.port == port and accepts(port)
    late = collector("edgeops/demo/+/status")
    assert late.wait_for(lambda ms: ("edgeops/demo/pi-01/status", b"online", True) in ms, timeout=3)


def test_passwords(make_broker):
    pytest.importorskip("paho.mqtt.client")
    if localbroker._which("mosquitto_passwd") is None:
        pytest.skip("mosquitto_passwd is not installed")
    broker = make_broker(passwords={"pi-01": "s3cret"}, allow_anonymous=False)
    assert connect_result(broker, username="pi-01", password="s3cret") == "Success"
    assert connect_result(broker, username="pi-01", password="wrong") in ("Bad user name or password",
                                                                         "Not authorized")
    assert connect_result(broker) == "Not authorized"


def test_tls_broker_url_and_pki(pki, make_broker):
    from cryptography import x509

    broker = make_broker(tls=pki)
    assert broker.url == f"mqtts://localhost:{broker.port}"
    cert_path, key_path = pki.client("pi-01")
    with open(cert_path, "rb") as f:
        cert = x509.load_pem_x509_certificate(f.read())
    with open(pki.ca, "rb") as f:
        ca = x509.load_pem_x509_certificate(f.read())
    assert [a.value for a in cert.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)] == ["pi-01"]
    cert.verify_directly_issued_by(ca)
    assert os.path.dirname(cert_path) == os.path.dirname(pki.ca) and os.path.exists(key_path)
    with open(pki.server_cert, "rb") as f:
        server = x509.load_pem_x509_certificate(f.read())
    names = server.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "localhost" in names.get_values_for_type(x509.DNSName)
    assert (server.not_valid_after_utc - server.not_valid_before_utc).days <= 3  # short-lived


def test_missing_mosquitto_says_what_to_install(monkeypatch):
    monkeypatch.setattr(localbroker, "_which", lambda name: None)
    assert not LocalBroker.available()
    with pytest.raises(BackendUnavailableError, match="apt-get install mosquitto"):
        LocalBroker().start()


def test_failed_start_shows_the_broker_log(tmp_path):
    if not LocalBroker.available():
        pytest.skip("mosquitto is not installed (apt-get install mosquitto)")
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        broker = LocalBroker(port=port, workdir=str(tmp_path))
        with pytest.raises(EdgeOpsError, match="(?s)did not start.*in use"):
            broker.start(timeout=2.0)


def test_require_certificate_needs_tls():
    with pytest.raises(UsageError, match="tls="):
        LocalBroker(require_certificate=True)


def test_make_pki_writes_pem_files(tmp_path):
    pytest.importorskip("trustme")
    from tests.agent.pki import make_pki

    pki = make_pki(str(tmp_path))
    for path in (pki.ca, pki.server_cert, pki.server_key, pki.ca_key):
        assert open(path).read().startswith("-----BEGIN")
    assert os.stat(pki.server_key).st_mode & 0o077 == 0


def queued_for_offline_session(broker: LocalBroker, n: int) -> int:
    """A persistent session subscribes and goes away; ``n`` QoS 1 messages are published; how many it gets back."""
    import paho.mqtt.client as mqtt
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.properties import Properties

    got: list[bytes] = []
    props = Properties(PacketTypes.CONNECT)
    props.SessionExpiryInterval = 60
    sub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="away", protocol=mqtt.MQTTv5)
    sub.on_message = lambda c, u, m: got.append(m.payload)
    sub.connect("127.0.0.1", broker.port, clean_start=False, properties=props)
    sub.subscribe("q/#", qos=1)
    for _ in range(20):
        sub.loop(0.05)
    sub.disconnect()
    pub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="pub", protocol=mqtt.MQTTv5)
    pub.connect("127.0.0.1", broker.port)
    pub.loop_start()
    for i in range(n):
        pub.publish("q/x", str(i), qos=1).wait_for_publish(3)
    pub.loop_stop()
    pub.disconnect()
    sub.connect("127.0.0.1", broker.port, clean_start=False, properties=props)
    deadline = time.monotonic() + 2
    while time.monotonic() < deadline and len(got) < n:
        sub.loop(0.05)
    sub.disconnect()
    return len(got)


def test_extra_config_lines_reach_mosquitto(make_broker):
    """The fleet simulator raises mosquitto's per-client queue this way; here a tiny one drops what is past it."""
    assert queued_for_offline_session(make_broker(), 30) == 30
    small = make_broker(extra_config=["max_queued_messages 5"])
    assert "max_queued_messages 5" in open(os.path.join(small.workdir, "mosquitto.conf")).read()
    assert queued_for_offline_session(small, 30) < 30
