"""The outbox at its edges: exact size bounds, argument checks, WAL, pending limits, ages, and its error messages.

Each test guards a change the rest of the suite let through (found by
``python tools/mutation.py outbox``).
"""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path

import pytest

from edgeops.agent import outbox as outbox_module
from edgeops.agent.outbox import SCHEMA_VERSION, Outbox
from edgeops.errors import DataError, UsageError
from tests.agent.test_outbox import Clock, _foreign_sqlite, _header_then_garbage, _newer_schema


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "store" / "outbox.sqlite"


def message(i: int, pad: int = 0) -> dict:
    """Messages 1..9 of one size (one-digit seq and id), or ``pad`` bytes larger."""
    return {"id": f"m{i}", "v": "x" * (1 + pad)}


def sizes(tmp_path: Path, *pads: int) -> list[int]:
    """The stored size of message(1, pad), message(2, pad)... measured in a scratch outbox."""
    with Outbox(tmp_path / "scratch.sqlite") as box:
        return [len(box.append("t", "topic", message(i + 1, pad)).payload) for i, pad in enumerate(pads)]


def kept(box: Outbox) -> list[int]:
    return [e.seq for e in box.pending()]


# -- the size bound, to the byte ------------------------------------------------------------------

@pytest.mark.parametrize("spare, expected", [
    pytest.param(0, [1, 2, 3], id="exactly-full-drops-nothing"),
    pytest.param(-1, [2, 3], id="one-byte-over-drops-the-oldest"),
    pytest.param(-10, [2, 3], id="over-by-less-than-a-row-drops-one-row"),
])
def test_the_oldest_rows_are_dropped_only_as_far_as_needed(tmp_path, path, spare, expected):
    size = sizes(tmp_path, 0)[0]
    assert size > 10
    with Outbox(path, max_bytes=3 * size + spare) as box:
        for i in (1, 2, 3):
            box.append("t", "topic", message(i))
        assert kept(box) == expected
        assert box.stats()["dropped_by_size"] == 3 - len(expected)


def test_an_excess_of_exactly_one_row_drops_that_row_only(tmp_path, path):
    size = sizes(tmp_path, 0)[0]
    with Outbox(path, max_bytes=2 * size) as box:
        for i in (1, 2, 3):
            box.append("t", "topic", message(i))
        assert kept(box) == [2, 3]


def test_an_excess_one_byte_over_a_row_drops_two_rows(tmp_path, path):
    small, _, big = sizes(tmp_path, 0, 0, 200)
    with Outbox(path, max_bytes=small + big - 1) as box:
        for i, pad in ((1, 0), (2, 0), (3, 200)):
            box.append("t", "topic", message(i, pad))
        assert kept(box) == [3]


def test_a_message_of_exactly_max_bytes_fits(tmp_path, path):
    size = sizes(tmp_path, 0)[0]
    with Outbox(path, max_bytes=size) as box:
        assert box.append("t", "topic", message(1)).seq == 1


def test_the_smallest_bounds_are_allowed(path):
    with Outbox(path, max_bytes=1, max_age_s=0.5) as box:
        assert (box.max_bytes, box.max_age_s) == (1, 0.5)


# -- arguments ------------------------------------------------------------------------------------

@pytest.mark.parametrize("stream, topic", [
    pytest.param("", "topic", id="empty-stream"),
    pytest.param("t", "", id="empty-topic"),
    pytest.param(5, "topic", id="stream-not-a-string"),
    pytest.param("t", None, id="topic-not-a-string"),
])
def test_stream_and_topic_must_be_non_empty_strings(path, stream, topic):
    with Outbox(path) as box:
        with pytest.raises(UsageError, match=f"^stream and topic must be non-empty strings, got {re.escape(repr(stream))} "
                                             f"and {re.escape(repr(topic))}$"):
            box.append(stream, topic, {"v": 1})
        assert box.pending() == []


def test_a_message_that_is_not_a_dict_names_its_type(path):
    with Outbox(path) as box:
        with pytest.raises(DataError, match="^an outbox message is a dict \\(a JSON object\\), got list$"):
            box.append("t", "topic", [1, 2])


# -- reading --------------------------------------------------------------------------------------

def test_pending_hands_out_100_rows_by_default_and_none_for_a_limit_of_0_or_less(path):
    with Outbox(path) as box:
        for i in range(101):
            box.append("t", "topic", {"i": i})
        assert len(box.pending()) == 100
        assert box.pending(limit=0) == [] and box.pending(limit=-5) == []


def test_the_oldest_age_is_measured_on_the_clock(path):
    clock = Clock(1000.0)
    with Outbox(path, clock=clock) as box:
        assert box.stats()["oldest_age_s"] is None
        box.append("t", "topic", {"v": 1})
        clock.now += 0.25
        assert box.stats()["oldest_age_s"] == 0.25


def test_a_new_outbox_file_is_in_wal_mode(path):
    Outbox(path).close()
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        conn.close()


# -- messages that name the file ------------------------------------------------------------------

@pytest.mark.parametrize("make, words", [
    pytest.param(_header_then_garbage, "the outbox {} is damaged", id="damaged"),
    pytest.param(_foreign_sqlite, "{} is an SQLite file but not an edgeops outbox", id="another-sqlite-database"),
    pytest.param(_newer_schema, f"the outbox {{}} was written by a newer edgeops (schema {SCHEMA_VERSION + 1}",
                 id="newer-schema"),
])
def test_an_unusable_file_is_named_in_the_error(path, make, words):
    path.parent.mkdir(parents=True)
    make(path)
    with pytest.raises(DataError, match="^" + re.escape(words.format(path))):
        Outbox(path)


@pytest.mark.parametrize("error, words", [
    pytest.param(sqlite3.DatabaseError("file is not a database"), "is damaged", id="not-a-database"),
    pytest.param(sqlite3.DatabaseError("database disk image is malformed"), "is damaged", id="malformed"),
    pytest.param(sqlite3.DatabaseError("database corrupt at page 3"), "is damaged", id="corrupt"),
    pytest.param(sqlite3.OperationalError("database is locked"), "stayed locked by another process", id="locked"),
    pytest.param(sqlite3.OperationalError("database table is busy"), "stayed locked by another process",
                 id="busy"),
    pytest.param(sqlite3.OperationalError("database or disk is full"), "no room to write", id="full"),
    pytest.param(sqlite3.OperationalError("attempt to write a readonly database"), "cannot be used",
                 id="read-only"),
])
def test_sqlite_errors_are_explained_with_what_to_do(error, words):
    with pytest.raises(DataError, match=re.escape(words)) as err:
        with outbox_module._mapped("/data/outbox.sqlite"):
            raise error
    assert "/data/outbox.sqlite" in str(err.value) and str(error) in str(err.value)
