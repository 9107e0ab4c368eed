"""The durable outbox: order, seq, compact JSON, bounds, and no loss across reopen, SIGKILL, threads, processes."""

from __future__ import annotations

import json
import math
import os
import random
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from edgeops.agent.outbox import SCHEMA_VERSION, Entry, Outbox
from edgeops.errors import DataError, UsageError

ROOT = Path(__file__).resolve().parents[2]


class Clock:
    """A wall clock the test moves by hand."""

    def __init__(self, now: float = 1_000_000.0):
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "store" / "outbox.sqlite"


@pytest.fixture
def box(path: Path):
    with Outbox(path) as outbox:
        yield outbox


def seqs(entries: list[Entry], stream: str = "telemetry") -> list[int]:
    return [e.seq for e in entries if e.stream == stream]


def child(code: str, *args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen([sys.executable, "-c", code, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env, cwd=ROOT)


# -- round trip --------------------------------------------------------------------------------------

def test_append_pending_ack_round_trip_in_order(box):
    appended = [box.append("telemetry", "edgeops/f/d/telemetry", {"i": i}) for i in range(5)]
    event = box.append("events", "edgeops/f/d/events", {"kind": "boot"}, retain=True)
    assert box.pending() == [*appended, event]
    assert event.retain and not appended[0].retain
    assert box.pending(limit=2) == appended[:2]
    assert box.pending(after_rowid=appended[3].rowid) == [appended[4], event]
    box.ack(appended[1].rowid)
    box.ack_many([appended[0].rowid, event.rowid])
    assert box.pending() == appended[2:]
    assert box.stats()["pending"] == 3


@pytest.mark.parametrize("rowids", [[], [12345], [-1, 0]], ids=["nothing", "unknown-row", "impossible-rows"])
def test_ack_is_idempotent_and_unknown_rows_are_fine(box, rowids):
    entry = box.append("telemetry", "t", {"v": 1})
    box.ack(entry.rowid)
    box.ack(entry.rowid)
    box.ack_many(rowids)
    assert box.pending() == []
    assert box.stats()["bytes"] == 0


def test_seq_is_per_stream_independent_and_continuous(box):
    order = ["telemetry", "events", "telemetry", "telemetry", "events", "health"]
    entries = [box.append(stream, f"t/{stream}", {}) for stream in order]
    assert seqs(entries, "telemetry") == [1, 2, 3]
    assert seqs(entries, "events") == [1, 2]
    assert seqs(entries, "health") == [1]
    assert [json.loads(e.payload)["seq"] for e in entries] == [e.seq for e in entries]
    box.ack_many(e.rowid for e in entries)  # acks never rewind a stream
    assert box.append("telemetry", "t", {}).seq == 4
    assert (box.last_seq("telemetry"), box.last_seq("events"), box.last_seq("never")) == (4, 2, 0)


def test_ids_are_unique_a_given_id_is_kept_and_the_caller_sees_both(box):
    ids = {json.loads(box.append("telemetry", "t", {}).payload)["id"] for _ in range(50)}
    assert len(ids) == 50 and all(len(i) == 32 for i in ids)
    message = {"id": "my-id", "seq": 999, "v": 1}
    entry = box.append("events", "t", message)
    assert json.loads(entry.payload) == {"id": "my-id", "seq": 1, "v": 1}  # the outbox owns seq
    fresh = {"v": 2}
    entry = box.append("events", "t", fresh)
    assert fresh == {"v": 2, "seq": 2, "id": json.loads(entry.payload)["id"]}


@pytest.mark.parametrize(("value", "stored"), [
    (math.nan, None),
    (math.inf, None),
    (-math.inf, None),
    ({"a": [1.5, math.nan, {"b": math.inf}]}, {"a": [1.5, None, {"b": None}]}),
    (np.float32(0.5), 0.5),
    (np.int64(7), 7),
    (np.float64("nan"), None),
    ((1, 2), [1, 2]),
    ("température ✓", "température ✓"),
], ids=["nan", "inf", "-inf", "nested", "np-float32", "np-int64", "np-nan", "tuple", "unicode"])
def test_payload_is_compact_utf8_json_with_non_finite_as_null(box, value, stored):
    message = {"v": value}
    entry = box.append("telemetry", "t", message)
    text = entry.payload.decode("utf-8")
    assert " " not in text.replace("température ✓", "") and "NaN" not in text and "Infinity" not in text
    assert json.loads(text)["v"] == stored
    assert message["v"] is value  # the caller's values are not rewritten


@pytest.mark.parametrize("message", [
    {"blob": b"\x00\x01"},
    {"tags": {"a", "b"}},
    {"image": np.zeros((2, 2))},
    {"obj": object()},
    ["not", "a", "dict"],
], ids=["bytes", "set", "numpy-array", "object", "list-not-dict"])
def test_a_message_json_cannot_hold_raises_and_uses_no_seq(box, message):
    box.append("telemetry", "t", {})
    with pytest.raises(DataError, match="JSON|dict"):
        box.append("telemetry", "t", message)
    assert box.last_seq("telemetry") == 1
    assert box.append("telemetry", "t", {}).seq == 2


# -- restarts and crashes ----------------------------------------------------------------------------

def test_reopen_keeps_pending_rows_seq_and_counters(path):
    with Outbox(path, max_bytes=400) as box:
        for i in range(10):
            box.append("telemetry", "t", {"i": i})
        box.append("events", "t", {})
        first = box.pending(limit=1)[0]
        box.ack(first.rowid)
        before, stats = box.pending(), box.stats()
    with Outbox(path, max_bytes=400) as box:
        assert box.pending() == before
        assert {k: v for k, v in box.stats().items() if k != "oldest_age_s"} == \
               {k: v for k, v in stats.items() if k != "oldest_age_s"}
        assert box.append("telemetry", "t", {}).seq == 11
        assert box.append("events", "t", {}).seq == 2


APPEND_FOREVER = """
import sys
from edgeops.agent.outbox import Outbox
box = Outbox(sys.argv[1])
i = 0
while True:
    entry = box.append("telemetry", "edgeops/f/d/telemetry", {"i": i, "pad": "x" * (i % 300)})
    print(entry.seq, flush=True)
    i += 1
"""


@pytest.mark.parametrize("kill_after", [1, 40, 400], ids=lambda n: f"kill-after-{n}")
def test_sigkill_loses_no_committed_row_and_leaves_no_gap(path, kill_after):
    rng = random.Random(kill_after)
    proc = child(APPEND_FOREVER, str(path))
    printed = []
    try:
        while len(printed) < kill_after:
            line = proc.stdout.readline()
            assert line, proc.stderr.read()
            printed.append(int(line))
        time.sleep(rng.uniform(0, 0.05))  # a random moment, mid-append as likely as not
    finally:
        proc.send_signal(signal.SIGKILL)
        rest, _ = proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    printed += [int(line) for line in rest.splitlines(keepends=True) if line.endswith("\n")]
    with Outbox(path) as box:
        stored = seqs(box.pending(limit=1_000_000))
        n = len(stored)
        assert stored == list(range(1, n + 1))  # contiguous from 1: no gap, no duplicate
        assert set(printed) <= set(stored)  # every append that returned survived
        assert box.last_seq("telemetry") == n
        assert box.append("telemetry", "t", {}).seq == n + 1


# -- bounds ------------------------------------------------------------------------------------------

def test_max_bytes_drops_the_oldest_rows_and_counts_them(path):
    size = len(Outbox(path).append("probe", "t", {"i": 0}).payload)  # every {"i": digit} payload has this size
    with Outbox(path, max_bytes=3 * size + size // 2) as box:
        box.ack_many(e.rowid for e in box.pending())
        entries = [box.append("probe", "t", {"i": i}) for i in range(1, 7)]
        assert box.pending() == entries[-3:]
        stats = box.stats()
        assert (stats["bytes"], stats["dropped_by_size"], stats["dropped"], stats["dropped_by_age"]) == \
               (3 * size, 3, 3, 0)


def test_the_row_just_appended_is_never_dropped(path):
    with Outbox(path, max_bytes=200) as box:
        box.append("telemetry", "t", {"pad": "x" * 100})
        big = box.append("telemetry", "t", {"pad": "y" * 120})  # alone it fits; with the first it does not
        assert box.pending() == [big]
        assert box.stats()["dropped_by_size"] == 1


def test_a_message_larger_than_max_bytes_raises_and_changes_nothing(path):
    with Outbox(path, max_bytes=200) as box:
        kept = box.append("telemetry", "t", {"v": 1})
        with pytest.raises(DataError, match="larger than the whole outbox"):
            box.append("telemetry", "t", {"pad": "x" * 300})
        assert box.pending() == [kept]
        assert box.last_seq("telemetry") == 1
        assert box.stats()["dropped"] == 0


def test_max_age_drops_old_rows_on_append_pending_and_open(path):
    clock = Clock()
    with Outbox(path, max_age_s=100, clock=clock) as box:
        box.append("telemetry", "t", {"at": 0})
        clock.now += 60
        box.append("telemetry", "t", {"at": 60})
        assert box.stats()["oldest_age_s"] == 60
        clock.now += 50  # the first row is now 110 s old
        newest = box.append("telemetry", "t", {"at": 110})
        assert [json.loads(e.payload)["at"] for e in box.pending()] == [60, 110]
        clock.now += 55  # the row from t=60 is now 105 s old: pending never hands it out
        assert box.pending() == [newest]
        stats = box.stats()
        assert (stats["dropped_by_age"], stats["dropped_by_size"], stats["pending"]) == (2, 0, 1)
    clock.now += 1000
    with Outbox(path, max_age_s=100, clock=clock) as box:  # a device that was off for a long time
        stats = box.stats()
        assert (stats["pending"], stats["dropped_by_age"], stats["oldest_age_s"]) == (0, 3, None)
        assert box.append("telemetry", "t", {}).seq == 4


@pytest.mark.parametrize("kwargs", [{"max_bytes": 0}, {"max_age_s": 0}, {"max_age_s": -1.0}],
                         ids=["zero-bytes", "zero-age", "negative-age"])
def test_impossible_bounds_are_usage_errors(path, kwargs):
    with pytest.raises(UsageError, match=r"the outbox needs max_bytes > 0 and max_age_s > 0"):
        Outbox(path, **kwargs)


def test_a_late_ack_of_a_dropped_row_never_deletes_a_newer_one(box):
    first = box.append("telemetry", "t", {})
    box.ack(first.rowid)
    second = box.append("telemetry", "t", {})
    assert second.rowid > first.rowid  # row ids are never reused
    box.ack(first.rowid)
    assert box.pending() == [second]


# -- concurrency -------------------------------------------------------------------------------------

def test_threads_append_while_another_acks(box):
    appended: list[Entry] = []
    done = threading.Event()

    def produce(n: int) -> None:
        for i in range(n):
            appended.append(box.append("telemetry", "t", {"i": i}))

    def consume() -> None:
        while not done.is_set() or box.stats()["pending"]:
            box.ack_many(e.rowid for e in box.pending(limit=7))

    producers = [threading.Thread(target=produce, args=(100,)) for _ in range(4)]
    acker = threading.Thread(target=consume)
    for t in [*producers, acker]:
        t.start()
    for t in producers:
        t.join()
    done.set()
    acker.join()
    assert sorted(e.seq for e in appended) == list(range(1, 401))
    assert len({e.rowid for e in appended}) == 400
    assert len({json.loads(e.payload)["id"] for e in appended}) == 400
    assert box.stats() | {"oldest_age_s": None} == {
        "pending": 0, "bytes": 0, "dropped": 0, "dropped_by_age": 0, "dropped_by_size": 0, "oldest_age_s": None,
        "max_bytes": box.max_bytes, "max_age_s": box.max_age_s}


APPEND_N = """
import sys
from edgeops.agent.outbox import Outbox
with Outbox(sys.argv[1]) as box:
    for i in range(int(sys.argv[3])):
        box.append("telemetry", "t", {"i": i})
        box.append(sys.argv[2], "t", {"i": i})
"""


def test_two_processes_appending_to_one_new_file(path):
    procs = [child(APPEND_N, str(path), name, "150") for name in ("a", "b")]
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
    with Outbox(path) as box:
        pending = box.pending(limit=10_000)
        assert sorted(seqs(pending)) == list(range(1, 301))
        assert seqs(pending, "a") == seqs(pending, "b") == list(range(1, 151))
        assert [e.rowid for e in pending] == sorted({e.rowid for e in pending})
        assert box.stats()["pending"] == 600


# -- files that are not an outbox --------------------------------------------------------------------

def _random_bytes(path: Path) -> None:
    path.write_bytes(random.Random(0).randbytes(8192))


def _header_then_garbage(path: Path) -> None:
    path.write_bytes(b"SQLite format 3\x00" + random.Random(1).randbytes(8176))


def _foreign_sqlite(path: Path) -> None:
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE photos (name TEXT)")
        conn.execute("INSERT INTO photos VALUES ('cat.jpg')")
    conn.close()


def _newer_schema(path: Path) -> None:
    with Outbox(path) as box:
        box.append("telemetry", "t", {})
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()


@pytest.mark.parametrize(("make", "match"), [
    (_random_bytes, "not an outbox"),
    (_header_then_garbage, "damaged.*move it aside"),
    (_foreign_sqlite, "not an edgeops outbox"),
    (_newer_schema, "newer edgeops"),
], ids=["random-bytes", "sqlite-header-then-garbage", "another-sqlite-database", "newer-schema"])
def test_a_file_that_is_not_a_usable_outbox_raises_and_is_left_as_it_was(path, make, match):
    path.parent.mkdir(parents=True)
    make(path)
    before = path.read_bytes()
    files = sorted(os.listdir(path.parent))
    with pytest.raises(DataError, match=match):
        Outbox(path)
    assert path.read_bytes() == before
    assert sorted(os.listdir(path.parent)) == files


def test_a_folder_in_the_way_raises(path):
    path.mkdir(parents=True)
    with pytest.raises(DataError, match="cannot open the outbox"):
        Outbox(path)


def test_a_closed_outbox_says_so(path):
    box = Outbox(path)
    box.close()
    box.close()
    with pytest.raises(UsageError, match="closed"):
        box.append("telemetry", "t", {})
