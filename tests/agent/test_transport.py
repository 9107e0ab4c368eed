"""MqttTransport against a real mosquitto: acks, no queuing while down, re-subscription, reconnect with
jittered backoff, the last will (SIGKILL) versus a clean stop, TLS client certificates, ACL denials,
the MQTT 3.1.1 fallback; and its in-memory double."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from edgeops.agent.transport import MemoryTransport, MqttTransport, parse_url, topic_matches
from edgeops.errors import UsageError
from tests.agent.waiting import wait_until

ROOT = Path(__file__).resolve().parents[2]
STATUS = "edgeops/demo/pi-01/status"


@pytest.fixture
def transport():
    """``transport(url, **kwargs)`` -> a started MqttTransport (client_id pi-01 unless given), stopped after."""
    made: list[MqttTransport] = []

    def make(url: str, *, start: bool = True, **kwargs) -> MqttTransport:
        kwargs.setdefault("client_id", "pi-01")
        kwargs.setdefault("backoff", (0.05, 0.5))
        t = MqttTransport(url, **kwargs)
        made.append(t)
        if start:
            t.start()
        return t

    yield make
    for t in made:
        t.stop(timeout=1.0)


def publish_acked(t: MqttTransport, topic: str, payload: bytes, **kwargs) -> threading.Event:
    acked = threading.Event()
    assert t.publish(topic, payload, on_ack=acked.set, **kwargs)
    return acked


# -- URLs and arguments -------------------------------------------------------------------------

@pytest.mark.parametrize("url, expected", [
    ("mqtt://broker", ("broker", 1883, False)),
    ("mqtt://127.0.0.1:1884", ("127.0.0.1", 1884, False)),
    ("mqtts://broker.example.com", ("broker.example.com", 8883, True)),
    ("mqtts://[::1]:8884/", ("::1", 8884, True)),
], ids=["mqtt-default-port", "mqtt-port", "mqtts-default-port", "mqtts-ipv6"])
def test_parse_url(url, expected):
    assert parse_url(url) == expected


@pytest.mark.parametrize("url", ["http://broker", "broker:1883", "mqtt://", "mqtt://host:port", "mqtt://h:99999",
                                 "mqtt://host/topic"],
                         ids=["http", "no-scheme", "no-host", "port-not-a-number", "port-out-of-range", "path"])
def test_bad_url_is_a_usage_error(url):
    with pytest.raises(UsageError, match="mqtt://host"):
        MqttTransport(url, client_id="pi-01")


def test_certificates_need_mqtts():
    with pytest.raises(UsageError, match="mqtts://"):
        MqttTransport("mqtt://broker", client_id="pi-01", ca="ca.pem")


# -- publishing ---------------------------------------------------------------------------------

@pytest.mark.parametrize("qos", [1, 0], ids=["qos1-at-puback", "qos0-when-sent"])
def test_publish_calls_on_ack(broker, collector, transport, qos):
    seen = collector("edgeops/#")
    t = transport(broker.url)
    assert t.wait_connected(5)
    assert (t.protocol, t.connects) == ("MQTTv5", 1)
    assert publish_acked(t, "edgeops/demo/pi-01/telemetry", b'{"seq": 1}', qos=qos).wait(5)
    assert seen.wait_for(lambda ms: ("edgeops/demo/pi-01/telemetry", b'{"seq": 1}', False) in ms)


def test_publish_while_disconnected_returns_false_and_queues_nothing(broker, collector, transport):
    t = transport(broker.url, start=False)
    assert t.publish("edgeops/demo/pi-01/telemetry", b"before start") is False
    t.start()
    assert t.wait_connected(5)
    broker.stop()
    assert wait_until(lambda: not t.connected)
    assert t.publish("edgeops/demo/pi-01/telemetry", b"while down") is False
    broker.start()
    seen = collector("edgeops/#")
    assert wait_until(lambda: t.connects == 2)
    assert publish_acked(t, "edgeops/demo/pi-01/telemetry", b"after").wait(5)
    assert seen.wait_for(lambda ms: any(p == b"after" for _, p, _ in ms))
    assert [p for _, p, _ in seen.snapshot()] == [b"after"]


def test_publish_from_many_threads(broker, collector, transport):
    seen = collector("edgeops/#")
    t = transport(broker.url, max_inflight=5)
    assert t.wait_connected(5)
    acks: list[int] = []

    def send(worker: int) -> None:
        for i in range(50):
            n = worker * 100 + i
            while not t.publish("edgeops/demo/pi-01/telemetry", str(n).encode(), on_ack=lambda n=n: acks.append(n)):
                time.sleep(0.002)  # the window of 5 unacknowledged messages is full

    threads = [threading.Thread(target=send, args=(w,)) for w in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(20)
    assert wait_until(lambda: len(acks) == 200)
    assert seen.wait_for(lambda ms: len(ms) >= 200)
    assert sorted(int(p) for _, p, _ in seen.snapshot()) == sorted(acks)


def test_a_full_window_refuses_more(broker, transport):
    t = transport(broker.url, max_inflight=3)
    assert t.wait_connected(5)
    acked = []
    os.kill(broker.pid, signal.SIGSTOP)  # the broker holds every PUBACK
    try:
        results = [t.publish("edgeops/demo/pi-01/telemetry", b"%d" % i, on_ack=lambda i=i: acked.append(i))
                   for i in range(4)]
    finally:
        os.kill(broker.pid, signal.SIGCONT)
    assert results == [True, True, True, False]
    assert wait_until(lambda: sorted(acked) == [0, 1, 2])


# -- subscriptions and reconnection -------------------------------------------------------------

def test_subscribe_and_resubscribe_after_broker_restart(broker, collector, transport):
    got: list[tuple[str, bytes]] = []
    t = transport(broker.url, start=False, on_message=lambda topic, payload: got.append((topic, payload)))
    t.subscribe("edgeops/demo/pi-01/cmd/+")
    t.start()
    assert t.wait_connected(5)
    sender = collector("nothing/here")

    def command_arrives(payload: bytes) -> bool:
        for _ in range(25):  # the SUBACK may still be on its way: send again until it arrives
            sender.publish("edgeops/demo/pi-01/cmd/ping", payload)
            if wait_until(lambda: ("edgeops/demo/pi-01/cmd/ping", payload) in got, timeout=0.2):
                return True
        return False

    assert command_arrives(b"1")
    broker.restart(down_s=0.2)
    assert wait_until(lambda: t.connects == 2)
    assert command_arrives(b"2")


def test_outage_reconnects_with_jittered_backoff(broker, transport):
    fleet = [transport(broker.url, client_id=f"pi-{i:02d}", backoff=(0.2, 1.0)) for i in range(4)]
    assert all(t.wait_connected(5) for t in fleet)
    broker.restart(down_s=3.0)
    assert wait_until(lambda: all(t.connects == 2 for t in fleet), timeout=5)
    waits = [list(t.reconnect_waits) for t in fleet]
    assert all(0 < len(w) < 20 for w in waits), waits  # it waited, and never busy-looped
    assert all(0.0 <= s <= 1.0 for w in waits for s in w)
    assert len({round(w[0], 6) for w in waits}) == len(fleet), "every device drew its own first wait"


class Caps:
    """A stand-in for random.Random that records each backoff cap and sleeps the whole of it."""

    def __init__(self):
        self.caps: list[float] = []

    def uniform(self, low: float, high: float) -> float:
        self.caps.append(high)
        return high


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_backoff_doubles_to_its_cap_and_resets_after_connecting(make_broker, transport):
    port = free_port()
    t = transport(f"mqtt://127.0.0.1:{port}", start=False, backoff=(0.01, 0.08))
    t.random = caps = Caps()
    t.start()
    assert wait_until(lambda: len(caps.caps) >= 6)
    assert caps.caps[:6] == pytest.approx([0.01, 0.02, 0.04, 0.08, 0.08, 0.08])
    assert t.last_error and "cannot connect" in t.last_error
    broker = make_broker(port=port)
    assert t.wait_connected(5)
    before = len(caps.caps)
    broker.stop()
    assert wait_until(lambda: len(caps.caps) > before)
    assert caps.caps[before] == pytest.approx(0.01)


def test_stop_interrupts_the_backoff_sleep(transport):
    t = transport(f"mqtt://127.0.0.1:{free_port()}", start=False, backoff=(30.0, 30.0))
    t.random = Caps()
    t.start()
    assert wait_until(lambda: len(t.reconnect_waits) == 1)
    started = time.monotonic()
    t.stop()
    assert time.monotonic() - started < 0.5


# -- last will and clean stop -------------------------------------------------------------------

KILLED = """
import sys, time
from edgeops.agent.transport import MqttTransport
t = MqttTransport(sys.argv[1], client_id="pi-01", will=(sys.argv[2], b"offline: lost", True))
t.start()
assert t.wait_connected(5)
print("up", flush=True)
time.sleep(60)
"""


def test_sigkill_sends_the_retained_will(broker, collector):
    seen = collector(STATUS)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-c", KILLED, broker.url, STATUS], stdout=subprocess.PIPE, env=env)
    try:
        assert proc.stdout.readline().strip() == b"up"
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()
    assert seen.wait_for(lambda ms: (STATUS, b"offline: lost", False) in ms)
    assert collector(STATUS).wait_for(lambda ms: (STATUS, b"offline: lost", True) in ms)  # kept as retained


def test_clean_stop_sends_final_and_not_the_will(broker, collector, transport):
    seen = collector(STATUS)
    t = transport(broker.url, will=(STATUS, b"offline: lost", True))
    assert t.wait_connected(5)
    t.stop(final=(STATUS, b"offline: stopped", True), timeout=3)
    assert not t.connected
    late = collector(STATUS)  # subscribes after stop() returned: the final message was acknowledged
    assert late.wait_for(lambda ms: (STATUS, b"offline: stopped", True) in ms)
    time.sleep(0.3)
    assert seen.payloads(STATUS) == [b"offline: stopped"]


# -- TLS, passwords and ACLs --------------------------------------------------------------------

def test_tls_with_a_client_certificate(tls_broker, pki, collector, transport):
    cert, key = pki.client("pi-01")
    seen_cert, seen_key = pki.client("collector")
    seen = collector("edgeops/#", url=tls_broker.url, ca=pki.ca, cert=seen_cert, key=seen_key)
    t = transport(tls_broker.url, ca=pki.ca, cert=cert, key=key)
    assert t.wait_connected(5)
    assert publish_acked(t, "edgeops/demo/pi-01/telemetry", b"tls").wait(5)
    assert seen.wait_for(lambda ms: any(p == b"tls" for _, p, _ in ms))


def test_tls_without_a_client_certificate_is_refused(tls_broker, pki, transport):
    t = transport(tls_broker.url, ca=pki.ca)
    assert wait_until(lambda: t.last_error)
    assert not t.connected and t.connects == 0


def test_tls_with_an_untrusted_server_is_refused(tls_broker, pki, tmp_path, transport):
    from tests.agent.pki import make_pki

    other = make_pki(str(tmp_path / "other"))
    cert, key = pki.client("pi-01")
    t = transport(tls_broker.url, ca=other.ca, cert=cert, key=key)
    assert wait_until(lambda: t.last_error)
    assert not t.connected and "certificate verify failed" in t.last_error


@pytest.mark.parametrize("password, ok", [("s3cret", True), ("wrong", False)], ids=["right", "wrong"])
def test_username_and_password(make_broker, transport, password, ok):
    broker = make_broker(passwords={"pi-01": "s3cret"}, allow_anonymous=False)
    t = transport(broker.url, username="pi-01", password=password)
    if ok:
        assert t.wait_connected(5)
    else:
        assert wait_until(lambda: t.last_error)
        assert not t.connected and "refused the connection" in t.last_error


ACL = """
pattern write edgeops/+/%c/#
topic read #
"""


@pytest.mark.parametrize("protocol", ["MQTTv5", "MQTTv311"])
def test_acl_denied_publish_never_reaches_subscribers(make_broker, collector, transport, old_broker, protocol):
    """MQTT 5: mosquitto answers PUBACK 0x87 "Not authorized": on_ack is not called, last_error says so.
    MQTT 3.1.1: mosquitto acknowledges and drops the message silently: on_ack is called."""
    broker = make_broker(acl=ACL)
    seen = collector("edgeops/#", url=broker.url)
    url = broker.url
    if protocol == "MQTTv311":
        url = old_broker(broker.port, V3_REFUSAL).url
    t = transport(url, client_id="pi-01")
    assert t.wait_connected(5) and t.protocol == protocol
    denied = publish_acked(t, "edgeops/demo/pi-02/telemetry", b"not mine")
    assert publish_acked(t, "edgeops/demo/pi-01/telemetry", b"mine").wait(5)
    assert seen.wait_for(lambda ms: ("edgeops/demo/pi-01/telemetry", b"mine", False) in ms)
    time.sleep(0.2)
    assert [p for _, p, _ in seen.snapshot()] == [b"mine"]
    if protocol == "MQTTv5":
        assert not denied.is_set()
        assert "Not authorized" in t.last_error and "edgeops/demo/pi-02/telemetry" in t.last_error
    else:
        assert denied.is_set()


# -- MQTT 3.1.1 fallback ------------------------------------------------------------------------

V3_REFUSAL = b"\x20\x02\x00\x01"      # a 3.1.1 broker: CONNACK return code 1 "unacceptable protocol version"
V5_REFUSAL = b"\x20\x03\x00\x84\x00"  # an MQTT 5 CONNACK with reason 0x84 "Unsupported Protocol Version"


def read_packet(conn: socket.socket) -> bytes:
    data = conn.recv(1, socket.MSG_WAITALL)
    while True:  # the remaining-length varint
        byte = conn.recv(1, socket.MSG_WAITALL)
        data += byte
        if not byte or byte[0] < 0x80:
            break
    length, shift = 0, 0
    for b in data[1:]:
        length, shift = length | (b & 0x7F) << shift, shift + 7
    return data + conn.recv(length, socket.MSG_WAITALL)


class OldBroker:
    """A proxy in front of mosquitto that refuses MQTT 5 CONNECTs with ``refusal`` and forwards 3.1.1."""

    def __init__(self, upstream_port: int, refusal: bytes):
        self.upstream_port, self.refusal = upstream_port, refusal
        self.v5_attempts = 0
        self.sockets: list[socket.socket] = []
        self.server = socket.create_server(("127.0.0.1", 0))
        self.url = f"mqtt://127.0.0.1:{self.server.getsockname()[1]}"
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        connect = read_packet(conn)
        level = connect[connect.index(b"MQTT") + 4]
        if level == 5:
            self.v5_attempts += 1
            conn.sendall(self.refusal)
            conn.close()
            return
        up = socket.create_connection(("127.0.0.1", self.upstream_port))
        self.sockets += [conn, up]
        up.sendall(connect)
        threading.Thread(target=self._pump, args=(up, conn), daemon=True).start()
        self._pump(conn, up)

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def drop_connections(self) -> None:
        for s in self.sockets:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self.sockets = []

    def close(self) -> None:
        self.server.close()
        self.drop_connections()


@pytest.fixture
def old_broker():
    """``old_broker(upstream_port, refusal)`` -> an OldBroker proxy, closed after the test."""
    made: list[OldBroker] = []
    yield lambda port, refusal: made.append(OldBroker(port, refusal)) or made[-1]
    for old in made:
        old.close()


@pytest.mark.parametrize("refusal", [V3_REFUSAL, V5_REFUSAL], ids=["v3-return-code-1", "v5-reason-0x84"])
def test_falls_back_to_mqtt311_and_remembers(broker, collector, transport, old_broker, refusal):
    old = old_broker(broker.port, refusal)
    seen = collector("edgeops/#")
    t = transport(old.url)
    assert t.wait_connected(5)
    assert (t.protocol, t.connects, old.v5_attempts) == ("MQTTv311", 1, 1)
    assert publish_acked(t, "edgeops/demo/pi-01/telemetry", b"v311").wait(5)
    assert seen.wait_for(lambda ms: any(p == b"v311" for _, p, _ in ms))
    old.drop_connections()
    assert wait_until(lambda: t.connects == 2)
    assert (t.protocol, old.v5_attempts) == ("MQTTv311", 1)  # no second try of MQTT 5


# -- the in-memory double -----------------------------------------------------------------------

def test_memory_transport_records_acks_and_delivers():
    got, events = [], []
    t = MemoryTransport(on_connect=lambda: events.append("up"), on_disconnect=events.append,
                        on_message=lambda topic, payload: got.append((topic, payload)), auto_ack=False,
                        will=(STATUS, b"lost", True))
    assert t.publish("a/b", b"x") is False
    t.start()
    acked = []
    assert t.publish("edgeops/demo/pi-01/telemetry", b"1", on_ack=lambda: acked.append(1))
    assert acked == [] and t.ack() == 1 and acked == [1]
    t.subscribe("edgeops/demo/pi-01/cmd/+")
    assert t.deliver("edgeops/demo/pi-01/cmd/ping", b"{}") and got == [("edgeops/demo/pi-01/cmd/ping", b"{}")]
    assert not t.deliver("edgeops/demo/pi-02/cmd/ping", b"{}")
    t.set_connected(False)
    assert t.will_sent and events[:1] == ["up"] and events[1].startswith("connection lost")
    t.set_connected(True)
    t.stop(final=(STATUS, b"stopped", True))
    assert t.connects == 2 and t.messages(STATUS)[-1].payload == b"stopped" and not t.connected


@pytest.mark.parametrize("topic_filter, topic, match", [
    ("a/+/c", "a/b/c", True), ("a/#", "a", True), ("a/#", "a/b/c", True), ("#", "x/y", True),
    ("a/+", "a/b/c", False), ("a/b", "a/c", False), ("a/b/c", "a/b", False),
])
def test_topic_matches(topic_filter, topic, match):
    assert topic_matches(topic_filter, topic) is match
