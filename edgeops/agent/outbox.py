"""The durable outbox: every message the agent sends, kept on disk until the broker has it.

The agent appends each telemetry message and event here *before* it tries to publish it and
deletes it (:meth:`Outbox.ack`) only at the broker's PUBACK, so whatever the network does a
message is either still in the outbox or was delivered at least once. Receivers drop duplicates
by ``id`` and see gaps by ``seq``. One SQLite file (standard library ``sqlite3``); its schema
version is ``PRAGMA user_version``.

**Durability.** WAL journal with ``synchronous=FULL``: when :meth:`Outbox.append` returns, the
row and its ``seq`` are in the WAL and the WAL was fsynced, so they survive SIGKILL of the
process and a power cut (on storage that honours fsync; some cheap SD cards do not). Where the
file system cannot do WAL (network file systems) SQLite keeps its rollback journal: still FULL,
only slower. An ack lost in a power cut means the message is sent again, never that it is lost.

**Sequence numbers.** Each stream ("telemetry", "events", ...) has a counter row advanced in the
same transaction that inserts the message, so ``seq`` starts at 1, continues across restarts and
crashes with no gap and never repeats: not after acks or drops, not with a second process on the
same file. Row ids never repeat either (AUTOINCREMENT), so a late ack of a dropped row cannot
delete a newer one.

**Drop policy.** The outbox is bounded by total payload bytes (``max_bytes``) and age
(``max_age_s``). Each append, in its own transaction, first drops every row older than
``max_age_s``, then the oldest rows (by row id) until the payloads add up to at most
``max_bytes``. The row just appended is never dropped; a message that alone exceeds ``max_bytes``
raises :class:`~edgeops.errors.DataError` and uses up no ``seq``. Expired rows are also dropped
when the outbox opens and before :meth:`Outbox.pending` answers, so nothing older than
``max_age_s`` is handed out. Drops are counted in persisted counters (:meth:`Outbox.stats`).
Ages come from ``clock`` (wall time): rows stamped before a clock jump forward (a board without
a real-time clock syncing NTP) look older than they are; rows stamped in the future stay until
the clock passes them (the size bound still holds). The file never shrinks below its peak size;
SQLite reuses the freed pages.

**Payloads.** Compact UTF-8 JSON. Non-finite floats (NaN, inf) become ``null`` and numpy
scalars plain numbers (telemetry may hold NaN and one bad value should not cost the message);
anything else JSON cannot hold raises DataError. ``append`` sets ``seq`` (the outbox owns it)
and ``id`` (a uuid4 hex unless the message has one) in the stored payload and, once committed,
in the caller's dict too.

**Concurrency.** One connection guarded by a lock, so threads may share an Outbox. Several
processes may open the same file: writers take SQLite's write lock up front (``BEGIN
IMMEDIATE``) and wait up to ``BUSY_TIMEOUT_S`` for it.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from .._io import jsonable
from ..errors import DataError, UsageError

__all__ = ["BUSY_TIMEOUT_S", "SCHEMA_VERSION", "Entry", "Outbox"]

SCHEMA_VERSION = 1
BUSY_TIMEOUT_S = 10.0
_SQLITE_MAGIC = b"SQLite format 3\x00"

_SCHEMA = (
    """CREATE TABLE outbox (
        id      INTEGER PRIMARY KEY AUTOINCREMENT,
        stream  TEXT    NOT NULL,
        seq     INTEGER NOT NULL,
        topic   TEXT    NOT NULL,
        payload BLOB    NOT NULL,
        created REAL    NOT NULL,
        retain  INTEGER NOT NULL,
        UNIQUE (stream, seq))""",
    "CREATE INDEX outbox_created ON outbox (created)",
    "CREATE TABLE streams (stream TEXT PRIMARY KEY, seq INTEGER NOT NULL) WITHOUT ROWID",
    "CREATE TABLE counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID",
    "INSERT INTO counters VALUES ('rows', 0), ('bytes', 0), ('dropped_by_age', 0), ('dropped_by_size', 0)",
    """CREATE TRIGGER outbox_insert AFTER INSERT ON outbox BEGIN
        UPDATE counters SET value = value + 1 WHERE name = 'rows';
        UPDATE counters SET value = value + length(NEW.payload) WHERE name = 'bytes';
    END""",
    """CREATE TRIGGER outbox_delete AFTER DELETE ON outbox BEGIN
        UPDATE counters SET value = value - 1 WHERE name = 'rows';
        UPDATE counters SET value = value - length(OLD.payload) WHERE name = 'bytes';
    END""",
)
_COLUMNS = "id, stream, seq, topic, payload, created, retain"


@dataclass(frozen=True)
class Entry:
    """One stored message; ``rowid`` is what :meth:`Outbox.ack` takes."""

    rowid: int
    stream: str
    seq: int
    topic: str
    payload: bytes
    created: float
    retain: bool


class Outbox:
    """A bounded, crash-safe queue of MQTT messages in one SQLite file (see the module docstring)."""

    def __init__(self, path: str | os.PathLike[str], *, max_bytes: int = 32 * 1024 * 1024,
                 max_age_s: float = 7 * 86400, clock: Callable[[], float] = time.time):
        if not max_bytes > 0 or not max_age_s > 0:
            raise UsageError(f"the outbox needs max_bytes > 0 and max_age_s > 0, got {max_bytes} and {max_age_s}")
        self.path = os.fspath(path)
        self.max_bytes = int(max_bytes)
        self.max_age_s = float(max_age_s)
        self._clock = clock
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = _open(self.path)
        try:
            with self._write() as conn:
                self._expire(conn, self._clock())
        except BaseException:
            self.close()
            raise

    # -- writing ---------------------------------------------------------------------------------

    def append(self, stream: str, topic: str, message: dict[str, Any], *, retain: bool = False) -> Entry:
        """Store ``message`` under the next ``seq`` of ``stream``; durable when this returns."""
        if not isinstance(stream, str) or not stream or not isinstance(topic, str) or not topic:
            raise UsageError(f"stream and topic must be non-empty strings, got {stream!r} and {topic!r}")
        body = _plain(message)
        message_id = body["id"] if "id" in body else uuid.uuid4().hex
        with self._write() as conn:
            now = self._clock()
            seq = _next_seq(conn, stream)
            payload = _encode({**body, "seq": seq, "id": message_id})
            if len(payload) > self.max_bytes:
                raise DataError(f"a {len(payload)}-byte message for {topic} is larger than the whole outbox "
                                f"(max_bytes={self.max_bytes}); send less per message or raise max_bytes")
            cur = conn.execute(f"INSERT INTO outbox ({_COLUMNS}) VALUES (NULL, ?, ?, ?, ?, ?, ?)",
                               (stream, seq, topic, payload, now, int(bool(retain))))
            rowid = int(cur.lastrowid or 0)
            self._expire(conn, now)
            self._shrink(conn, keep=rowid)
        message["seq"] = seq
        message.setdefault("id", message_id)
        return Entry(rowid, stream, seq, topic, payload, now, bool(retain))

    def ack(self, rowid: int) -> None:
        """The broker has the row: delete it. Unknown or already deleted rows are fine."""
        self.ack_many((rowid,))

    def ack_many(self, rowids: Iterable[int]) -> None:
        """:meth:`ack` for several rows in one transaction (one fsync)."""
        ids = [(int(r),) for r in rowids]
        if ids:
            with self._write() as conn:
                conn.executemany("DELETE FROM outbox WHERE id = ?", ids)

    # -- reading ---------------------------------------------------------------------------------

    def pending(self, limit: int = 100, after_rowid: int = 0) -> list[Entry]:
        """Up to ``limit`` unacknowledged rows with ``rowid > after_rowid``, oldest first."""
        with self._lock, _mapped(self.path):
            conn = self._live()
            now = self._clock()
            if conn.execute("SELECT 1 FROM outbox WHERE created < ? LIMIT 1", (now - self.max_age_s,)).fetchone():
                with _transaction(conn):
                    self._expire(conn, now)
            rows = conn.execute(f"SELECT {_COLUMNS} FROM outbox WHERE id > ? ORDER BY id LIMIT ?",
                                (int(after_rowid), max(int(limit), 0))).fetchall()
        return [Entry(r[0], r[1], r[2], r[3], bytes(r[4]), r[5], bool(r[6])) for r in rows]

    def last_seq(self, stream: str) -> int:
        """The ``seq`` the last append to ``stream`` got; 0 when nothing was ever appended."""
        with self._lock, _mapped(self.path):
            row = self._live().execute("SELECT seq FROM streams WHERE stream = ?", (stream,)).fetchone()
        return int(row[0]) if row else 0

    def stats(self) -> dict[str, Any]:
        """Pending rows and bytes, drops (total and by cause, since the file was created), oldest age."""
        with self._lock, _mapped(self.path):
            conn = self._live()
            with _transaction(conn, "BEGIN"):  # one snapshot, whatever other processes do
                counters = dict(conn.execute("SELECT name, value FROM counters").fetchall())
                oldest = conn.execute("SELECT min(created) FROM outbox").fetchone()[0]
            now = self._clock()
        return {
            "pending": counters["rows"],
            "bytes": counters["bytes"],
            "dropped": counters["dropped_by_age"] + counters["dropped_by_size"],
            "dropped_by_age": counters["dropped_by_age"],
            "dropped_by_size": counters["dropped_by_size"],
            "oldest_age_s": None if oldest is None else max(now - oldest, 0.0),
            "max_bytes": self.max_bytes,
            "max_age_s": self.max_age_s,
        }

    # -- lifetime --------------------------------------------------------------------------------

    def close(self) -> None:
        """Close the file; calling it again does nothing."""
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def __enter__(self) -> Outbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Outbox({self.path!r}, max_bytes={self.max_bytes}, max_age_s={self.max_age_s:g})"

    # -- internals -------------------------------------------------------------------------------

    def _live(self) -> sqlite3.Connection:
        if self._conn is None:
            raise UsageError(f"the outbox {self.path} is closed; open a new Outbox")
        return self._conn

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        with self._lock, _mapped(self.path):
            conn = self._live()
            with _transaction(conn):
                yield conn

    def _expire(self, conn: sqlite3.Connection, now: float) -> None:
        cur = conn.execute("DELETE FROM outbox WHERE created < ?", (now - self.max_age_s,))
        _count(conn, "dropped_by_age", cur.rowcount)

    def _shrink(self, conn: sqlite3.Connection, keep: int) -> None:
        """Drop the oldest rows before ``keep`` until the payloads fit in ``max_bytes``."""
        excess = conn.execute("SELECT value FROM counters WHERE name = 'bytes'").fetchone()[0] - self.max_bytes
        if excess <= 0:
            return
        cur = conn.execute("SELECT id, length(payload) FROM outbox WHERE id < ? ORDER BY id", (keep,))
        freed, last = 0, None
        for rowid, size in cur:
            freed, last = freed + size, rowid
            if freed >= excess:
                break
        cur.close()
        if last is not None:
            dropped = conn.execute("DELETE FROM outbox WHERE id <= ?", (last,)).rowcount
            _count(conn, "dropped_by_size", dropped)


# -- opening ---------------------------------------------------------------------------------------

def _open(path: str) -> sqlite3.Connection:
    """Connect, refuse what is not an outbox this version can read, create the schema if new."""
    _check_magic(path)
    with _mapped(path):
        conn = sqlite3.connect(path, timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False)
        try:
            _schema_version(conn, path)  # read-only: refuse foreign or newer files before writing anything
            _use_wal(conn)
            conn.execute("PRAGMA synchronous = FULL")
            with _transaction(conn):
                if _schema_version(conn, path) == 0:  # again under the write lock: another process may have won
                    for statement in _SCHEMA:
                        conn.execute(statement)
                    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        except BaseException:
            conn.close()
            raise
    return conn


def _use_wal(conn: sqlite3.Connection) -> None:
    """Switch to WAL (persistent in the file). The switch needs SQLite's exclusive lock and may get
    "database is locked" at once, without waiting, while another process opens the same new file."""
    deadline = time.monotonic() + BUSY_TIMEOUT_S
    while conn.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
        try:
            conn.execute("PRAGMA journal_mode = WAL").fetchone()  # may answer the old mode: WAL unsupported
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc).lower() or time.monotonic() > deadline:
                raise
            time.sleep(0.01)


def _check_magic(path: str) -> None:
    """Create the folder; refuse (without touching it) a file that is not SQLite at all."""
    try:
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        with open(path, "rb") as f:
            head = f.read(len(_SQLITE_MAGIC))
    except FileNotFoundError:
        return
    except OSError as exc:
        raise DataError(f"cannot open the outbox {path}: {exc}; give a writable file path") from exc
    if head and head != _SQLITE_MAGIC:
        raise DataError(f"{path} is not an outbox (not an SQLite file); it was left as it is: move it aside "
                        f"or give another path, and the agent starts a fresh outbox")


def _schema_version(conn: sqlite3.Connection, path: str) -> int:
    # one statement, one snapshot: another process may create the schema between two reads
    version, tables = conn.execute("SELECT (SELECT user_version FROM pragma_user_version), "
                                   "(SELECT count(*) FROM sqlite_master)").fetchone()
    if version > SCHEMA_VERSION:
        raise DataError(f"the outbox {path} was written by a newer edgeops (schema {version}, this one reads "
                        f"up to {SCHEMA_VERSION}); upgrade edgeops, or move the file aside to start a fresh one")
    if version == 0 and tables:
        raise DataError(f"{path} is an SQLite file but not an edgeops outbox; it was left as it is: "
                        f"give another path, or move it aside")
    return int(version)


# -- helpers ---------------------------------------------------------------------------------------

@contextmanager
def _transaction(conn: sqlite3.Connection, begin: str = "BEGIN IMMEDIATE") -> Iterator[None]:
    """Commit on success, roll back on any exception (also one raised by COMMIT itself)."""
    conn.execute(begin)
    try:
        yield
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


@contextmanager
def _mapped(path: str) -> Iterator[None]:
    """Re-raise SQLite's errors as DataError with what to do next."""
    try:
        yield
    except sqlite3.Error as exc:
        raise DataError(_explain(path, exc)) from exc


def _explain(path: str, exc: sqlite3.Error) -> str:
    text = str(exc)
    low = text.lower()
    if "not a database" in low or "malformed" in low or "corrupt" in low:
        return (f"the outbox {path} is damaged ({text}); move it aside (for example to {path}.bad, with its "
                f"-wal and -shm files) and a fresh one is created; the messages in it are lost")
    if "locked" in low or "busy" in low:
        return (f"the outbox {path} stayed locked by another process for more than {BUSY_TIMEOUT_S:g} s "
                f"({text}); stop the other process or give this one its own file")
    if "full" in low:
        return f"no room to write the outbox {path} ({text}); free disk space or lower max_bytes"
    return f"the outbox {path} cannot be used ({text}); check that the file and its folder are writable"


def _next_seq(conn: sqlite3.Connection, stream: str) -> int:
    row = conn.execute("SELECT seq FROM streams WHERE stream = ?", (stream,)).fetchone()
    seq = (row[0] if row else 0) + 1
    if row:
        conn.execute("UPDATE streams SET seq = ? WHERE stream = ?", (seq, stream))
    else:
        conn.execute("INSERT INTO streams (stream, seq) VALUES (?, ?)", (stream, seq))
    return int(seq)


def _count(conn: sqlite3.Connection, counter: str, n: int) -> None:
    if n > 0:
        conn.execute("UPDATE counters SET value = value + ? WHERE name = ?", (n, counter))


def _plain(message: Any) -> dict[str, Any]:
    """A JSON-ready copy: numpy scalars to numbers, NaN and inf to None."""
    if not isinstance(message, dict):
        raise DataError(f"an outbox message is a dict (a JSON object), got {type(message).__name__}")
    try:
        return jsonable(message)
    except (TypeError, ValueError) as exc:
        raise DataError(f"the message cannot be stored as JSON ({exc}); pass plain numbers, strings, "
                        f"lists and dicts (numpy arrays: .tolist())") from exc


def _encode(body: dict[str, Any]) -> bytes:
    try:
        return json.dumps(body, separators=(",", ":"), allow_nan=False, ensure_ascii=False).encode("utf-8")
    except (TypeError, ValueError) as exc:
        raise DataError(f"the message cannot be stored as JSON ({exc}); pass plain numbers, strings, "
                        f"lists and dicts (numpy arrays: .tolist(), bytes: base64 text)") from exc
