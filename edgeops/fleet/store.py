"""The fleet's memory: devices, telemetry, events and alerts in sqlite or PostgreSQL.

:func:`open_store` takes ``fleet.db`` / ``sqlite:///path`` (an embedded sqlite file) or
``postgresql://user@host:port/db`` (psycopg 3) and returns a :class:`Store` whose schema is created
or upgraded on the spot (:meth:`Store.migrate`): the ``edgeops_schema`` table holds the version and
each step of ``_MIGRATIONS`` runs once, in one transaction, under a lock (``BEGIN IMMEDIATE`` on
sqlite, ``pg_advisory_xact_lock`` on PostgreSQL), so two collectors starting together migrate once.

Tables (both databases; times are UTC milliseconds, ``ts`` the device's clock, ``received`` the collector's):

* ``devices(fleet, id, first_seen, last_seen, last_ts, state, status_ts, status_received, model_name,
  model_version, model_sha256, labels, last_seq, backend)`` PK (fleet, id). ``state`` comes from the
  retained ``status`` message (online/offline; the last will is offline), newest *received* wins
  (the last will carries the ts of the connect, older than the online status it replaces); a device
  first seen through its telemetry is ``online``. ``last_seen`` = received of its newest telemetry,
  ``last_ts``/``last_seq`` = ts/seq of its newest telemetry by device time; ``labels`` JSON text.
* ``telemetry(id, fleet, device, seq, ts, received, model_name, model_version, count, errors,
  rate_per_s, p50_ms, p95_ms, p99_ms, max_psi, cpu_percent, temperature_c, throttled, outbox_pending,
  outbox_dropped, payload)``: one row per message, ``id`` the message's id (the dedup key), the
  numbers pulled out as columns (``throttled`` 0/1) and the message as sent in ``payload`` (TEXT on
  sqlite, JSONB on PostgreSQL). PostgreSQL partitions it by RANGE (ts) into monthly tables
  ``telemetry_yYYYYmMM`` (PK (id, ts)), created on demand by the writer under an advisory lock (two
  collectors racing for a new month create it once) and dropped whole by :meth:`Store.trim`.
* ``events(id, fleet, device, seq, ts, received, kind, level, payload)`` PK id (the message's ``id``,
  or a hash of topic and payload when it has none).
* ``alerts(fleet, rule, device, state, since, resolved_at, value, threshold, message, updated)``
  PK (fleet, rule, device), device ``""`` for fleet-level alerts; ``alert_log`` keeps each transition.
* (schema 2) ``rollouts(id, fleet, state, phase, stage, spec, reason, gates, created, updated, phase_at)``,
  ``rollout_devices(rollout, device, stage, bucket, state, attempts, from_version, version, deployment,
  error, updated, committed_at)`` PK (rollout, device), ``bundles(sha256, fleet, data, created)`` and
  ``leases(name, holder, expires)`` (the rollout controller's leader lock): see :mod:`edgeops.fleet.rollout`.

Durability: :meth:`Store.write_batch` writes a whole batch in one transaction and returns only when
it is committed; sqlite runs in WAL mode with ``synchronous=FULL`` (the WAL is fsynced at each
commit: the collector acknowledges the MQTT messages right after, so a committed batch must survive
a power cut, and batching makes the fsync cheap), PostgreSQL with its default ``synchronous_commit``.
A message whose ``id`` is already stored is counted as a duplicate and not written again
(``INSERT ... ON CONFLICT DO NOTHING``), which is what makes MQTT's at-least-once delivery
exactly-once in the store. Malformed payloads are counted, never raised.

Threads: a store is shared by the collector's writer, the alert loop and the HTTP threads; each call
takes a connection from a small pool (sqlite: one connection per concurrent caller, writers
serialized by sqlite's lock and ``busy_timeout``).

Sizes: sqlite is the store for one collector (a few hundred devices at a message per 10 s is a few
dozen rows a second, far below what one WAL file takes); several collectors sharing the stream need
PostgreSQL.
"""

from __future__ import annotations

import hashlib
import json
import math
import queue
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from ..errors import BackendUnavailableError, EdgeOpsError, UsageError

__all__ = ["open_store", "Store", "SqliteStore", "PostgresStore", "Incoming", "WriteResult", "StoreError",
           "SCHEMA_VERSION"]

SCHEMA_VERSION = 2
DAY_MS = 86_400_000
_MIGRATE_LOCK = 0x65646765_00000001  # pg_advisory_xact_lock keys ("edge" + n)
_PARTITION_LOCK = 0x65646765_00000002
_MAX_TS = 253_402_300_799_999  # 9999-12-31
_MAX_ID = 200


class StoreError(EdgeOpsError):
    """The database refused a write or cannot be reached; ``transient`` when trying again may work."""

    def __init__(self, message: str, *, transient: bool = True):
        super().__init__(message)
        self.transient = transient


@dataclass
class Incoming:
    """One MQTT message as the collector received it."""

    topic: str  # edgeops/<fleet>/<device>/<kind>, kind in status|telemetry|events
    payload: bytes
    received_ms: int


@dataclass
class WriteResult:
    stored: int = 0
    duplicates: int = 0
    malformed: int = 0
    ts: list[int] = field(default_factory=list)  # the device ts of each telemetry message stored (the lag)


def open_store(db: str) -> Store:
    """``fleet.db`` or ``sqlite:///path`` -> :class:`SqliteStore`; ``postgresql://...`` -> :class:`PostgresStore`.

    The schema is created or upgraded before this returns."""
    if not db:
        raise UsageError("--db needs a sqlite file (fleet.db) or a postgresql://user@host/db URL")
    if db.startswith(("postgresql://", "postgres://")):
        store: Store = PostgresStore(db)
    elif db.startswith("sqlite:///"):  # sqlite:///relative/path, sqlite:////absolute/path (SQLAlchemy's spelling)
        store = SqliteStore(db[len("sqlite:///"):])
    elif "://" in db:
        raise UsageError(f"--db {db!r}: use a sqlite file path, sqlite:///path or postgresql://...")
    else:
        store = SqliteStore(db)
    try:
        store.migrate()
    except BaseException:
        store.close()
        raise
    return store


# -- parsing the messages ---------------------------------------------------------------------------------

_TCOLS = ("id", "fleet", "device", "seq", "ts", "received", "model_name", "model_version", "count", "errors",
          "rate_per_s", "p50_ms", "p95_ms", "p99_ms", "max_psi", "cpu_percent", "temperature_c", "throttled",
          "outbox_pending", "outbox_dropped", "payload")
_ECOLS = ("id", "fleet", "device", "seq", "ts", "received", "kind", "level", "payload")
_DCOLS = ("fleet", "id", "first_seen", "last_seen", "last_ts", "state", "status_ts", "status_received",
          "model_name", "model_version", "model_sha256", "labels", "last_seq", "backend")
_ACOLS = ("fleet", "rule", "device", "state", "since", "resolved_at", "value", "threshold", "message", "updated")


def _int(v: Any) -> int | None:
    if isinstance(v, bool):
        return int(v)
    if isinstance(v, int) and -(2 ** 63) <= v < 2 ** 63:
        return v
    if isinstance(v, float) and math.isfinite(v) and v.is_integer() and abs(v) < 2 ** 53:
        return int(v)
    return None


def _float(v: Any) -> float | None:
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        f = float(v)
        return f if math.isfinite(f) and abs(f) < 1e300 else None
    return None


def _str(v: Any, limit: int = 1000) -> str | None:
    return v[:limit] if isinstance(v, str) else None


def _obj(v: Any) -> dict[str, Any]:
    return v if isinstance(v, dict) else {}


def _dig(d: Any, *keys: str) -> Any:
    for k in keys:
        if not isinstance(d, dict):
            return None
        d = d.get(k)
    return d


def _labels(message: dict[str, Any]) -> str | None:
    labels = message.get("labels")
    if not isinstance(labels, dict):
        return None
    return json.dumps({str(k): v for k, v in labels.items() if isinstance(v, (str, int, float, bool))},
                      sort_keys=True)


class _Parsed:
    """A batch split into rows: telemetry, events, status updates, per-device telemetry summaries."""

    def __init__(self) -> None:
        self.telemetry: list[tuple[Any, ...]] = []
        self.events: list[tuple[Any, ...]] = []
        self.status: list[tuple[Any, ...]] = []
        self.devices: dict[tuple[str, str], dict[str, Any]] = {}
        self.malformed = 0
        self.duplicates = 0


def _decode(payload: bytes) -> dict[str, Any] | None:
    from .. import _json

    if b"\\u0000" in payload:  # PostgreSQL text and jsonb cannot hold NUL
        return None
    try:
        message = _json.loads(payload, what="a fleet message", max_bytes=1 << 20)
    except EdgeOpsError:
        return None
    return message if isinstance(message, dict) else None


def _parse(msgs: list[Incoming]) -> _Parsed:
    out = _Parsed()
    seen: set[str] = set()
    for m in msgs:
        parts = m.topic.split("/")
        if len(parts) != 4 or parts[0] != "edgeops" or not parts[1] or not parts[2]:
            out.malformed += 1
            continue
        _, fleet, device, kind = parts
        if kind == "status" and not m.payload:
            continue  # a retained status cleared by an operator: nothing to store
        message = _decode(m.payload)
        if message is None or kind not in ("status", "telemetry", "events"):
            out.malformed += 1
            continue
        if kind == "status":
            state = message.get("state")
            if state not in ("online", "offline"):
                out.malformed += 1
                continue
            model = _obj(message.get("model"))
            out.status.append((fleet, device, m.received_ms, state, _int(message.get("ts")), m.received_ms,
                               _str(model.get("name")), _str(model.get("version")), _str(model.get("sha256")),
                               _labels(message)))
            continue
        text = m.payload.decode("utf-8")
        ts = _int(message.get("ts"))
        seq = _int(message.get("seq"))
        mid = message.get("id")
        if kind == "events":
            if not isinstance(mid, str) or not mid or len(mid) > _MAX_ID:
                mid = "h" + hashlib.sha256(m.topic.encode() + b"\0" + m.payload).hexdigest()[:40]
            if ts is None or not 0 <= ts <= _MAX_TS:
                ts = m.received_ms
        elif not isinstance(mid, str) or not mid or len(mid) > _MAX_ID or seq is None \
                or ts is None or not 0 <= ts <= _MAX_TS:
            out.malformed += 1  # telemetry without its id, seq or ts cannot be deduplicated or placed
            continue
        if mid in seen:
            out.duplicates += 1
            continue
        seen.add(mid)
        if kind == "events":
            out.events.append((mid, fleet, device, seq, ts, m.received_ms, _str(message.get("kind"), 200),
                               _str(message.get("level"), 50), text))
            continue
        model = _obj(message.get("model"))
        lat = _dig(message, "inference", "latency_ms")
        out.telemetry.append((
            mid, fleet, device, seq, ts, m.received_ms, _str(model.get("name")), _str(model.get("version")),
            _int(_dig(message, "inference", "count")), _int(_dig(message, "inference", "errors")),
            _float(_dig(message, "inference", "rate_per_s")), _float(_dig(lat, "p50")), _float(_dig(lat, "p95")),
            _float(_dig(lat, "p99")), _float(_dig(message, "drift", "max_psi")),
            _float(_dig(message, "health", "cpu_percent")), _float(_dig(message, "health", "temperature_c")),
            _int(_dig(message, "health", "throttled")), _int(_dig(message, "outbox", "pending")),
            _int(_dig(message, "outbox", "dropped")), text))
        d = out.devices.get((fleet, device))
        if d is None:
            d = out.devices[(fleet, device)] = {"first_seen": m.received_ms, "last_seen": m.received_ms, "ts": -1}
        d["first_seen"] = min(d["first_seen"], m.received_ms)
        d["last_seen"] = max(d["last_seen"], m.received_ms)
        if ts >= d["ts"]:
            d.update(ts=ts, seq=seq, model_name=_str(model.get("name")), model_version=_str(model.get("version")),
                     model_sha256=_str(model.get("sha256")), labels=_labels(message),
                     backend=_str(_dig(message, "runtime", "backend"), 100))
    return out


# -- the store ----------------------------------------------------------------------------------------------

class _Pool:
    """Up to ``size`` connections made by ``factory``; a connection that failed is closed, not reused."""

    def __init__(self, factory: Any, size: int):
        self._factory = factory
        self._idle: queue.LifoQueue[Any] = queue.LifoQueue()
        self._slots = threading.BoundedSemaphore(size)
        self._all: list[Any] = []
        self._lock = threading.Lock()
        self.closed = False

    @contextmanager
    def get(self) -> Iterator[Any]:
        if self.closed:
            raise StoreError("the store is closed", transient=False)
        self._slots.acquire()
        try:
            try:
                conn = self._idle.get_nowait()
            except queue.Empty:
                conn = self._factory()
                with self._lock:
                    self._all.append(conn)
            try:
                yield conn
            except BaseException as exc:
                self._discard(conn)
                if getattr(exc, "transient", False):  # the server went away: its other connections are gone too
                    self._drain_idle()
                raise
            if self.closed:
                self._discard(conn)
            else:
                self._idle.put(conn)
        finally:
            self._slots.release()

    def _drain_idle(self) -> None:
        while True:
            try:
                self._discard(self._idle.get_nowait())
            except queue.Empty:
                return

    def _discard(self, conn: Any) -> None:
        with self._lock:
            if conn in self._all:
                self._all.remove(conn)
        try:
            conn.close()
        except Exception:
            pass

    def close(self) -> None:
        self.closed = True
        with self._lock:
            conns, self._all = self._all, []
        for conn in conns:
            try:
                conn.close()
            except Exception:
                pass


class Store:
    """The base: SQL that both databases run (written with ``?`` placeholders), the dialect in subclasses."""

    kind = ""
    _greatest = "max"
    _least = "min"

    def __init__(self) -> None:
        self._pool: _Pool

    # dialect hooks
    def _sql(self, sql: str) -> str:
        return sql

    @contextmanager
    def _write(self) -> Iterator[Any]:  # a cursor in a transaction, committed on exit
        raise NotImplementedError

    @contextmanager
    def _read(self) -> Iterator[Any]:
        raise NotImplementedError

    def _ddl(self) -> dict[int, list[str]]:
        raise NotImplementedError

    def _insert_rows(self, cur: Any, table: str, cols: tuple[str, ...], rows: list[tuple[Any, ...]]) -> list[int]:
        """Insert ``rows``, skipping ids already stored; returns the ``ts`` of each row inserted."""
        raise NotImplementedError

    def _payload(self, value: Any) -> Any:
        return json.loads(value) if isinstance(value, str) else value

    # -- schema

    def migrate(self) -> int:
        """Create the tables or bring them to :data:`SCHEMA_VERSION`; returns the version. Idempotent."""
        with self._write() as cur:
            self._lock_migration(cur)
            cur.execute("CREATE TABLE IF NOT EXISTS edgeops_schema (version INTEGER NOT NULL)")
            cur.execute("SELECT max(version) FROM edgeops_schema")
            row = cur.fetchone()
            version = int(row[0]) if row and row[0] is not None else 0
            if version > SCHEMA_VERSION:
                raise StoreError(f"the fleet store is at schema version {version}, newer than this edgeops "
                                 f"understands ({SCHEMA_VERSION}); upgrade edgeops", transient=False)
            for step, statements in sorted(self._ddl().items()):
                if step <= version:
                    continue
                for sql in statements:
                    cur.execute(sql)
                cur.execute(self._sql("INSERT INTO edgeops_schema (version) VALUES (?)"), (step,))
                version = step
        return version

    def _lock_migration(self, cur: Any) -> None:
        pass

    # -- writes

    def write_batch(self, msgs: list[Incoming]) -> WriteResult:
        """Store ``msgs`` in ONE transaction; returns when it is committed. Telemetry and events already
        stored (same ``id``) count as duplicates; unreadable messages as malformed (never raised)."""
        p = _parse(msgs)
        result = WriteResult(duplicates=p.duplicates, malformed=p.malformed)
        if not (p.telemetry or p.events or p.status):
            return result
        with self._write() as cur:
            self._before_insert(cur, p)
            if p.telemetry:
                result.ts = self._insert_rows(cur, "telemetry", _TCOLS, p.telemetry)
                result.stored += len(result.ts)
                result.duplicates += len(p.telemetry) - len(result.ts)
            if p.events:
                n = len(self._insert_rows(cur, "events", _ECOLS, p.events))
                result.stored += n
                result.duplicates += len(p.events) - n
            # Device rows are upserted in (fleet, id) order, telemetry before status for one device, so two
            # collectors writing overlapping batches lock rows in the same order and cannot deadlock.
            upserts: list[tuple[tuple[str, str, int, int], str, tuple[Any, ...]]] = []
            for (fleet, device), d in p.devices.items():
                upserts.append(((fleet, device, 0, 0), self._sql(self._device_sql), (
                    fleet, device, d["first_seen"], d["last_seen"], d["ts"], "online", None, None, d["model_name"],
                    d["model_version"], d["model_sha256"], d["labels"], d["seq"], d["backend"])))
            for i, s in enumerate(p.status):
                fleet, device, received, state, status_ts, status_received, name, version, sha, labels = s
                upserts.append(((fleet, device, 1, i), self._sql(self._status_sql), (
                    fleet, device, received, None, None, state, status_ts, status_received, name, version, sha,
                    labels, None, None)))
            for _, sql, params in sorted(upserts, key=lambda u: u[0]):
                cur.execute(sql, params)
        self._after_commit(p)
        return result

    def _before_insert(self, cur: Any, p: _Parsed) -> None:
        pass

    def _after_commit(self, p: _Parsed) -> None:
        pass

    @property
    def _device_sql(self) -> str:
        g, lst = self._greatest, self._least
        newer = "excluded.last_ts >= COALESCE(devices.last_ts, -1)"
        keep = ", ".join(f"{c} = CASE WHEN {newer} THEN COALESCE(excluded.{c}, devices.{c}) ELSE devices.{c} END"
                         for c in ("model_name", "model_version", "model_sha256", "labels", "backend"))
        return (f"INSERT INTO devices ({', '.join(_DCOLS)}) VALUES ({', '.join('?' * len(_DCOLS))}) "
                f"ON CONFLICT (fleet, id) DO UPDATE SET "
                f"first_seen = {lst}(COALESCE(devices.first_seen, excluded.first_seen), excluded.first_seen), "
                f"last_seen = {g}(COALESCE(devices.last_seen, 0), excluded.last_seen), {keep}, "
                f"last_seq = CASE WHEN {newer} THEN excluded.last_seq ELSE devices.last_seq END, "
                f"last_ts = {g}(COALESCE(devices.last_ts, -1), excluded.last_ts)")

    @property
    def _status_sql(self) -> str:
        g, lst = self._greatest, self._least
        newer = "excluded.status_received >= COALESCE(devices.status_received, 0)"
        model = ", ".join(f"{c} = CASE WHEN devices.{c} IS NULL OR ({newer} AND COALESCE(excluded.status_ts, 0) >= "
                          f"COALESCE(devices.last_ts, 0)) THEN COALESCE(excluded.{c}, devices.{c}) ELSE devices.{c} END"
                          for c in ("model_name", "model_version", "model_sha256", "labels"))
        return (f"INSERT INTO devices ({', '.join(_DCOLS)}) VALUES ({', '.join('?' * len(_DCOLS))}) "
                f"ON CONFLICT (fleet, id) DO UPDATE SET "
                f"first_seen = {lst}(COALESCE(devices.first_seen, excluded.first_seen), excluded.first_seen), "
                f"state = CASE WHEN {newer} THEN excluded.state ELSE devices.state END, "
                f"status_ts = CASE WHEN {newer} THEN excluded.status_ts ELSE devices.status_ts END, {model}, "
                f"status_received = {g}(COALESCE(devices.status_received, 0), excluded.status_received)")

    def upsert_alert(self, alert: dict[str, Any]) -> None:
        """Insert or update the alert keyed (fleet, rule, device); a change of state is logged in ``alert_log``."""
        if not alert.get("fleet") or not alert.get("rule") or alert.get("state") not in ("firing", "resolved"):
            raise UsageError(f"an alert needs fleet, rule and state firing|resolved; got {alert!r}")
        row = {c: alert.get(c) for c in _ACOLS}
        row["device"] = row["device"] or ""
        row["updated"] = row["updated"] or int(time.time() * 1000)
        if row["since"] is None:
            row["since"] = row["updated"]
        values = tuple(row[c] for c in _ACOLS)
        with self._write() as cur:
            cur.execute(self._sql("SELECT state FROM alerts WHERE fleet = ? AND rule = ? AND device = ?"),
                        (row["fleet"], row["rule"], row["device"]))
            old = cur.fetchone()
            sets = ", ".join(f"{c} = excluded.{c}" for c in _ACOLS[3:])
            cur.execute(self._sql(f"INSERT INTO alerts ({', '.join(_ACOLS)}) VALUES ({', '.join('?' * len(_ACOLS))}) "
                                  f"ON CONFLICT (fleet, rule, device) DO UPDATE SET {sets}"), values)
            if old is None or old[0] != row["state"]:
                cur.execute(self._sql("INSERT INTO alert_log (fleet, rule, device, state, at, value, threshold, message)"
                                      " VALUES (?, ?, ?, ?, ?, ?, ?, ?)"),
                            (row["fleet"], row["rule"], row["device"], row["state"], row["updated"], row["value"],
                             row["threshold"], row["message"]))

    def trim(self, retention_days: float, now_ms: int | None = None, batch: int = 5000) -> int:
        """Remove telemetry and events older than ``retention_days``, ``batch`` rows per transaction (so the
        collector's writes go on in between); returns the rows removed."""
        if retention_days <= 0 or batch <= 0:
            raise UsageError("trim needs retention_days > 0 and batch > 0")
        cutoff = (int(time.time() * 1000) if now_ms is None else now_ms) - int(retention_days * DAY_MS)
        removed = self._drop_old_partitions(cutoff)
        for table in ("telemetry", "events"):
            while True:
                with self._write() as cur:
                    key = self._row_key if table == "telemetry" else "id"
                    cur.execute(self._sql(f"DELETE FROM {table} WHERE ({key}) IN "
                                          f"(SELECT {key} FROM {table} WHERE ts < ? LIMIT ?)"),
                                (cutoff, batch))
                    n = max(cur.rowcount, 0)
                removed += n
                if n < batch:
                    break
        return removed

    _row_key = "id"

    def _drop_old_partitions(self, cutoff: int) -> int:
        return 0

    # -- reads

    def _rows(self, sql: str, params: tuple[Any, ...]) -> list[dict[str, Any]]:
        for attempt in (1, 2):  # a pooled connection the server closed meanwhile fails once: read again
            try:
                with self._read() as cur:
                    cur.execute(self._sql(sql), params)
                    names = [d[0] for d in cur.description]
                    return [dict(zip(names, r)) for r in cur.fetchall()]
            except StoreError as exc:
                if attempt == 2 or not exc.transient:
                    raise
        raise AssertionError("unreachable")

    def _device_row(self, row: dict[str, Any]) -> dict[str, Any]:
        row["labels"] = json.loads(row["labels"]) if row.get("labels") else {}
        return row

    def devices(self, fleet: str) -> list[dict[str, Any]]:
        return [self._device_row(r) for r in
                self._rows(f"SELECT {', '.join(_DCOLS)} FROM devices WHERE fleet = ? ORDER BY id", (fleet,))]

    def device(self, fleet: str, device: str) -> dict[str, Any] | None:
        rows = self._rows(f"SELECT {', '.join(_DCOLS)} FROM devices WHERE fleet = ? AND id = ?", (fleet, device))
        return self._device_row(rows[0]) if rows else None

    def _telemetry_rows(self, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        for r in rows:
            r["payload"] = self._payload(r["payload"])
        return rows

    def telemetry(self, fleet: str, device: str, since_ms: int = 0, until_ms: int | None = None,
                  limit: int = 10000) -> list[dict[str, Any]]:
        """The device's telemetry rows with ``since_ms <= ts < until_ms``, oldest first (by ts, then seq),
        at most ``limit``; each has the numeric columns and ``payload``, the message as sent (a dict)."""
        until = _MAX_TS + 1 if until_ms is None else int(until_ms)
        return self._telemetry_rows(self._rows(
            f"SELECT {', '.join(_TCOLS)} FROM telemetry WHERE fleet = ? AND device = ? AND ts >= ? AND ts < ? "
            "ORDER BY ts, seq LIMIT ?", (fleet, device, int(since_ms), until, int(limit))))

    def latest_telemetry(self, fleet: str) -> dict[str, dict[str, Any]]:
        """device -> its newest telemetry row (by device ts)."""
        cols = ", ".join(f"t.{c}" for c in _TCOLS)
        rows = self._telemetry_rows(self._rows(
            f"SELECT {cols} FROM devices d JOIN telemetry t ON t.fleet = d.fleet AND t.device = d.id "
            "AND t.ts = d.last_ts WHERE d.fleet = ? ORDER BY t.seq", (fleet,)))
        return {r["device"]: r for r in rows}

    def events(self, fleet: str, device: str | None = None, since_ms: int = 0,
               limit: int = 1000) -> list[dict[str, Any]]:
        """Events with ``ts >= since_ms``, NEWEST first, at most ``limit``; ``payload`` decoded."""
        where, params = "fleet = ? AND ts >= ?", [fleet, int(since_ms)]
        if device is not None:
            where += " AND device = ?"
            params.append(device)
        return self._telemetry_rows(self._rows(
            f"SELECT {', '.join(_ECOLS)} FROM events WHERE {where} ORDER BY ts DESC, received DESC LIMIT ?",
            (*params, int(limit))))

    def alerts(self, fleet: str, state: str | None = None, limit: int = 1000) -> list[dict[str, Any]]:
        """Alerts of the fleet (``state`` firing|resolved to filter), newest ``updated`` first."""
        where, params = "fleet = ?", [fleet]
        if state is not None:
            where += " AND state = ?"
            params.append(state)
        return self._rows(f"SELECT {', '.join(_ACOLS)} FROM alerts WHERE {where} ORDER BY updated DESC, rule, device "
                          "LIMIT ?", (*params, int(limit)))

    def alert_log(self, fleet: str, limit: int = 1000) -> list[dict[str, Any]]:
        """Alert transitions, newest first."""
        return self._rows("SELECT fleet, rule, device, state, at, value, threshold, message FROM alert_log "
                          "WHERE fleet = ? ORDER BY at DESC, n DESC LIMIT ?", (fleet, int(limit)))

    # -- rollouts (schema 2; the controller in edgeops.fleet.rollout owns what the rows mean)

    _ROLLOUT_COLS = ("id", "fleet", "state", "phase", "stage", "spec", "reason", "gates", "created", "updated",
                     "phase_at")
    _RDEV_COLS = ("rollout", "device", "stage", "bucket", "state", "attempts", "from_version", "version",
                  "deployment", "error", "updated", "committed_at")

    def _upsert(self, table: str, cols: tuple[str, ...], keys: tuple[str, ...], row: dict[str, Any]) -> None:
        values = tuple(row.get(c) for c in cols)
        sets = ", ".join(f"{c} = excluded.{c}" for c in cols if c not in keys)
        with self._write() as cur:
            cur.execute(self._sql(f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))}) "
                                  f"ON CONFLICT ({', '.join(keys)}) DO UPDATE SET {sets}"), values)

    def put_rollout(self, row: dict[str, Any]) -> None:
        """Insert or replace a rollout row (``spec`` and ``gates`` as JSON-ready values)."""
        row = dict(row, spec=json.dumps(row.get("spec") or {}), gates=json.dumps(row.get("gates")))
        self._upsert("rollouts", self._ROLLOUT_COLS, ("id",), row)

    def _rollout_row(self, r: dict[str, Any]) -> dict[str, Any]:
        r["spec"] = json.loads(r["spec"]) if r.get("spec") else {}
        r["gates"] = json.loads(r["gates"]) if r.get("gates") else None
        return r

    def rollout(self, rollout_id: str) -> dict[str, Any] | None:
        rows = self._rows(f"SELECT {', '.join(self._ROLLOUT_COLS)} FROM rollouts WHERE id = ?", (rollout_id,))
        return self._rollout_row(rows[0]) if rows else None

    def rollouts(self, fleet: str, states: tuple[str, ...] | None = None, limit: int = 1000) -> list[dict[str, Any]]:
        """The fleet's rollouts (``states`` to filter), newest first."""
        where, params = "fleet = ?", [fleet]
        if states:
            where += f" AND state IN ({', '.join('?' * len(states))})"
            params += list(states)
        return [self._rollout_row(r) for r in self._rows(
            f"SELECT {', '.join(self._ROLLOUT_COLS)} FROM rollouts WHERE {where} ORDER BY created DESC, id LIMIT ?",
            (*params, int(limit)))]

    def put_rollout_device(self, row: dict[str, Any]) -> None:
        self._upsert("rollout_devices", self._RDEV_COLS, ("rollout", "device"), row)

    def rollout_devices(self, rollout_id: str) -> list[dict[str, Any]]:
        return self._rows(f"SELECT {', '.join(self._RDEV_COLS)} FROM rollout_devices WHERE rollout = ? ORDER BY device",
                          (rollout_id,))

    def put_bundle(self, fleet: str, sha256: str, data: bytes) -> None:
        with self._write() as cur:
            cur.execute(self._sql("INSERT INTO bundles (sha256, fleet, data, created) VALUES (?, ?, ?, ?) "
                                  "ON CONFLICT (sha256) DO NOTHING"), (sha256, fleet, data, int(time.time() * 1000)))

    def bundle(self, sha256: str) -> bytes | None:
        rows = self._rows("SELECT data FROM bundles WHERE sha256 = ?", (sha256,))
        return bytes(rows[0]["data"]) if rows else None

    def take_lease(self, name: str, holder: str, ttl_ms: int, now_ms: int | None = None) -> bool:
        """The leader lock as a row: True when ``holder`` holds ``name`` now (it was free, expired or its own);
        the lease lasts ``ttl_ms`` from now and is renewed by calling again."""
        now = int(time.time() * 1000) if now_ms is None else now_ms
        with self._write() as cur:
            cur.execute(self._sql("INSERT INTO leases (name, holder, expires) VALUES (?, ?, ?) "
                                  "ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires = excluded.expires "
                                  "WHERE leases.holder = excluded.holder OR leases.expires < ?"),
                        (name, holder, now + ttl_ms, now))
            cur.execute(self._sql("SELECT holder FROM leases WHERE name = ?"), (name,))
            row = cur.fetchone()
        return bool(row and row[0] == holder)

    def counts(self, fleet: str | None = None) -> dict[str, int]:
        """Rows per table (of ``fleet`` when given)."""
        out = {}
        for table in ("devices", "telemetry", "events", "alerts"):
            sql = f"SELECT count(*) AS n FROM {table}" + (" WHERE fleet = ?" if fleet is not None else "")
            out[table] = int(self._rows(sql, (fleet,) if fleet is not None else ())[0]["n"])
        return out

    def close(self) -> None:
        self._pool.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


# -- sqlite -------------------------------------------------------------------------------------------------

def _common_ddl(json_type: str, real: str, big: str, serial: str) -> list[str]:
    return [
        f"""CREATE TABLE devices (fleet TEXT NOT NULL, id TEXT NOT NULL, first_seen {big}, last_seen {big},
            last_ts {big}, state TEXT NOT NULL DEFAULT 'unknown', status_ts {big}, status_received {big},
            model_name TEXT, model_version TEXT, model_sha256 TEXT, labels TEXT, last_seq {big}, backend TEXT,
            PRIMARY KEY (fleet, id))""",
        f"""CREATE TABLE events (id TEXT PRIMARY KEY, fleet TEXT NOT NULL, device TEXT NOT NULL, seq {big},
            ts {big} NOT NULL, received {big} NOT NULL, kind TEXT, level TEXT, payload {json_type} NOT NULL)""",
        "CREATE INDEX events_fleet_device_ts ON events (fleet, device, ts)",
        "CREATE INDEX events_ts ON events (ts)",
        f"""CREATE TABLE alerts (fleet TEXT NOT NULL, rule TEXT NOT NULL, device TEXT NOT NULL DEFAULT '',
            state TEXT NOT NULL, since {big}, resolved_at {big}, value {real}, threshold {real}, message TEXT,
            updated {big} NOT NULL, PRIMARY KEY (fleet, rule, device))""",
        f"""CREATE TABLE alert_log (n {serial}, fleet TEXT NOT NULL, rule TEXT NOT NULL, device TEXT NOT NULL,
            state TEXT NOT NULL, at {big} NOT NULL, value {real}, threshold {real}, message TEXT)""",
        "CREATE INDEX alert_log_fleet_at ON alert_log (fleet, at)",
    ]


def _rollout_ddl(text: str, real: str, big: str, blob: str) -> list[str]:
    """Schema 2: the rollout controller's state (edgeops.fleet.rollout); JSON held as text on both databases."""
    return [
        f"""CREATE TABLE rollouts (id TEXT PRIMARY KEY, fleet TEXT NOT NULL, state TEXT NOT NULL, phase TEXT NOT NULL,
            stage INTEGER NOT NULL, spec {text} NOT NULL, reason TEXT, gates {text}, created {big} NOT NULL,
            updated {big} NOT NULL, phase_at {big} NOT NULL)""",
        "CREATE INDEX rollouts_fleet_state ON rollouts (fleet, state)",
        f"""CREATE TABLE rollout_devices (rollout TEXT NOT NULL, device TEXT NOT NULL, stage INTEGER NOT NULL,
            bucket {real} NOT NULL, state TEXT NOT NULL, attempts INTEGER NOT NULL DEFAULT 0, from_version TEXT,
            version TEXT, deployment TEXT, error TEXT, updated {big} NOT NULL, committed_at {big},
            PRIMARY KEY (rollout, device))""",
        f"CREATE TABLE bundles (sha256 TEXT PRIMARY KEY, fleet TEXT NOT NULL, data {blob} NOT NULL, created {big})",
        f"CREATE TABLE leases (name TEXT PRIMARY KEY, holder TEXT NOT NULL, expires {big} NOT NULL)",
    ]


def _telemetry_columns(real: str, big: str, json_type: str) -> str:
    return f"""id TEXT NOT NULL, fleet TEXT NOT NULL, device TEXT NOT NULL, seq {big} NOT NULL, ts {big} NOT NULL,
        received {big} NOT NULL, model_name TEXT, model_version TEXT, count {big}, errors {big}, rate_per_s {real},
        p50_ms {real}, p95_ms {real}, p99_ms {real}, max_psi {real}, cpu_percent {real}, temperature_c {real},
        throttled INTEGER, outbox_pending {big}, outbox_dropped {big}, payload {json_type} NOT NULL"""


class SqliteStore(Store):
    """An embedded sqlite file in WAL mode (``synchronous=FULL``): one collector, up to a few hundred devices."""

    kind = "sqlite"

    def __init__(self, path: str, *, pool_size: int = 4):
        import sqlite3

        super().__init__()
        self.path = path
        self._sqlite3 = sqlite3
        self._pool = _Pool(self._connect, pool_size)
        self._connect().close()  # fail here, with the path in the message, when the file cannot be opened

    def _connect(self) -> Any:
        sqlite3 = self._sqlite3
        try:
            conn = sqlite3.connect(self.path, timeout=30.0, isolation_level=None, check_same_thread=False)
            conn.execute("PRAGMA busy_timeout = 30000")
            mode = self._wal(conn)
            conn.execute("PRAGMA synchronous = FULL")
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open the fleet store {self.path!r}: {exc}", transient=False) from exc
        if str(mode).lower() != "wal":
            conn.close()
            raise StoreError(f"{self.path!r} cannot use sqlite's WAL mode (journal_mode={mode}); put it on a local "
                             "disk, not a network share", transient=False)
        return conn

    def _wal(self, conn: Any, timeout_s: float = 30.0) -> str:
        """Switch to WAL mode (once per file). Several processes opening a new file at once can find it locked:
        sqlite answers that pragma with SQLITE_BUSY without waiting on busy_timeout, so wait here."""
        import time

        deadline = time.monotonic() + timeout_s
        while True:
            try:
                mode = str(conn.execute("PRAGMA journal_mode").fetchone()[0])
                return mode if mode.lower() == "wal" else str(conn.execute("PRAGMA journal_mode = WAL").fetchone()[0])
            except self._sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(0.02)

    @contextmanager
    def _write(self) -> Iterator[Any]:
        sqlite3 = self._sqlite3
        with self._pool.get() as conn:
            try:
                conn.execute("BEGIN IMMEDIATE")
                cur = conn.cursor()
                try:
                    yield cur
                    conn.execute("COMMIT")
                except BaseException:
                    if conn.in_transaction:
                        conn.execute("ROLLBACK")
                    raise
            except sqlite3.OperationalError as exc:
                raise StoreError(f"the fleet store {self.path!r} refused a write: {exc}") from exc
            except sqlite3.Error as exc:
                raise StoreError(f"the fleet store {self.path!r} refused a write: {exc}", transient=False) from exc

    @contextmanager
    def _read(self) -> Iterator[Any]:
        sqlite3 = self._sqlite3
        with self._pool.get() as conn:
            try:
                yield conn.cursor()
            except sqlite3.Error as exc:
                raise StoreError(f"cannot read the fleet store {self.path!r}: {exc}") from exc

    def _ddl(self) -> dict[int, list[str]]:
        return {1: [f"CREATE TABLE telemetry ({_telemetry_columns('REAL', 'INTEGER', 'TEXT')}, PRIMARY KEY (id))",
                    "CREATE INDEX telemetry_fleet_device_ts ON telemetry (fleet, device, ts)",
                    "CREATE INDEX telemetry_ts ON telemetry (ts)",
                    *_common_ddl("TEXT", "REAL", "INTEGER", "INTEGER PRIMARY KEY AUTOINCREMENT")],
                2: _rollout_ddl("TEXT", "REAL", "INTEGER", "BLOB")}

    def _insert_rows(self, cur: Any, table: str, cols: tuple[str, ...], rows: list[tuple[Any, ...]]) -> list[int]:
        sql = f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))}) ON CONFLICT DO NOTHING"
        ts = cols.index("ts")
        inserted = []
        for row in rows:
            cur.execute(sql, row)
            if cur.rowcount == 1:
                inserted.append(row[ts])
        return inserted


# -- PostgreSQL ---------------------------------------------------------------------------------------------

def _month(ts: int) -> tuple[int, int]:
    d = datetime.fromtimestamp(ts / 1000, tz=timezone.utc)
    return d.year, d.month


def _month_bounds(year: int, month: int) -> tuple[int, int]:
    start = datetime(year, month, 1, tzinfo=timezone.utc)
    end = datetime(year + month // 12, month % 12 + 1, 1, tzinfo=timezone.utc)
    return int(start.timestamp() * 1000), int(end.timestamp() * 1000)


def _partition(year: int, month: int) -> str:
    return f"telemetry_y{year:04d}m{month:02d}"


class PostgresStore(Store):
    """PostgreSQL through psycopg 3: the shared store of several collectors (JSONB payloads, monthly partitions)."""

    kind = "postgresql"
    _greatest = "GREATEST"
    _least = "LEAST"
    _row_key = "id, ts"

    def __init__(self, url: str, *, pool_size: int = 4, connect_timeout: float = 10.0):
        try:
            import psycopg
        except ImportError as exc:
            raise BackendUnavailableError("a postgresql:// store needs psycopg 3: pip install 'edgeops[fleet]'") \
                from exc
        super().__init__()
        self.url = url
        self._psycopg = psycopg
        self._timeout = connect_timeout
        self._pool = _Pool(self._connect, pool_size)
        self._known: set[tuple[int, int]] = set()  # months whose partition exists (this process's view)
        self._known_lock = threading.Lock()

    def _safe_url(self) -> str:
        from urllib.parse import urlsplit

        u = urlsplit(self.url)
        host = u.hostname or ""
        return f"{u.scheme}://{u.username + '@' if u.username else ''}{host}{':' + str(u.port) if u.port else ''}{u.path}"

    def _connect(self) -> Any:
        psycopg = self._psycopg
        try:
            return psycopg.connect(self.url, autocommit=True, connect_timeout=max(1, int(self._timeout)))
        except psycopg.Error as exc:
            raise StoreError(f"cannot connect to the fleet store {self._safe_url()}: {str(exc).strip()}") from exc

    def _sql(self, sql: str) -> str:
        return sql.replace("?", "%s")

    def _map(self, exc: Exception, what: str) -> StoreError:
        psycopg = self._psycopg
        transient = isinstance(exc, (psycopg.OperationalError, psycopg.errors.SerializationFailure,
                                     psycopg.errors.DeadlockDetected))
        return StoreError(f"the fleet store {self._safe_url()} {what}: {str(exc).strip()}", transient=transient)

    @contextmanager
    def _write(self) -> Iterator[Any]:
        psycopg = self._psycopg
        with self._pool.get() as conn:
            try:
                with conn.transaction(), conn.cursor() as cur:
                    yield cur
            except psycopg.Error as exc:
                raise self._map(exc, "refused a write") from exc

    @contextmanager
    def _read(self) -> Iterator[Any]:
        psycopg = self._psycopg
        with self._pool.get() as conn:
            try:
                with conn.cursor() as cur:
                    yield cur
            except psycopg.Error as exc:
                raise self._map(exc, "refused a read") from exc

    def _lock_migration(self, cur: Any) -> None:
        cur.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATE_LOCK,))

    def _ddl(self) -> dict[int, list[str]]:
        return {1: [f"CREATE TABLE telemetry ({_telemetry_columns('DOUBLE PRECISION', 'BIGINT', 'JSONB')}, "
                    "PRIMARY KEY (id, ts)) PARTITION BY RANGE (ts)",
                    "CREATE INDEX telemetry_fleet_device_ts ON telemetry (fleet, device, ts)",
                    *_common_ddl("JSONB", "DOUBLE PRECISION", "BIGINT", "BIGSERIAL PRIMARY KEY")],
                2: _rollout_ddl("TEXT", "DOUBLE PRECISION", "BIGINT", "BYTEA")}

    def _partitions(self, cur: Any) -> dict[str, tuple[int, int]]:
        cur.execute("SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
                    "JOIN pg_class p ON p.oid = i.inhparent WHERE p.relname = 'telemetry' "
                    "AND p.relnamespace = to_regnamespace(current_schema())::oid")
        out = {}
        for (name,) in cur.fetchall():
            try:
                out[name] = (int(name[11:15]), int(name[16:18]))
            except ValueError:
                continue  # someone else's partition (a default one): leave it alone
        return out

    def _before_insert(self, cur: Any, p: _Parsed) -> None:
        months = {_month(row[4]) for row in p.telemetry}
        with self._known_lock:
            missing = months - self._known
        if not missing:
            return
        # serialize partition creation between collectors: the second one waits here until the first
        # commits, then CREATE ... IF NOT EXISTS sees the table (the lock ends with the transaction)
        cur.execute("SELECT pg_advisory_xact_lock(%s)", (_PARTITION_LOCK,))
        for year, month in sorted(missing):
            lo, hi = _month_bounds(year, month)
            cur.execute(f"CREATE TABLE IF NOT EXISTS {_partition(year, month)} PARTITION OF telemetry "
                        f"FOR VALUES FROM ({lo}) TO ({hi})")
        p._months = missing  # type: ignore[attr-defined]

    def _after_commit(self, p: _Parsed) -> None:
        months = getattr(p, "_months", None)
        if months:
            with self._known_lock:
                self._known |= months

    def _insert_rows(self, cur: Any, table: str, cols: tuple[str, ...], rows: list[tuple[Any, ...]]) -> list[int]:
        one = "(" + ", ".join("CAST(%s AS jsonb)" if c == "payload" else "%s" for c in cols) + ")"
        inserted: list[int] = []
        for i in range(0, len(rows), 1000):  # 1000 rows x 21 columns stays under the 65535 parameters
            chunk = rows[i:i + 1000]
            cur.execute(f"INSERT INTO {table} ({', '.join(cols)}) VALUES {', '.join([one] * len(chunk))} "
                        "ON CONFLICT DO NOTHING RETURNING ts", [v for row in chunk for v in row])
            inserted += [r[0] for r in cur.fetchall()]
        return inserted

    def write_batch(self, msgs: list[Incoming]) -> WriteResult:
        try:
            return super().write_batch(msgs)
        except StoreError as exc:
            # a partition this process thought existed was dropped by another one's trim: look again, once
            if isinstance(exc.__cause__, self._psycopg.errors.CheckViolation) and "partition" in str(exc):
                with self._known_lock:
                    self._known.clear()
                return super().write_batch(msgs)
            raise

    def _drop_old_partitions(self, cutoff: int) -> int:
        removed = 0
        with self._write() as cur:
            cur.execute("SELECT pg_advisory_xact_lock(%s)", (_PARTITION_LOCK,))
            for name, (year, month) in sorted(self._partitions(cur).items()):
                if _month_bounds(year, month)[1] > cutoff:
                    continue
                cur.execute(f"SELECT count(*) FROM {name}")
                removed += int(cur.fetchone()[0])
                cur.execute(f"DROP TABLE {name}")
        with self._known_lock:
            self._known.clear()
        return removed
