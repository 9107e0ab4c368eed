"""Nothing lost, nothing twice: ``kill -9`` the collector (``edgeops fleet serve``) while 10 agents publish.

Ten ``edgeops agent run`` processes send telemetry every 0.1 s; the collector is killed with SIGKILL
three times and started again. Then the agents stop, those with messages left in their outbox run
again until it is empty, and every ``seq`` each agent sent (its outbox's counter is the ground
truth) must be in the store exactly once.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from edgeops.agent.outbox import Outbox
from edgeops.fleet.store import open_store

pytest.importorskip("paho.mqtt.client")

AGENTS = 10
FLEET = "kill"
AGENT_TOML = """
[broker]
url = "{url}"
[device]
fleet = "{fleet}"
id = "{device}"
labels = {{site = "{site}"}}
[telemetry]
interval_s = {interval}
[store]
dir = "{store}"
[model]
name = "digits"
version = "1"
"""


def wait_until(predicate, timeout: float, step: float = 0.1) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step)
    return bool(predicate())


class Serve:
    """``edgeops fleet serve`` in a subprocess; its stderr in a file."""

    def __init__(self, tmp: Path, broker: str, db: str, client_id: str, *extra: str):
        self.log = tmp / f"{client_id}.log"
        self.argv = [sys.executable, "-m", "edgeops", "fleet", "serve", "--broker", broker, "--fleet", FLEET,
                     "--db", db, "--http", "", "--client-id", client_id, *extra]
        self.proc: subprocess.Popen | None = None

    def start(self) -> Serve:
        out = open(self.log, "ab")
        start = self.log.stat().st_size
        self.proc = subprocess.Popen(self.argv, stdout=subprocess.DEVNULL, stderr=out, env={**os.environ, "COLUMNS": "200"})
        out.close()
        assert wait_until(lambda: b"collecting (subscribed)" in self.log.read_bytes()[start:] or self.proc.poll() is not None,
                          30), self.log.read_text()
        assert self.proc.poll() is None, self.log.read_text()
        return self

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> int:
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else 0
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(20)


def agent_config(tmp: Path, url: str, i: int, interval: float) -> Path:
    path = tmp / f"agent{i}.toml"
    path.write_text(AGENT_TOML.format(url=url, fleet=FLEET, device=f"dev-{i:02d}", site="berlin" if i % 2 else "paris",
                                      interval=interval, store=tmp / f"agent{i}"))
    return path


def run_agent(config: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "edgeops", "agent", "run", "--config", str(config)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def stop_all(procs) -> None:
    for p in procs:
        p.send_signal(signal.SIGTERM)
    for p in procs:
        assert p.wait(30) == 0, p.stderr.read().decode()[-2000:]


def outbox(tmp: Path, i: int) -> tuple[int, int, int]:
    """(last seq sent to the outbox, messages still pending, messages dropped) of agent i."""
    with Outbox(tmp / f"agent{i}" / "outbox.sqlite") as box:
        s = box.stats()
        return box.last_seq("telemetry"), s["pending"], s["dropped"]


def stored_seqs(db: str, device: str) -> list[int]:
    with open_store(db) as store:
        return [r["seq"] for r in store.telemetry(FLEET, device, limit=10**6)]


def drain(tmp: Path, url: str, configs: list[Path]) -> None:
    """Run the agents that still hold messages until their outbox is empty (they add a message each)."""
    waiting = [i for i in range(AGENTS) if outbox(tmp, i)[1] > 0]
    if not waiting:
        return
    procs = [run_agent(agent_config(tmp, url, i, 3600)) for i in waiting]
    try:
        assert wait_until(lambda: all(outbox(tmp, i)[1] == 0 for i in waiting), 30), \
            [outbox(tmp, i) for i in waiting]
    finally:
        stop_all(procs)


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_kill_9_the_collector_while_10_agents_publish(broker, tmp_path, request, backend):
    db = str(tmp_path / "fleet.db") if backend == "sqlite" else request.getfixturevalue("pg_url")
    serve = Serve(tmp_path, broker.url, db, "kill-collector").start()
    configs = [agent_config(tmp_path, broker.url, i, 0.1) for i in range(AGENTS)]
    agents = [run_agent(c) for c in configs]
    try:
        assert wait_until(lambda: all((tmp_path / f"agent{i}" / "outbox.sqlite").exists() for i in range(AGENTS)), 20)
        assert wait_until(lambda: all(outbox(tmp_path, i)[0] >= 5 for i in range(AGENTS)), 20)
        counts = []
        for _ in range(3):  # killed mid-stream three times, the agents publishing all along
            time.sleep(1.0)
            serve.kill()
            counts.append(sum(len(stored_seqs(db, f"dev-{i:02d}")) for i in range(AGENTS)))
            time.sleep(0.5)
            serve.start()
        time.sleep(1.0)
    finally:
        stop_all(agents)
    try:
        drain(tmp_path, broker.url, configs)
        truth = {f"dev-{i:02d}": outbox(tmp_path, i) for i in range(AGENTS)}
        assert all(pending == 0 and dropped == 0 for _, pending, dropped in truth.values()), truth
        total = sum(last for last, _, _ in truth.values())
        assert wait_until(lambda: sum(len(stored_seqs(db, d)) for d in truth) >= total, 30)
    finally:
        assert serve.stop() == 0, serve.log.read_text()
    assert counts[0] > 0 and counts == sorted(counts)  # the store grew between the kills
    for device, (last, _, _) in truth.items():
        seqs = stored_seqs(db, device)
        missing = sorted(set(range(1, last + 1)) - set(seqs))
        duplicates = len(seqs) - len(set(seqs))
        assert (missing, duplicates) == ([], 0), device
        assert seqs == list(range(1, last + 1)), device
    with open_store(db) as store:
        devices = {d["id"]: d for d in store.devices(FLEET)}
    assert set(devices) == set(truth) and all(d["state"] == "offline" for d in devices.values())
    assert devices["dev-01"]["labels"] == {"site": "berlin"} and devices["dev-02"]["labels"] == {"site": "paris"}
