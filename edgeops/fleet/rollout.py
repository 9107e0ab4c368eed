"""Rollouts: a new bundle reaches a fleet in stages, watched by gates, undone by itself when they fail.

The controller (:class:`RolloutController`) runs inside ``edgeops fleet serve`` as one of its loops and keeps
ALL its state in the store (tables ``rollouts`` and ``rollout_devices``, schema 2), writing each step before
it acts on it, so a server killed at any point resumes where it was (``EDGEOPS_ROLLOUT_KILL_AT=<step>``
SIGKILLs the process right after that step is persisted: the kill tests). Several serve processes on one
store elect one controller with a lease row (``leases``, renewed every tick, held by the server's stable
client id, so a restarted server takes its own lease back at once).

A rollout: ``spec`` holds the bundle (sha256 in ``bundles``), its version, the stages (percentages
``[1, 10, 50, 100]`` or ring names ``["canary", "stable"]``), the soak, the gates, the label selection,
shadow/A-B options, concurrency and retries. Its life:

* ``running`` / phase ``flash``: each device selected gets a sticky place, ``bucket = sha256(rollout id,
  device id)`` as a number in [0, 100), so a resume or a re-run never reshuffles and a device that joins
  later gets the version of its bucket; its stage is the first whose percentage is above its bucket (or
  whose ring is its ``ring`` label; a device without one of the named rings goes in the last stage). Devices
  of stages up to the current one are flashed through the OTA path (:func:`edgeops.deploy.mqtt.flash_mqtt`,
  deployment ``<rollout>-<device>-<attempt>``: a repeated offer gets the device's result again), at most
  ``concurrency`` at a time, ``retries`` more tries each; then
* phase ``soak``: the gates (:mod:`.rollout_gates`) are measured every tick on the stage's updated devices
  against the devices still on the old version (or their own history); a failing gate halts at once, a
  passing soak moves to the next stage, the last one to ``completed``;
* ``halted`` / phase ``rollback``: an alert (rule ``rollout``) fires with the reason, every updated device
  gets the agent's ``rollback`` command (repeated until its telemetry shows the old version), then
  ``rolled_back``;
* ``paused`` (nothing new is started), ``aborted`` (stopped where it is, nothing undone).
"""

from __future__ import annotations

import hashlib
import logging
import os
import signal
import tempfile
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from ..errors import UsageError
from .rollout_gates import check, measure, parse_gate, parse_gates

__all__ = ["RolloutController", "bucket", "stage_of", "parse_stages", "create_rollout", "rollout_status",
           "STATES", "KILL_ENV"]

log = logging.getLogger(__name__)
KILL_ENV = "EDGEOPS_ROLLOUT_KILL_AT"
STATES = ("running", "paused", "halted", "rolled_back", "completed", "aborted")
FINAL = ("rolled_back", "completed", "aborted")
LEASE = "rollout-controller"
ROLLBACK_RESEND_S = 5.0
AB_GATE = "accuracy_drop_ci_upper<=2pt"  # an A/B rollout's gate when none on accuracy is given
SHADOW_GATE = "shadow_samples>=50"  # a shadow rollout's gate when none on samples is given
MIN_ROWS = 2  # telemetry messages an updated device must have sent since its commit before a gate passes on it


def now_ms() -> int:
    return int(time.time() * 1000)


def _candidate(spec: dict[str, Any], row: dict[str, Any]) -> bool:
    """Whether a telemetry row comes from a device running the rollout's bundle: as its model, or for a
    shadow rollout, as its shadow candidate (the active model is still the old one then)."""
    if spec.get("shadow"):
        shadow = (row.get("payload") or {}).get("shadow") if isinstance(row.get("payload"), dict) else None
        return isinstance(shadow, dict) and bool(shadow.get("enabled")) and shadow.get("version") == spec.get("version")
    return row.get("model_version") == spec.get("version")


def _kill_point(step: str) -> None:
    if os.environ.get(KILL_ENV) == step:
        os.kill(os.getpid(), signal.SIGKILL)


def bucket(rollout_id: str, device: str) -> float:
    """A device's sticky place in [0, 100): the same for the same rollout and device, always."""
    h = hashlib.sha256(f"{rollout_id}\0{device}".encode()).digest()
    return int.from_bytes(h[:8], "big") / 2 ** 64 * 100.0


def parse_stages(text: str | list[Any]) -> list[Any]:
    """``"1,10,50,100"`` -> ``[1.0, 10.0, 50.0, 100.0]`` (increasing, ending at 100); ``"canary,stable"`` -> rings."""
    parts = [p.strip() for p in (text.split(",") if isinstance(text, str) else map(str, text)) if str(p).strip()]
    if not parts:
        raise UsageError("--stages needs at least one stage, e.g. 1,10,50,100 or canary,stable")
    nums = []
    for p in parts:
        try:
            nums.append(float(p.rstrip("%")))
        except ValueError:
            nums = []
            break
    if nums:
        if any(not 0 < n <= 100 for n in nums) or nums != sorted(set(nums)):
            raise UsageError(f"--stages {text!r}: percentages must increase within (0, 100]")
        if nums[-1] != 100:
            nums.append(100.0)
        return nums
    for p in parts:
        if not p.replace("-", "").replace("_", "").isalnum():
            raise UsageError(f"--stages: ring name {p!r} must be letters, digits, - and _")
    return parts


def stage_of(stages: list[Any], b: float, labels: dict[str, Any]) -> int:
    if isinstance(stages[0], (int, float)):
        return next(i for i, pct in enumerate(stages) if b < pct or pct >= 100)
    ring = labels.get("ring")
    return stages.index(ring) if ring in stages else len(stages) - 1


def _selects(select: dict[str, str], labels: dict[str, Any]) -> bool:
    return all(str(labels.get(k)) == v for k, v in select.items())


def create_rollout(store: Any, fleet: str, spec: dict[str, Any]) -> dict[str, Any]:
    """Check ``spec`` (from the HTTP API) and store a new ``running`` rollout; returns its row."""
    sha = spec.get("bundle")
    if not isinstance(sha, str) or store.bundle(sha) is None:
        raise UsageError(f"no uploaded bundle {sha!r}: POST it to /api/bundles first")
    stages = parse_stages(spec.get("stages") or "1,10,50,100")
    gates = parse_gates(spec.get("gates") or [])
    select = spec.get("select") or {}
    if not isinstance(select, dict):
        raise UsageError("select must be an object of label = value")
    soak_s = float(spec.get("soak_s", 600))
    if soak_s < 0:
        raise UsageError("--soak must be >= 0")
    shadow = spec.get("shadow")
    if shadow is not None and not (isinstance(shadow, (int, float)) and 0 < float(shadow) <= 1):
        raise UsageError("--shadow-rate must be in (0, 1]")
    if shadow is not None and spec.get("ab") is not None:
        raise UsageError("--shadow and --ab exclude each other: a shadow never answers, so it has no accuracy to split")
    if shadow is not None and not any(g.metric == "shadow_samples" for g in gates):
        gates = [*gates, parse_gate(SHADOW_GATE)]  # an agreement is judged over this many samples at least
    ab = spec.get("ab")
    if ab is not None:
        if not (isinstance(ab, (int, float)) and 0 < float(ab) < 100):
            raise UsageError("--ab takes the share of the fleet (in %) that gets the new version, e.g. 50")
        stages = [float(ab), 100.0]  # the split, held until the accuracy gate decides; then the whole fleet
        if not any(g.metric.startswith("accuracy_") for g in gates):
            gates = [*gates, parse_gate(AB_GATE)]
        import importlib.util

        if importlib.util.find_spec("edgeops.fleet.abstats") is None:
            raise UsageError("--ab needs edgeops.fleet.abstats (the A/B statistics), which this install lacks")
    t = now_ms()
    rid = spec.get("id") or f"r{t}-{sha[:8]}"
    full = {"bundle": sha, "version": spec.get("version"), "name": spec.get("name"), "stages": stages,
            "soak_ms": int(soak_s * 1000), "gates": [g.text for g in gates], "select": select,
            "shadow": shadow, "ab": ab, "concurrency": int(spec.get("concurrency", 8)),
            "retries": int(spec.get("retries", 2)), "flash_timeout_s": float(spec.get("flash_timeout_s", 120)),
            "offline_after_s": float(spec.get("offline_after_s", 30))}
    row = {"id": rid, "fleet": fleet, "state": "running", "phase": "flash", "stage": 0, "spec": full,
           "reason": None, "gates": None, "created": t, "updated": t, "phase_at": t}
    store.put_rollout(row)
    return row


def rollout_status(store: Any, rollout_id: str) -> dict[str, Any] | None:
    """What ``rollout status --json`` prints: the row, per device its version and OTA state, counts."""
    r = store.rollout(rollout_id)
    if r is None:
        return None
    devices = store.rollout_devices(rollout_id)
    current = {d["id"]: d for d in store.devices(r["fleet"])}
    counts: dict[str, int] = {}
    out_devices = []
    for d in devices:
        counts[d["state"]] = counts.get(d["state"], 0) + 1
        out_devices.append({"device": d["device"], "stage": d["stage"], "ota_state": d["state"],
                            "version": (current.get(d["device"]) or {}).get("model_version"),
                            "from_version": d["from_version"], "attempts": d["attempts"], "error": d["error"]})
    spec = r["spec"]
    return {"id": r["id"], "fleet": r["fleet"], "state": r["state"], "phase": r["phase"], "stage": r["stage"],
            "stages": spec.get("stages"), "stage_value": spec["stages"][min(r["stage"], len(spec["stages"]) - 1)],
            "version": spec.get("version"), "reason": r["reason"], "gates": r["gates"], "created": r["created"],
            "updated": r["updated"], "counts": counts, "devices": out_devices, "spec": spec}


class RolloutController:
    """The rollout loop of one fleet (module docstring); ``tick()`` is called by the server every ``tick_s``."""

    def __init__(self, store: Any, fleet: str, broker: str, *, holder: str, tls: dict[str, Any] | None = None,
                 lease_ms: int = 15_000):
        self.store, self.fleet, self.broker, self.holder = store, fleet, broker, holder
        self.tls = {k: v for k, v in (tls or {}).items() if v}
        self.lease_ms = lease_ms
        self.leader = False
        self._pool = ThreadPoolExecutor(64, thread_name_prefix="rollout-flash")
        self._flashing: dict[tuple[str, str], Future[Any]] = {}
        self._lock = threading.Lock()
        self._bundles: dict[str, str] = {}
        self._tmp = tempfile.mkdtemp(prefix="edgeops-rollout-")
        self._transport: Any = None
        self._sent: dict[tuple[str, str], float] = {}

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        if self._transport is not None:
            self._transport.stop(timeout=2.0)
        import shutil

        shutil.rmtree(self._tmp, ignore_errors=True)

    # -- the loop

    def tick(self) -> None:
        self.leader = self.store.take_lease(f"{LEASE}/{self.fleet}", self.holder, self.lease_ms)
        if not self.leader:
            return
        for r in self.store.rollouts(self.fleet, states=("running", "halted", "paused")):
            if r["state"] == "paused":
                continue
            try:
                self.step(r)
            except Exception:  # noqa: BLE001 - one rollout's trouble does not stop the others
                log.exception("rollout %s: step failed", r["id"])

    def step(self, r: dict[str, Any]) -> None:
        devices = self._assign(r)
        if r["state"] == "halted":
            self._rollback(r, devices)
        elif r["phase"] == "flash":
            self._flash(r, devices)
        elif r["phase"] == "soak":
            self._soak(r, devices)

    def _save(self, r: dict[str, Any], step: str, **changes: Any) -> None:
        r.update(changes, updated=now_ms())
        self._keep_operator(r)
        self.store.put_rollout(r)
        _kill_point(step)

    def _assign(self, r: dict[str, Any]) -> dict[str, dict[str, Any]]:
        spec = r["spec"]
        have = {d["device"]: d for d in self.store.rollout_devices(r["id"])}
        fresh = False
        for dev in self.store.devices(self.fleet):
            if dev["id"] in have or not _selects(spec.get("select") or {}, dev.get("labels") or {}):
                continue
            b = bucket(r["id"], dev["id"])
            st = stage_of(spec["stages"], b, dev.get("labels") or {})
            there = dev.get("model_version") == spec.get("version") and not spec.get("shadow")
            state = "updated" if there else "pending"
            row = {"rollout": r["id"], "device": dev["id"], "stage": st, "bucket": b, "state": state, "attempts": 0,
                   "from_version": dev.get("model_version"), "version": None, "deployment": None, "error": None,
                   "updated": now_ms(), "committed_at": None}
            self.store.put_rollout_device(row)
            have[dev["id"]] = row
            fresh = True
        if fresh:
            _kill_point("assigned")
        return have

    # -- flashing

    def _bundle_path(self, sha: str) -> str:
        """The bundle as a file for the flash threads: written once (under the lock, renamed into place), so a
        flash never reads a file another thread is still writing or rewriting."""
        with self._lock:
            path = self._bundles.get(sha)
            if path is None or not os.path.exists(path):
                data = self.store.bundle(sha)
                if data is None:
                    raise UsageError(f"bundle {sha} is not in the store")
                path = os.path.join(self._tmp, f"{sha}.eob")
                with open(path + ".part", "wb") as fh:
                    fh.write(data)
                os.replace(path + ".part", path)
                self._bundles[sha] = path
            return path

    def _flash(self, r: dict[str, Any], devices: dict[str, dict[str, Any]]) -> None:
        spec = r["spec"]
        stage_devices = [d for d in devices.values() if d["stage"] <= r["stage"]]
        self._collect(r, devices)
        busy = sum(1 for (rid, _), f in self._flashing.items() if rid == r["id"] and not f.done())
        for d in stage_devices:
            key = (r["id"], d["device"])
            if d["state"] in ("pending", "retry", "flashing") and key not in self._flashing:
                if busy >= spec["concurrency"]:
                    break
                if d["state"] != "flashing":
                    d.update(state="flashing", attempts=d["attempts"] + 1, updated=now_ms(),
                             deployment=f"{r['id']}-{d['device']}-{d['attempts'] + 1}"[:64])
                    self.store.put_rollout_device(d)
                    _kill_point("flashing")
                self._flashing[key] = self._pool.submit(self._flash_one, r, d)
                busy += 1
        if devices and all(d["state"] in ("updated", "failed") for d in stage_devices):  # an empty stage soaks too
            self._save(r, "soak", phase="soak", phase_at=now_ms())

    def _flash_one(self, r: dict[str, Any], d: dict[str, Any]) -> dict[str, Any]:
        from ..deploy.mqtt import flash_mqtt

        spec = r["spec"]
        args = {"mode": "shadow", "rate": spec["shadow"]} if spec.get("shadow") else None
        res = flash_mqtt(self._bundle_path(spec["bundle"]), self.broker, self.fleet, d["device"],
                         timeout=spec["flash_timeout_s"], progress=False, deployment=d["deployment"], args=args,
                         **self.tls)
        return {"outcome": res.outcome, "reason": res.reason, "version": res.version}

    def _collect(self, r: dict[str, Any], devices: dict[str, dict[str, Any]]) -> None:
        """Record the flashes that ended."""
        for key, fut in list(self._flashing.items()):
            if key[0] != r["id"] or not fut.done():
                continue
            del self._flashing[key]
            d = devices.get(key[1])
            if d is None:
                continue
            try:
                got = fut.result()
            except Exception as exc:  # noqa: BLE001 - a flash that raised is a failed try
                got = {"outcome": "failed", "reason": f"{type(exc).__name__}: {exc}"}
            if got["outcome"] == "committed":
                d.update(state="updated", version=got.get("version"), committed_at=now_ms(), error=None)
                step = "updated"
            else:
                final = d["attempts"] > r["spec"]["retries"]
                d.update(state="failed" if final else "retry", error=str(got.get("reason") or got["outcome"])[:500])
                step = "flash_failed"
            d["updated"] = now_ms()
            self.store.put_rollout_device(d)
            _kill_point(step)

    # -- soaking and the gates

    def measure(self, r: dict[str, Any], devices: dict[str, dict[str, Any]]) -> tuple[list[dict[str, Any]], bool]:
        """The gates' rows now, and whether every updated device has reported enough to judge."""
        spec, now = r["spec"], now_ms()
        stage = [d for d in devices.values() if d["stage"] <= r["stage"]]
        updated = [d for d in stage if d["state"] == "updated"]
        since = r["phase_at"]
        new, base, offline, enough = {}, {}, 0, True
        for d in updated:
            start = max(d.get("committed_at") or since, since - spec["soak_ms"])
            rows = [x for x in self.store.telemetry(self.fleet, d["device"], since_ms=start) if _candidate(spec, x)]
            new[d["device"]] = rows
            last = max((x["received"] for x in rows), default=start)
            if now - last > spec["offline_after_s"] * 1000:
                offline += 1
            if len(rows) < MIN_ROWS:
                enough = False
        olds = [d for d in devices.values() if d["state"] in ("pending", "retry", "failed") and d["device"] not in new]
        for d in olds:
            rows = [x for x in self.store.telemetry(self.fleet, d["device"], since_ms=since) if not _candidate(spec, x)]
            if rows:
                base[d["device"]] = rows
        if not base:  # no device left on the old version: the updated ones' own history before their update
            for d in updated:
                end = d.get("committed_at") or since
                rows = [x for x in self.store.telemetry(self.fleet, d["device"], since_ms=end - max(spec["soak_ms"], 60_000),
                                                        until_ms=end) if not _candidate(spec, x)]
                if rows:
                    base[d["device"]] = rows
        failed = sum(d["state"] == "failed" for d in stage)
        accuracy = self._accuracy(r, devices) if spec.get("ab") and r["stage"] == 0 else None  # the split's stage
        values = measure(new, base, offline=offline, flash_failed=failed / len(stage) if stage else None,
                         accuracy=accuracy)
        deciding = tuple(m for m, on in (("accuracy_drop_ci_upper", accuracy is not None or (spec.get("ab") and r["stage"] == 0)),
                                         ("shadow_samples", bool(spec.get("shadow")))) if on)
        return check(parse_gates(spec["gates"], defaults=False), values, deciding), enough

    def _accuracy(self, r: dict[str, Any], devices: dict[str, dict[str, Any]]) -> dict[str, Any] | None:
        try:
            from . import abstats  # type: ignore[attr-defined]
        except ImportError:
            return None
        spec = r["spec"]
        stats = abstats.accuracy_by_version(self.store, self.fleet, r["phase_at"])
        olds = {d["from_version"] for d in devices.values() if d["from_version"] != spec.get("version")}
        new = stats.get(spec.get("version"))
        old = next((stats[v] for v in olds if v in stats), None)
        if not new or not old or not new.get("n") or not old.get("n"):
            return None
        diff, lo, hi = abstats.newcombe_diff(old["correct"], old["n"], new["correct"], new["n"])
        return {"drop": diff, "drop_ci_lower": lo, "drop_ci_upper": hi, "n_old": old["n"], "n_new": new["n"]}

    def _soak(self, r: dict[str, Any], devices: dict[str, dict[str, Any]]) -> None:
        self._collect(r, devices)
        gates, enough = self.measure(r, devices)
        r["gates"] = gates
        bad = [g for g in gates if g["ok"] is False and (enough or g["metric"] in ("offline", "flash_failed"))]
        if bad:
            why = "; ".join(f"{g['metric']} = {g['value']:.4g} fails {g['text']}" for g in bad)
            self._halt(r, f"stage {r['stage'] + 1} ({r['spec']['stages'][r['stage']]}): {why}")
            return
        # a statistical gate (A/B accuracy at the split, shadow samples) holds the stage until it is decided
        undecided = any(g.get("decides") and g["ok"] is not True for g in gates)
        if now_ms() - r["phase_at"] < r["spec"]["soak_ms"] or not enough or undecided:
            r["updated"] = now_ms()
            self._keep_operator(r)
            self.store.put_rollout(r)
            return
        if r["stage"] + 1 >= len(r["spec"]["stages"]):
            self._save(r, "completed", state="completed", phase="done")
        else:
            self._save(r, "stage", stage=r["stage"] + 1, phase="flash", phase_at=now_ms())

    def _halt(self, r: dict[str, Any], reason: str) -> None:
        self._save(r, "halted", state="halted", phase="rollback", reason=reason)
        try:
            self.store.upsert_alert({"fleet": self.fleet, "rule": "rollout", "device": "", "state": "firing",
                                     "message": f"rollout {r['id']} halted: {reason}"[:1000], "value": None,
                                     "threshold": None})
        except Exception:  # noqa: BLE001 - the halt is recorded either way
            log.exception("rollout %s: the alert could not be stored", r["id"])

    # -- rolling back

    def _publish(self, device: str, name: str, body: dict[str, Any]) -> None:
        import json

        if self._transport is None:
            from ..agent.transport import MqttTransport

            self._transport = MqttTransport(self.broker, client_id=f"edgeops-rollout-{self.holder}"[:64],
                                            backoff=(0.2, 5.0), **self.tls)
            self._transport.start()
            deadline = time.monotonic() + 5
            while not self._transport.connected and time.monotonic() < deadline:
                time.sleep(0.05)
        self._transport.publish(f"edgeops/{self.fleet}/{device}/cmd/{name}", json.dumps(body).encode(), qos=1)

    def _rollback(self, r: dict[str, Any], devices: dict[str, dict[str, Any]]) -> None:
        self._collect(r, devices)
        current = {d["id"]: d for d in self.store.devices(self.fleet)}
        now = now_ms()
        waiting = False
        for d in devices.values():
            key = (r["id"], d["device"])
            if d["state"] == "flashing" and key in self._flashing:
                waiting = True  # its result decides whether it needs undoing
                continue
            if d["state"] == "flashing":  # its flash was lost with a killed controller: the store says how it ended
                on_new = self._on_candidate(r["spec"], d["device"], current, since=0)
                d.update(state="updated" if on_new else "skipped", updated=now)
                self.store.put_rollout_device(d)
            if d["state"] in ("pending", "retry"):
                d.update(state="skipped", updated=now)  # never reached: left alone
                self.store.put_rollout_device(d)
                continue
            if d["state"] not in ("updated", "rolling_back"):
                continue
            if d["state"] == "rolling_back" and self._undone(r["spec"], d, current):
                d.update(state="rolled_back", updated=now)
                self.store.put_rollout_device(d)
                _kill_point("device_rolled_back")
                continue
            waiting = True
            if d["state"] == "updated":
                d.update(state="rolling_back", updated=now)
                self.store.put_rollout_device(d)
                _kill_point("rolling_back")
            if time.monotonic() - self._sent.get(key, 0.0) > ROLLBACK_RESEND_S:
                self._sent[key] = time.monotonic()
                if r["spec"].get("shadow"):  # the active model was never touched: only the shadow goes
                    self._publish(d["device"], "shadow-stop", {})
                else:
                    self._publish(d["device"], "rollback", {"reason": f"rollout {r['id']} halted",
                                                            "request_id": f"{r['id']}-rb"})
        if not waiting:
            self._save(r, "rolled_back", state="rolled_back", phase="done")

    def _newest(self, device: str, since: int) -> dict[str, Any] | None:
        rows = self.store.telemetry(self.fleet, device, since_ms=since, limit=1_000_000)
        return rows[-1] if rows else None

    def _on_candidate(self, spec: dict[str, Any], device: str, current: dict[str, Any], since: int) -> bool:
        if spec.get("shadow"):
            row = self._newest(device, since)
            return row is not None and _candidate(spec, row)
        return (current.get(device) or {}).get("model_version") == spec.get("version")

    def _undone(self, spec: dict[str, Any], d: dict[str, Any], current: dict[str, Any]) -> bool:
        """Whether a device told to go back has reported since, from its old version (or without the shadow)."""
        if spec.get("shadow"):
            row = self._newest(d["device"], d["updated"] - 60_000)
            return row is not None and row.get("received", 0) > d["updated"] and not _candidate(spec, row)
        dev = current.get(d["device"]) or {}
        return dev.get("model_version") == d["from_version"] and (dev.get("last_seen") or 0) > d["updated"]

    def _keep_operator(self, r: dict[str, Any]) -> None:
        """A pause or abort the API stored while this tick ran wins over the tick's copy."""
        cur = self.store.rollout(r["id"])
        if cur is not None and cur["state"] in ("paused", "aborted") and r["state"] == "running":
            r.update(state=cur["state"], reason=cur["reason"])

    # -- commands from the API

    def command(self, rollout_id: str, action: str) -> dict[str, Any]:
        r = self.store.rollout(rollout_id)
        if r is None:
            raise KeyError(rollout_id)
        allowed = {"pause": ("running",), "resume": ("paused",), "abort": ("running", "paused")}
        if action not in allowed:
            raise UsageError(f"unknown action {action!r}: pause, resume or abort")
        if r["state"] not in allowed[action]:
            raise UsageError(f"rollout {rollout_id} is {r['state']}: {action} needs {' or '.join(allowed[action])}")
        state = {"pause": "paused", "resume": "running", "abort": "aborted"}[action]
        r.update(state=state, updated=now_ms(), reason=r["reason"] if action != "abort" else "aborted by the operator")
        self.store.put_rollout(r)
        return r


# -- the HTTP API (routes of ``edgeops fleet serve``) --------------------------------------------------

MAX_BUNDLE = 512 << 20


def http_api(store: Any, fleet: str, controller: RolloutController | None, method: str, parts: list[str],
             body: bytes) -> tuple[int, Any]:
    """``/api/bundles`` (POST the bundle's bytes: ``{"sha256", "name", "version"}``), ``/api/rollouts`` (GET:
    list; POST a spec: ``{"id"}``), ``/api/rollouts/<id>`` (GET: status), ``/api/rollouts/<id>/<action>`` (POST:
    pause, resume, abort). Errors are ``(4xx, {"error": ...})``."""
    import json

    try:
        if parts == ["bundles"] and method == "POST":
            return 200, _upload(store, fleet, body)
        if parts == ["rollouts"] and method == "GET":
            return 200, [{k: v for k, v in (rollout_status(store, r["id"]) or {}).items() if k != "devices"}
                         for r in store.rollouts(fleet)]
        if parts == ["rollouts"] and method == "POST":
            try:
                spec = json.loads(body or b"{}")
            except ValueError:
                return 400, {"error": "the body must be a JSON object (the rollout's spec)"}
            if not isinstance(spec, dict):
                return 400, {"error": "the body must be a JSON object (the rollout's spec)"}
            sha = spec.get("bundle")
            data = store.bundle(sha) if isinstance(sha, str) else None
            if data is not None and not spec.get("version"):
                spec.update(_manifest(data))
            row = create_rollout(store, fleet, spec)
            _kill_point("created")
            return 200, {"id": row["id"], "state": row["state"]}
        if len(parts) == 2 and parts[0] == "rollouts" and method == "GET":
            st = rollout_status(store, parts[1])
            return (200, st) if st is not None else (404, {"error": f"no rollout {parts[1]!r}"})
        if len(parts) == 3 and parts[0] == "rollouts" and method == "POST":
            if controller is None:
                return 503, {"error": "this server runs no rollout controller"}
            try:
                r = controller.command(parts[1], parts[2])
            except KeyError:
                return 404, {"error": f"no rollout {parts[1]!r}"}
            return 200, {"id": r["id"], "state": r["state"]}
    except UsageError as exc:
        return 400, {"error": str(exc)}
    return 404, {"error": f"no route {method} /api/{'/'.join(parts)}"}


def _manifest(data: bytes) -> dict[str, Any]:
    from ..bundle import read_manifest

    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "b.eob")
        with open(path, "wb") as fh:
            fh.write(data)
        m = read_manifest(path)
    return {"name": m.name, "version": m.version}


def _upload(store: Any, fleet: str, body: bytes) -> dict[str, Any]:
    from ..errors import EdgeOpsError

    if not body:
        raise UsageError("POST the bundle's bytes to /api/bundles")
    if len(body) > MAX_BUNDLE:
        raise UsageError(f"a bundle of {len(body)} bytes is over the {MAX_BUNDLE >> 20} MiB limit")
    try:
        info = _manifest(body)
    except EdgeOpsError as exc:
        raise UsageError(f"not a readable bundle: {exc}") from None
    sha = hashlib.sha256(body).hexdigest()
    store.put_bundle(fleet, sha, body)
    return {"sha256": sha, **info}
