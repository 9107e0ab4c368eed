"""No background thread of the agent dies, whatever happens: a full disk drops messages (counted, reported
once there is room again) and the agent goes on by itself; a thread that raises keeps running, a thread
that ends anyway is seen in telemetry (``health.threads``) and started again.

Regression: with the store on a full file system the telemetry thread's error handler wrote an event to
the same outbox, raised DataError and the thread died for good ("Exception in thread
edgeops-agent-telemetry"); once space returned no telemetry was sent while the status still said online.
"""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time

import pytest

from edgeops.agent import Agent
from edgeops.agent.transport import MemoryTransport
from edgeops.errors import DataError
from tests.agent.waiting import wait_until

BASE = "edgeops/demo/pi-01"


@pytest.fixture
def thread_crashes(monkeypatch):
    """Every exception that ends a thread during the test (``threading.excepthook``)."""
    crashes: list[str] = []
    monkeypatch.setattr(threading, "excepthook", lambda a: crashes.append(f"{a.thread.name}: {a.exc_value!r}"))
    return crashes


@pytest.fixture
def small_disk(tmp_path):
    """A 16 MiB tmpfs of its own (a full disk that fills in a moment), unmounted after the test."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    folder = tmp_path / "disk"
    folder.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(folder)], capture_output=True,
                          text=True)
    if done.returncode != 0:
        pytest.skip(f"mounting a tmpfs is not permitted here: {done.stderr.strip()}")
    yield folder
    subprocess.run(["umount", "-l", str(folder)], check=False)


def fill(folder) -> str:
    """Write a file until the file system is full, to the last byte; returns its path."""
    path = os.path.join(folder, "filler")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT)
    try:
        for size in (1 << 16, 512, 1):
            try:
                while True:
                    os.write(fd, b"\0" * size)
            except OSError as exc:
                assert exc.errno == 28, exc  # ENOSPC
    finally:
        os.close(fd)
    return path


def sent(t: MemoryTransport, stream: str) -> list[dict]:
    return [json.loads(m.payload) for m in t.messages(f"{BASE}/{stream}")]


def make_agent(store_dir, transport=None, **kwargs) -> Agent:
    kwargs.setdefault("interval_s", 0.1)
    return Agent(None, transport=transport or MemoryTransport(), fleet="demo", device="pi-01",
                 store_dir=str(store_dir), **kwargs)


def test_a_full_disk_drops_messages_and_the_agent_resumes_when_space_returns(small_disk, thread_crashes):
    t = MemoryTransport()
    with make_agent(small_disk / "store", t) as agent:
        assert wait_until(lambda: len(sent(t, "telemetry")) >= 2)
        filler = fill(small_disk)
        assert wait_until(lambda: agent.dropped_by_write_error >= 3)  # telemetry keeps trying, and is counted
        time.sleep(0.5)
        assert thread_crashes == []
        assert all(agent.threads().values()), agent.threads()
        os.unlink(filler)
        before = len(sent(t, "telemetry"))
        assert wait_until(lambda: len(sent(t, "telemetry")) >= before + 3), "no telemetry after space returned"
        latest = sent(t, "telemetry")[-1]
        dropped = [e for e in sent(t, "events") if e["kind"] == "outbox.dropped"]
    assert thread_crashes == []
    assert latest["outbox"]["dropped"] >= 3 and latest["outbox"]["dropped_by_write_error"] >= 3
    assert all(latest["health"]["threads"].values()), latest["health"]["threads"]
    assert dropped and dropped[0]["count"] >= 3 and "no room" in dropped[0]["error"]


def test_telemetry_that_cannot_be_written_is_counted_and_reported_once_it_can(tmp_path, monkeypatch, thread_crashes):
    """The same at a seam: the outbox refuses three appends, whatever the stream."""
    from edgeops.agent.outbox import Outbox

    real, refusals = Outbox.append, [3]

    def append(self, *args, **kwargs):
        if refusals[0] > 0:
            refusals[0] -= 1
            raise DataError("no room to write the outbox (simulated)")
        return real(self, *args, **kwargs)

    t = MemoryTransport()
    agent = make_agent(tmp_path / "store", t, interval_s=60)
    monkeypatch.setattr(Outbox, "append", append)
    with agent:  # agent.started (an event) is dropped: one
        for _ in range(2):  # two telemetry messages
            with pytest.raises(DataError, match="simulated"):
                agent.telemetry_now()
        message = agent.telemetry_now()
        assert wait_until(lambda: any(e["kind"] == "outbox.dropped" for e in sent(t, "events")))
    assert message["outbox"]["dropped"] == 3 and message["outbox"]["dropped_by_write_error"] == 3
    (event,) = [e for e in sent(t, "events") if e["kind"] == "outbox.dropped"]
    assert event["count"] == 3 and "simulated" in event["error"]
    assert thread_crashes == []


class Boom(Exception):
    pass


def _raise_once(obj, name: str, exc: BaseException, monkeypatch) -> list[int]:
    calls = [0]
    real = getattr(obj, name)

    def once(*args, **kwargs):
        calls[0] += 1
        if calls[0] == 1:
            raise exc
        return real(*args, **kwargs)

    monkeypatch.setattr(obj, name, once)
    return calls


@pytest.mark.parametrize("thread, method", [
    pytest.param("telemetry", "telemetry_now", id="telemetry"),
    pytest.param("sender", "_send_some", id="sender"),
])
def test_a_thread_that_raises_keeps_running_and_says_so(tmp_path, monkeypatch, thread_crashes, thread, method):
    t = MemoryTransport()
    agent = make_agent(tmp_path / "store", t, interval_s=0.1)
    calls = _raise_once(agent, method, Boom("a bug"), monkeypatch)
    with agent:
        assert wait_until(lambda: calls[0] >= 3)  # it ran again after the exception
        assert wait_until(lambda: len(sent(t, "telemetry")) >= 2)
        assert agent.threads()[thread]
        errors = [e for e in sent(t, "events") if e["kind"] == "thread.error"]
    assert errors and errors[0]["thread"] == thread and "Boom: a bug" in errors[0]["error"]
    assert thread_crashes == []


class Killed(BaseException):
    """Not an Exception: what no loop catches (a thread that ends anyway)."""


def test_a_thread_that_ends_is_seen_and_started_again(tmp_path, monkeypatch):
    monkeypatch.setattr(threading, "excepthook", lambda a: None)
    t = MemoryTransport()
    agent = make_agent(tmp_path / "store", t, interval_s=0.1)
    _raise_once(agent, "telemetry_now", Killed(), monkeypatch)
    with agent:
        assert wait_until(lambda: agent.restarts.get("telemetry", 0) == 1)
        before = len(sent(t, "telemetry"))
        assert wait_until(lambda: len(sent(t, "telemetry")) >= before + 2)
        latest = sent(t, "telemetry")[-1]
        events = [e for e in sent(t, "events") if e["kind"] == "thread.restarted"]
    assert latest["health"]["threads"]["telemetry"] is True and latest["health"]["thread_restarts"]["telemetry"] == 1
    assert events and events[0]["thread"] == "telemetry"


def test_the_transports_network_thread_survives_an_exception(broker, monkeypatch, thread_crashes):
    """A bug in one connection attempt (here: building the client) does not end the network thread."""
    from edgeops.agent.transport import MqttTransport

    t = MqttTransport(broker.url, client_id="survivor", backoff=(0.05, 0.1))
    _raise_once(t, "_attempt", Boom("a bug"), monkeypatch)
    t.start()
    try:
        assert t.wait_connected(10), t.last_error
        assert t.alive and "Boom: a bug" in " ".join(t.errors)
    finally:
        t.stop()
    assert thread_crashes == []
