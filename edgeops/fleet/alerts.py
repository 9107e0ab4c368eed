"""Alerts: rules evaluated over the stored telemetry, with a ``for`` duration and hysteresis; fired and
resolved alerts go to the store, to MQTT and to a webhook.

How ``edgeops fleet serve`` wires it::

    edgeops fleet serve --broker URL --fleet F [--db DB] [--rules rules.toml] [--webhook URL]

    loop, close = make_alert_loop(store, fleet, rules_path=options.rules, broker_url=options.broker,
                                  webhook_url=options.webhook, username=..., password=..., ca=..., cert=..., key=...)
    every tick (a few seconds):  loop()          # -> the transitions of this evaluation
    on stop:                     close()

``--rules FILE`` replaces the default rules (``edgeops/fleet/rules.toml``) with FILE's, or adds them
to the defaults when FILE says ``include_defaults = true`` (the format: :mod:`edgeops.fleet.alert_rules`);
without it the defaults apply. ``--webhook URL`` POSTs every transition as JSON (:class:`Webhook`).

Each rule is evaluated per device it selects (``labels``) or, for ``fleet_psi``, per fleet or label
value, and each (rule, device) walks this table on every evaluation ("true" is the value above the
threshold, "clear" at or below the ``clear`` threshold, "unknown" no value, e.g. no recent telemetry)::

    state     reading                       next       emits
    ok        true                          pending    -            (firing at once when for = 0)
    pending   true, held for `for`          firing     firing
    pending   not true, or unknown          ok         -
    firing    clear                         clearing   -            (resolved at once when clear_for = 0)
    clearing  clear, held for `clear_for`   ok         resolved
    clearing  not clear                     firing     -
    firing/clearing  unknown                unchanged  -            (silence is the offline rules' business)

Every transition is written with ``store.upsert_alert`` before it is published; a restarted server
loads the firing alerts from the store first, so an alert already firing is not fired again (and
one whose rule is gone is resolved). On MQTT an active alert is held retained on
``edgeops/<fleet>/alerts/<rule>/<device>`` (``_fleet`` for the whole fleet, ``site=berlin`` for a
label value), cleared with an empty retained payload when it resolves, and every transition is
also sent once, not retained, on ``.../<device>/event``. Both are the JSON of :meth:`Transition.payload`.
"""

from __future__ import annotations

import logging
import math
import statistics
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .. import _json
from .alert_rules import KINDS, Rule, load_rules
from .alert_sinks import MqttPublisher, Webhook, mqtt_publisher
from .fleetdrift import RecentRows, device_histograms, fleet_drift, payload_of

__all__ = ["AlertEngine", "Transition", "Reading", "step", "make_alert_loop", "AlertLoop", "mqtt_publisher",
           "Webhook", "MqttPublisher", "load_rules", "alert_topic"]

log = logging.getLogger(__name__)

BASELINE_REFRESH_MS = 1_800_000  # a device's 24 h baseline is computed again after this long
BASELINE_PER_HOUR = 120  # rows of each hour of the baseline period that its median reads (the hour's first)
BASELINES_PER_EVALUATION = 50  # baselines computed in one evaluation at most (a fleet's first takes a few)
FLEET_REFRESH_MS = 30_000  # fleet-level drift is merged again after this long
_WINDOWED = ("error_rate", "outbox_dropped")  # kinds that read every row of their window
_COLUMNS = {  # store column -> where the message holds it
    "p95_ms": ("inference", "latency_ms", "p95"), "max_psi": ("drift", "max_psi"),
    "temperature_c": ("health", "temperature_c"), "count": ("inference", "count"),
    "errors": ("inference", "errors"), "outbox_dropped": ("outbox", "dropped"),
}


def alert_topic(fleet: str, rule: str, device: str) -> str:
    """``edgeops/<fleet>/alerts/<rule>/<device or _fleet>``: where an active alert is held retained."""
    return f"edgeops/{fleet}/alerts/{rule}/{device or '_fleet'}"


@dataclass(frozen=True)
class Reading:
    """One rule's value for one device now; ``value`` None when unknown."""

    value: float | None
    true: bool = False  # above the threshold: the alert's condition holds
    clear: bool = False  # at or below the clear threshold

    @classmethod
    def of(cls, rule: Rule, value: float | None, *, forced: bool = False) -> Reading:
        if value is None or not math.isfinite(value):
            return cls(None) if not forced else cls(value, True, False)
        if forced:
            return cls(value, True, False)
        return cls(value, value > rule.threshold, value <= rule.clear)


@dataclass
class Track:
    """What one (rule, device) is doing: ``pending`` since the condition held, or ``firing`` since it fired."""

    state: str  # "pending" | "firing"
    since: int  # pending: the condition holds since; firing: fired at
    clear_since: int | None = None  # firing: the clear condition holds since (the "clearing" state)
    value: float | None = None


@dataclass(frozen=True)
class Transition:
    """An alert fired or resolved."""

    fleet: str
    rule: str
    kind: str
    device: str  # "" for the whole fleet, "site=berlin" for a label value
    state: str  # "firing" | "resolved"
    severity: str
    since: int  # when it fired (ms)
    at: int  # when this transition happened (ms)
    value: float | None
    threshold: float
    message: str
    labels: dict[str, Any] = field(default_factory=dict)  # the device's labels ({by: value} for a label value)

    @property
    def topic(self) -> str:
        return alert_topic(self.fleet, self.rule, self.device)

    def alert_row(self) -> dict[str, Any]:
        """The row for ``store.upsert_alert``."""
        return {"fleet": self.fleet, "rule": self.rule, "device": self.device, "state": self.state,
                "since": self.since, "resolved_at": self.at if self.state == "resolved" else None,
                "value": self.value, "threshold": self.threshold, "message": self.message, "updated": self.at}

    def payload(self) -> dict[str, Any]:
        """The JSON published on MQTT and POSTed to the webhook."""
        return {"fleet": self.fleet, "rule": self.rule, "kind": self.kind, "device": self.device,
                "state": self.state, "severity": self.severity, "since": self.since, "ts": self.at,
                "value": self.value, "threshold": self.threshold, "message": self.message, "labels": self.labels}


def step(rule: Rule, track: Track | None, reading: Reading, now: int) -> tuple[Track | None, str | None]:
    """One evaluation of one (rule, device): the next track and ``"firing"``/``"resolved"`` or None (the table
    in the module docstring)."""
    if track is None or track.state == "pending":
        if not reading.true:
            return None, None
        since = now if track is None else track.since
        if now - since >= rule.for_ms:
            return Track("firing", now, value=reading.value), "firing"
        return Track("pending", since, value=reading.value), None
    if reading.value is None and not reading.true:
        return track, None  # unknown: a firing alert stays as it is
    if not reading.clear:
        return Track("firing", track.since, None, reading.value), None
    clear_since = now if track.clear_since is None else track.clear_since
    if now - clear_since >= rule.clear_for_ms:
        return None, "resolved"
    return Track("firing", track.since, clear_since, reading.value), None


class AlertEngine:
    """Evaluates ``rules`` over ``store`` for ``fleet``; see the module docstring.

    ``publish(topic, payload: bytes, *, retain: bool)`` sends to MQTT (:func:`mqtt_publisher`, or
    ``functools.partial(paho_client.publish, qos=1)``); ``webhook(payload: dict)`` takes each
    transition (:class:`Webhook`). ``clock`` gives seconds (``time.time``). Failures of either are
    logged and counted in ``stats``, never raised.
    """

    def __init__(self, store: Any, fleet: str, rules: list[Rule], *, publish: Callable[..., Any] | None = None,
                 webhook: Callable[[dict[str, Any]], Any] | None = None, clock: Callable[[], float] = time.time):
        self.store, self.fleet, self.rules = store, fleet, list(rules)
        self.publish, self.webhook, self.clock = publish, webhook, clock
        self.tracks: dict[tuple[str, str], Track] = {}
        self.stats = {"evaluations": 0, "fired": 0, "resolved": 0, "publish_errors": 0, "webhook_errors": 0}
        self._loaded = False
        self._baselines: dict[tuple[str, int, int], tuple[int, float | None]] = {}
        self._baselines_read = 0
        self._fleet_cache: dict[tuple[Any, ...], tuple[int, dict[str, Any]]] = {}
        windows = [r.window_ms for r in self.rules if r.kind in _WINDOWED]
        self._recent = RecentRows(store, fleet, max(windows), _counters) if windows else None
        windows = [r.window_ms for r in self.rules if r.scope == "fleet"]
        self._drift_rows = RecentRows(store, fleet, max(windows), device_histograms) if windows else None

    # -- public -----------------------------------------------------------------------------------

    def evaluate(self, now_ms: int | None = None) -> list[Transition]:
        """Evaluate every rule now; the alerts that fired or resolved (already stored and published)."""
        now = int(self.clock() * 1000) if now_ms is None else int(now_ms)
        out: list[Transition] = [] if self._loaded else self._load(now)
        devices = self.store.devices(self.fleet)
        kinds = {r.kind for r in self.rules}
        latest = self.store.latest_telemetry(self.fleet) if kinds - {"offline", "fleet_psi"} else {}
        recent: dict[str, list[tuple[int, tuple[float | None, ...]]]] = {}
        self._baselines_read = 0
        for rows in (self._recent, self._drift_rows):
            if rows is not None:
                rows.keep(d["id"] for d in devices)
        for rule in self.rules:
            if rule.scope == "fleet":
                readings = self._fleet_readings(rule, devices, now)
            else:
                readings = {}
                for device in devices:
                    labels = device.get("labels") or {}
                    if not rule.selects(labels):
                        continue
                    dev = device["id"]
                    if self._recent is not None and rule.kind in _WINDOWED and dev not in recent:
                        recent[dev] = self._recent.rows(device, now)
                    readings[dev] = (self._reading(rule, device, latest.get(dev), recent.get(dev, []), now), labels)
            for subject, (reading, labels) in readings.items():
                t = self._advance(rule, subject, reading, now, labels)
                if t is not None:
                    out.append(t)
        self.stats["evaluations"] += 1
        return out

    def active(self) -> list[dict[str, Any]]:
        """The alerts firing now: ``{rule, device, since, value}``."""
        return [{"rule": r, "device": d, "since": t.since, "value": t.value}
                for (r, d), t in sorted(self.tracks.items()) if t.state == "firing"]

    # -- the state machine and its side effects ---------------------------------------------------

    def _advance(self, rule: Rule, subject: str, reading: Reading, now: int,
                 labels: dict[str, Any]) -> Transition | None:
        key = (rule.name, subject)
        before = self.tracks.get(key)
        after, emits = step(rule, before, reading, now)
        transition = None
        if emits is not None:
            since = now if emits == "firing" else before.since  # type: ignore[union-attr]
            transition = self._transition(rule, subject, emits, since, now, reading.value, labels)
            self._emit(transition)  # stored first: a failure raises before the state moves, and is tried again
        if after is None:
            self.tracks.pop(key, None)
        else:
            self.tracks[key] = after
        return transition

    def _transition(self, rule: Rule, subject: str, state: str, since: int, now: int, value: float | None,
                    labels: dict[str, Any] | None = None) -> Transition:
        what = f"{subject}: " if subject else f"fleet {self.fleet}: "
        shown = "no value" if value is None else f"{value:.4g}{rule.unit and ' ' + rule.unit}"
        limit = f"{rule.threshold:g}" if state == "firing" else f"{rule.clear:g}"
        verb = "above" if state == "firing" else "back at or below"
        text = f"{what}{rule.name} ({KINDS[rule.kind].doc}) {shown}, {verb} {limit}"
        if rule.kind == "offline" and state == "firing" and value is not None:
            text = f"{what}{rule.name}: offline, last telemetry {value:.0f} s ago"
        return Transition(self.fleet, rule.name, rule.kind, subject, state, rule.severity, since, now,
                          None if value is None else round(float(value), 6), rule.threshold, text, dict(labels or {}))

    def _emit(self, t: Transition) -> None:
        self.store.upsert_alert(t.alert_row())
        self.stats["fired" if t.state == "firing" else "resolved"] += 1
        payload = _json.dumps(t.payload()).encode()
        if self.publish is not None:
            try:
                self.publish(t.topic, payload if t.state == "firing" else b"", retain=True)
                self.publish(t.topic + "/event", payload, retain=False)
            except Exception:  # noqa: BLE001 - the broker is a sink; the store holds the truth
                log.exception("edgeops alerts: publishing %s failed", t.topic)
                self.stats["publish_errors"] += 1
        if self.webhook is not None:
            try:
                self.webhook(t.payload())
            except Exception:  # noqa: BLE001
                log.exception("edgeops alerts: the webhook failed for %s", t.topic)
                self.stats["webhook_errors"] += 1

    def _load(self, now: int) -> list[Transition]:
        """Take over the alerts the store says are firing (a restart must not fire them again)."""
        rules = {r.name: r for r in self.rules}
        out = []
        for row in self.store.alerts(self.fleet, state="firing", limit=100_000):
            rule, device = rules.get(row["rule"]), row.get("device") or ""
            since = int(row.get("since") or now)
            if rule is None:  # its rule is gone: resolve it rather than leave it firing for ever
                t = Transition(self.fleet, row["rule"], "", device, "resolved", "info", since, now,
                               row.get("value"), float(row.get("threshold") or 0.0),
                               f"{device or 'fleet ' + self.fleet}: {row['rule']} resolved: the rule was removed")
                self._emit(t)
                out.append(t)
                continue
            self.tracks[(rule.name, device)] = Track("firing", since, value=row.get("value"))
            if self.publish is not None:  # idempotent: the broker may have lost its retained messages
                t = self._transition(rule, device, "firing", since, now, row.get("value"))
                try:
                    self.publish(t.topic, _json.dumps(t.payload()).encode(), retain=True)
                except Exception:  # noqa: BLE001
                    log.exception("edgeops alerts: publishing %s failed", t.topic)
                    self.stats["publish_errors"] += 1
        self._loaded = True
        return out

    # -- readings ---------------------------------------------------------------------------------

    def _reading(self, rule: Rule, device: dict[str, Any], latest: dict[str, Any] | None,
                 recent: list[tuple[int, tuple[float | None, ...]]], now: int) -> Reading:
        kind = rule.kind
        if kind in ("offline", "no_telemetry"):
            seen = device.get("last_seen") or (latest or {}).get("received") or device.get("first_seen")
            age = None if seen is None else max(now - int(seen), 0) / 1000
            if kind == "offline":
                return Reading.of(rule, age, forced=device.get("state") == "offline")
            interval = _number(payload_of(latest).get("interval_s")) if latest else None
            return Reading.of(rule, None if age is None or not interval else age / interval)
        if kind in _WINDOWED:
            rows = [values for ts, values in recent if ts >= now - rule.window_ms]  # oldest first
            if kind == "error_rate":
                count = sum(c or 0 for c, _, _ in rows)
                errors = sum(e or 0 for _, e, _ in rows)
                return Reading.of(rule, errors / count if count >= rule.min_count else None)
            dropped = [d for _, _, d in rows if d is not None]
            return Reading.of(rule, sum(max(b - a, 0) for a, b in zip(dropped, dropped[1:])) if dropped else None)
        if latest is None or _ts(latest) < now - rule.window_ms:
            return Reading(None)
        if kind == "p95":
            return Reading.of(rule, _column(latest, "p95_ms"))
        if kind == "max_psi":
            return Reading.of(rule, _column(latest, "max_psi"))
        if kind == "temperature":
            return Reading.of(rule, _column(latest, "temperature_c"))
        if kind == "throttled":
            return Reading.of(rule, _throttled(latest, rule.flags))
        if kind == "p95_baseline":
            return self._baseline_reading(rule, device["id"], latest, now)
        raise AssertionError(f"no reading for kind {kind!r}")  # KINDS and this method disagree

    def _baseline_reading(self, rule: Rule, device: str, latest: dict[str, Any], now: int) -> Reading:
        p95 = _column(latest, "p95_ms")
        if p95 is None:
            return Reading(None)
        key = (device, rule.baseline_ms, rule.window_ms)
        cached = self._baselines.get(key)
        stale = cached is None or now - cached[0] >= BASELINE_REFRESH_MS or now < cached[0]
        if stale and self._baselines_read < BASELINES_PER_EVALUATION:  # else: the next evaluations
            self._baselines_read += 1
            # the first one of a device is dated back by up to BASELINE_REFRESH_MS, so that
            # devices seen together are not all read again in the same evaluation
            when = now - zlib.crc32(device.encode()) % BASELINE_REFRESH_MS if cached is None else now
            cached = (when, self._baseline(device, now - rule.window_ms - rule.baseline_ms, now - rule.window_ms,
                                           rule.min_baseline))
            self._baselines[key] = cached
        baseline = None if cached is None else cached[1]
        if not baseline:
            return Reading(None)
        ratio = p95 / baseline
        if p95 < rule.min_ms:  # fast enough whatever the ratio
            return Reading(ratio, False, True)
        return Reading.of(rule, ratio)

    def _baseline(self, device: str, since: int, until: int, least: int) -> float | None:
        """Median p95 of the device's telemetry with ``since <= ts < until``; None with fewer than ``least`` rows.

        Read hour by hour, at most ``BASELINE_PER_HOUR`` rows of each (every row up to one message every
        30 s), so a device that reports every second costs no more than one that reports every 30 s and
        every hour of the period has its say."""
        values = []
        for start in range(since, until, 3_600_000):
            end = min(start + 3_600_000, until)
            rows = self.store.telemetry(self.fleet, device, since_ms=start, until_ms=end, limit=BASELINE_PER_HOUR)
            values += [v for v in (_column(r, "p95_ms") for r in rows if start <= _ts(r) < end) if v is not None]
        return statistics.median(values) if len(values) >= least else None

    def _fleet_readings(self, rule: Rule, devices: list[dict[str, Any]],
                        now: int) -> dict[str, tuple[Reading, dict[str, Any]]]:
        key = (rule.window_ms, tuple(sorted(rule.labels.items())), rule.by)
        cached = self._fleet_cache.get(key)
        if cached is None or now - cached[0] >= FLEET_REFRESH_MS:
            drift = fleet_drift(self.store, self.fleet, rule.window_ms, now_ms=now, labels=rule.labels,
                                by=None if rule.by is None else [rule.by], devices=devices, recent=self._drift_rows)
            cached = (now, drift)
            self._fleet_cache[key] = cached
        drift = cached[1]
        if rule.by is None:
            return {"": (Reading.of(rule, drift["fleet"]["max_psi"]), {})}
        return {group: (Reading.of(rule, table["max_psi"]), dict([group.split("=", 1)]))
                for group, table in drift["by_label"].items()}


class AlertLoop:
    """What the server calls every tick (``loop()``) and at the end (``loop.close()``); ``engine`` is the
    :class:`AlertEngine`, ``webhook`` and ``publisher`` its sinks (or None)."""

    def __init__(self, engine: AlertEngine, webhook: Webhook | None, close_publisher: Callable[[], None] | None):
        self.engine, self.webhook, self._close_publisher = engine, webhook, close_publisher
        self.errors = 0
        self.last_error: str | None = None

    def __call__(self, now_ms: int | None = None) -> list[Transition]:
        """Evaluate once; an error (the database away for a moment) is logged and counted, not raised."""
        try:
            return self.engine.evaluate(now_ms)
        except Exception as exc:  # noqa: BLE001 - the next tick tries again
            log.exception("edgeops alerts: evaluation failed")
            self.errors += 1
            self.last_error = f"{type(exc).__name__}: {exc}"
            return []

    def close(self) -> None:
        if self.webhook is not None:
            self.webhook.close()
        if self._close_publisher is not None:
            self._close_publisher()


def make_alert_loop(store: Any, fleet: str, rules_path: str | None, broker_url: str | None,
                    webhook_url: str | None = None, **tls: Any) -> tuple[AlertLoop, Callable[[], None]]:
    """``(loop, close)`` for ``edgeops fleet serve``: the rules of ``rules_path`` (None: the defaults),
    published on ``broker_url`` (None: not published; ``tls``: client_id, username, password, ca, cert,
    key) and POSTed to ``webhook_url``. Rule errors raise :class:`~edgeops.errors.UsageError` here,
    before anything connects."""
    rules = load_rules(rules_path)
    hook = Webhook(webhook_url) if webhook_url else None
    publish, close_publisher = mqtt_publisher(broker_url, **tls) if broker_url else (None, None)
    loop = AlertLoop(AlertEngine(store, fleet, rules, publish=publish, webhook=hook), hook, close_publisher)
    return loop, loop.close


def _ts(row: dict[str, Any]) -> int:
    ts = row.get("ts")
    return int(ts) if isinstance(ts, (int, float)) else 0


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


def _column(row: dict[str, Any], column: str) -> float | None:
    """A number of a telemetry row: its store column, else the same field of its message."""
    value = _number(row.get(column))
    if value is None and column in _COLUMNS:
        node: Any = payload_of(row)
        for part in _COLUMNS[column]:
            node = node.get(part) if isinstance(node, dict) else None
        value = _number(node)
    return value


def _counters(row: dict[str, Any]) -> tuple[float | None, ...]:
    """What the windowed kinds read of a row: (count, errors, outbox dropped)."""
    return _column(row, "count"), _column(row, "errors"), _column(row, "outbox_dropped")


def _throttled(row: dict[str, Any], flags: tuple[str, ...]) -> float:
    """How many of ``flags`` the board reports now (0 for a board without throttling flags)."""
    health = payload_of(row).get("health")
    decoded = health.get("throttled") if isinstance(health, dict) else None
    if isinstance(decoded, dict) and isinstance(decoded.get("now"), dict):
        return float(sum(bool(decoded["now"].get(f)) for f in flags))
    column = row.get("throttled")
    return 1.0 if column and not isinstance(column, dict) else 0.0
