"""Scale out: two collectors share the stream through an MQTT 5 shared subscription, one PostgreSQL store."""

from __future__ import annotations

import time

import pytest

from edgeops.fleet.collector import Collector
from edgeops.fleet.store import open_store
from tests.fleet.test_collector import Publisher, message, wait_until

pytest.importorskip("paho.mqtt.client")

DEVICES = 12
PER_DEVICE = 50


def test_two_collectors_in_a_group_store_every_message_once(broker, pg_url):
    stores = [open_store(pg_url), open_store(pg_url)]
    collectors = [Collector(s, broker.url, "demo", group="collectors", client_id=f"c{i}").start(wait_s=10)
                  for i, s in enumerate(stores)]
    pub = Publisher(broker.url)
    try:
        for seq in range(1, PER_DEVICE + 1):
            for d in range(DEVICES):
                pub.send(f"edgeops/demo/pi-{d:02d}/telemetry", message(f"pi-{d:02d}", seq))
        for d in range(DEVICES):
            pub.send(f"edgeops/demo/pi-{d:02d}/status", {"state": "online", "ts": int(time.time() * 1000)})
        total = DEVICES * PER_DEVICE
        assert wait_until(lambda: sum(c.stats()["stored"] for c in collectors) >= total, 30), \
            [c.stats() for c in collectors]
    finally:
        pub.close()
        for c in collectors:
            c.stop()
    shares = [c.stats()["stored"] for c in collectors]
    assert sum(shares) == total and all(s >= total // 5 for s in shares), shares  # both got a real share
    assert sum(c.stats()["duplicates"] for c in collectors) == 0
    assert all(c.stats()["received"] - DEVICES == c.stats()["stored"] for c in collectors)  # status went to both
    for d in range(DEVICES):
        seqs = [r["seq"] for r in stores[0].telemetry("demo", f"pi-{d:02d}")]
        assert seqs == list(range(1, PER_DEVICE + 1))
    devices = stores[1].devices("demo")
    assert len(devices) == DEVICES and all(d["state"] == "online" and d["last_seq"] == PER_DEVICE for d in devices)
    for s in stores:
        s.close()


def test_two_fleet_serve_processes_with_group_share_real_agents(broker, pg_url, tmp_path):
    import re

    from edgeops.agent import Agent
    from tests.fleet.test_kill_collector import FLEET, Serve

    serves = [Serve(tmp_path, broker.url, pg_url, f"serve-{i}", "--group", "g").start() for i in range(2)]
    agents = [Agent(None, broker=broker.url, fleet=FLEET, device=f"a{i}", store_dir=str(tmp_path / f"a{i}"),
                    interval_s=0.1).start() for i in range(6)]
    try:
        time.sleep(2.5)
        for a in agents:
            a.wait_drained(5)
            a.stop()
        truth, unsent = {}, {}
        for i, a in enumerate(agents):
            from edgeops.agent.outbox import Outbox

            with Outbox(tmp_path / f"a{i}" / "outbox.sqlite") as box:  # what the broker acknowledged: all but these
                truth[a.device] = box.last_seq("telemetry")
                unsent[a.device] = {e.seq for e in box.pending(10**6) if e.stream == "telemetry"}
        with open_store(pg_url) as store:
            assert wait_until(lambda: all(set(range(1, last + 1)) - unsent[d] <= {r["seq"] for r in store.telemetry(FLEET, d)}
                                          for d, last in truth.items()), 20)
            counts = store.counts(FLEET)
            stored = {d: [r["seq"] for r in store.telemetry(FLEET, d)] for d in truth}
    finally:
        codes = [s.stop() for s in serves]
    assert codes == [0, 0]
    for d, last in truth.items():
        assert len(stored[d]) == len(set(stored[d])) and set(stored[d]) <= set(range(1, last + 1)), d
        assert set(range(1, last + 1)) - unsent[d] <= set(stored[d]), d
        assert last >= 10
    shares = [int(re.search(r"stored (\d+)", s.log.read_text()).group(1)) for s in serves]
    assert all(n > 0 for n in shares) and sum(shares) == counts["telemetry"] + counts["events"], (shares, counts)
