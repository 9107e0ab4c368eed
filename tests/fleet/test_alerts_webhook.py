"""The alert webhook against a real local http.server: retries with backoff, final 4xx, a bounded queue that never
blocks the evaluation; and make_alert_loop, the server's entry point, end to end."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from edgeops.errors import UsageError
from edgeops.fleet.alerts import Webhook, make_alert_loop
from tests.fleet.alerting import SEC, T0, telemetry


class Endpoint:
    """A real HTTP server on 127.0.0.1 answering each POST with the next of ``codes`` (then 200)."""

    def __init__(self, codes=(), delay: float = 0.0):
        self.codes, self.delay = list(codes), delay
        self.requests: list[tuple[int, dict, str]] = []  # (the status answered, body, content type)
        self.cond = threading.Condition()
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                time.sleep(endpoint.delay)
                with endpoint.cond:
                    code = endpoint.codes.pop(0) if endpoint.codes else 200
                    endpoint.requests.append((code, body, self.headers["Content-Type"]))
                    endpoint.cond.notify_all()
                self.send_response(code)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def wait(self, n: int, timeout: float = 10.0) -> list[tuple[int, dict, str]]:
        with self.cond:
            assert self.cond.wait_for(lambda: len(self.requests) >= n, timeout), self.requests
            return list(self.requests)

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def endpoint():
    made = []

    def make(*args, **kwargs):
        made.append(Endpoint(*args, **kwargs))
        return made[-1]

    yield make
    for e in made:
        e.close()


def wait_until(predicate, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_failing_twice_then_delivered_with_backoff(endpoint):
    ep = endpoint([500, 503])
    hook = Webhook(ep.url, backoff=(0.1, 1.0))
    started = time.monotonic()
    assert hook.send({"rule": "offline", "device": "pi-01", "state": "firing"})
    got = ep.wait(3)
    wait_until(lambda: hook.stats["sent"] == 1)
    assert time.monotonic() - started >= 0.1 + 0.2  # waited 0.1 s, then 0.2 s
    assert [code for code, _, _ in got] == [500, 503, 200]
    assert all(body == {"rule": "offline", "device": "pi-01", "state": "firing"} for _, body, _ in got)
    assert got[0][2] == "application/json"
    assert hook.stats == {"sent": 1, "retries": 2, "failed": 0, "dropped": 0}
    hook.close()


def test_a_client_error_is_final_and_an_endpoint_that_keeps_failing_is_given_up(endpoint):
    ep = endpoint([400, 500, 500, 500])
    hook = Webhook(ep.url, retries=2, backoff=(0.01, 0.02))
    hook.send({"n": 1})
    hook.send({"n": 2})
    wait_until(lambda: hook.stats["failed"] == 2)
    assert [(code, body["n"]) for code, body, _ in ep.requests] == [(400, 1), (500, 2), (500, 2), (500, 2)]
    assert hook.stats["retries"] == 2 and "HTTP 500" in hook.last_error
    hook.close()


def test_nobody_listening_is_retried_and_counted(endpoint):
    ep = endpoint()
    url = ep.url
    ep.close()  # the port is closed now: connection refused
    hook = Webhook(url, retries=1, backoff=(0.01, 0.01))
    hook.send({"n": 1})
    wait_until(lambda: hook.stats["failed"] == 1)
    assert hook.stats["retries"] == 1 and "cannot reach" in hook.last_error
    hook.close()


def test_send_never_blocks_and_a_full_queue_drops(endpoint):
    ep = endpoint(delay=0.5)  # a slow endpoint
    hook = Webhook(ep.url, max_queue=3, timeout=5)
    started = time.monotonic()
    accepted = [hook.send({"n": i}) for i in range(10)]
    assert time.monotonic() - started < 0.2
    assert accepted.count(False) >= 6 and hook.stats["dropped"] == accepted.count(False)
    hook.close(timeout=5)
    assert hook.stats["sent"] == accepted.count(True)


@pytest.mark.parametrize("url", ["ftp://example.org/x", "localhost:8080", ""])
def test_a_bad_webhook_url_is_a_usage_error(url):
    with pytest.raises(UsageError, match="webhook URL must be http"):
        Webhook(url)


def test_make_alert_loop_wires_rules_mqtt_and_the_webhook(tmp_path, broker, endpoint):
    from edgeops.fleet.store import open_store
    from tests.fleet.test_alerts_mqtt import retained_now

    ep = endpoint([502])
    rules = tmp_path / "rules.toml"
    rules.write_text('include_defaults = true\n[rules.offline]\nkind = "offline"\nafter = "30s"\n')
    store = open_store(str(tmp_path / "fleet.db"))
    store.write_batch([telemetry("pi-01", 1, T0, interval_s=60.0)])  # no_telemetry (3 intervals) waits 180 s
    loop, close = make_alert_loop(store, "demo", str(rules), broker.url, webhook_url=ep.url,
                                  client_id="edgeops-alerts-test")
    loop.webhook.backoff = (0.05, 0.1)
    assert loop(T0 + 10 * SEC) == []
    out = loop(T0 + 45 * SEC)
    assert [(x.rule, x.device, x.state) for x in out] == [("offline", "pi-01", "firing")]
    got = ep.wait(2)
    assert [code for code, _, _ in got] == [502, 200] and got[1][1]["rule"] == "offline"
    assert retained_now(broker.url)["edgeops/demo/alerts/offline/pi-01"]["state"] == "firing"
    assert {r.name for r in loop.engine.rules} >= {"offline", "hot", "fleet_drift"}  # the defaults are in
    store.close()
    assert loop(T0 + 50 * SEC) == [] and loop.errors == 1  # a failed evaluation is counted, not raised
    close()


def test_make_alert_loop_refuses_bad_rules_before_connecting(tmp_path):
    rules = tmp_path / "rules.toml"
    rules.write_text('[rules.slow]\nkind = "p95"\nabove = "fast"\n')
    with pytest.raises(UsageError, match="rule 'slow': above must be a number"):
        make_alert_loop(None, "demo", str(rules), "mqtt://127.0.0.1:1")
