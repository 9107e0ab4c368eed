"""Model updates over the air, on the device: receive a bundle over MQTT, verify, install, switch, check, commit.

**Transfer** (topics under ``edgeops/<fleet>/<device>/``). The host (:func:`~edgeops.agent.ota_flash.flash_mqtt`)
publishes an offer on ``cmd/ota``::

    {"deployment": "d1-ab12", "created": 1700000000000, "bundle_sha256": "...", "size": 20480,
     "chunk_size": 4096, "chunks": 5, "chunk_sha256": ["...", ...]}

and the chunks as raw bytes on ``ota/<deployment>/<index>`` (QoS 1). The device keeps the offer and
every chunk whose sha256 matches under ``<store>/ota/<deployment>/``; a bad chunk is dropped. It
answers an offer, a stall (no chunk for a few seconds), a reconnect and a bad chunk with an event
``{"kind": "ota.need", "deployment": ..., "missing": [indices]}`` (at most ``MAX_MISSING`` at a
time), so the host sends only what is still missing, after its own disconnect too. ``ota.progress``
events follow the transfer. The assembled bundle's sha256 and size must match the offer. An offer
for another deployment cancels the one being received (unless its ``created`` is older: then the
offer itself is the one cancelled); an offer for a deployment already finished gets its result again.
Offers are read with :func:`edgeops._json.loads` (bounded size and depth, no NaN, no repeated keys);
a malformed one gets an error reply on ``cmd/ota/reply`` (sent through the agent's outbox, like
every reply) and, when it names a valid deployment, a ``refused`` result.

**The state machine** is :data:`TRANSITIONS`: states do their work and post an event, the table
says what comes next. The state is written to ``<store>/ota/state.json`` (atomically) *before*
each step with side effects, and every transition is published as an ``ota.state`` event; the
final one as ``ota.result`` ``{deployment, outcome, reason, version}`` with ``outcome`` one of
committed, refused, rolled_back, failed, cancelled; ``reason`` is this deployment's own (a new
offer starts with none). The bundle's signature is checked here on the device against ``[ota] trusted_keys`` (a device with no trusted keys refuses every bundle).

**After a crash** the persisted state is looked up in :data:`RESUME`; ``health_check`` (a
half-checked model is never trusted) and any state it does not know roll back. The rollback part
runs in :meth:`Ota.recover`, before the agent opens any model. An agent stopped cleanly in the
middle of a step is treated the same way at its next start. A first update onto an empty store has
nothing to roll back to: its failed health check ends ``failed`` with the new model left active.

**Health check**: the new model loads, runs the bundle's sample (its first few samples; inputs
synthesised from the signature when the bundle has none), its outputs are finite and, where the
sample holds reference outputs and the manifest tolerances, within them; its p95 latency is under
``max_p95_ms`` when set; then the agent runs it for ``health_window_s`` without a run error.

**Test hook**: with ``EDGEOPS_OTA_KILL_AT=<state>`` in its environment the process SIGKILLs itself
right after persisting that state, wherever it is persisted, a resumed one included (the
kill-point tests start the agent again without it); unset, it has no effect.
"""

from __future__ import annotations

import hashlib
import math
import os
import queue
import re
import shutil
import signal
import threading
import time
from collections.abc import Mapping
from typing import Any

import numpy as np

from .. import _json
from .._io import atomic_write
from ..errors import DataError, EdgeOpsError

__all__ = ["KILL_ENV", "OUTCOMES", "RESUME", "TRANSITIONS", "Ota", "OfferError", "parse_offer", "probe"]

KILL_ENV = "EDGEOPS_OTA_KILL_AT"
MAX_MISSING = 1024  # chunk indices in one ota.need
MAX_CHUNKS = 1 << 20
MAX_CHUNK_SIZE = 16 << 20  # what flash_mqtt sends at most; a saved offer is checked against it
HISTORY = 20  # finished deployments remembered (a repeated offer gets its result again)
PROBE_SAMPLES = 4
LATENCY_RUNS = 20

OUTCOMES = ("committed", "refused", "rolled_back", "failed", "cancelled")

TRANSITIONS: dict[tuple[str, str], str] = {
    # state           event           next state
    ("idle",          "offer"):      "receiving",
    ("receiving",     "assembled"):  "verifying",
    ("receiving",     "corrupt"):    "refused",
    ("receiving",     "stalled"):    "failed",
    ("receiving",     "newer"):      "cancelled",
    ("verifying",     "ok"):         "installing",
    ("verifying",     "error"):      "refused",
    ("installing",    "ok"):         "switching",
    ("installing",    "error"):      "refused",
    ("switching",     "ok"):         "health_check",
    ("switching",     "error"):      "rolling_back",
    ("health_check",  "ok"):         "committed",
    ("health_check",  "error"):      "rolling_back",
    ("health_check",  "timeout"):    "rolling_back",
    ("rolling_back",  "ok"):         "rolled_back",
    ("rolling_back",  "error"):      "failed",
    ("committed",     "offer"):      "receiving",
    ("refused",       "offer"):      "receiving",
    ("rolled_back",   "offer"):      "receiving",
    ("failed",        "offer"):      "receiving",
    ("cancelled",     "offer"):      "receiving",
}

RESUME: dict[str, str] = {
    # persisted       enter again      why
    "idle":          "idle",          # nothing in flight
    "receiving":     "receiving",     # the chunks on disk stay; ask for the missing ones
    "verifying":     "verifying",     # redo from the assembled file: the active slot was never touched
    "installing":    "installing",    # an install only writes the inactive slot: do it again
    "switching":     "switching",     # active.json says: the new slot goes on to the check, else switch again
    "health_check":  "rolling_back",  # never trust a half-checked model
    "rolling_back":  "rolling_back",  # finish the rollback
    **{outcome: outcome for outcome in OUTCOMES},  # report the result if that did not happen
}
RESUME_DEFAULT = "rolling_back"  # a state this version does not know

_ID = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
_HEX64 = re.compile(r"^[0-9a-f]{64}$")


class OfferError(ValueError):
    """A ``cmd/ota`` payload that is not a usable offer."""


class _Stopping(Exception):
    """The agent stops in the middle of a step: the persisted state decides at the next start."""


# -- the device side ---------------------------------------------------------------------------


class Ota:
    """The agent's OTA: a worker thread that receives, runs the state machine and reports (module docstring)."""

    def __init__(self, agent: Any, config: Any):
        from ..deploy.store import ModelStore

        self.agent, self.cfg = agent, config
        self.root = os.path.join(agent.store_dir, "ota")
        self.store = ModelStore(os.path.join(agent.store_dir, "models"))
        self.state_path = os.path.join(self.root, "state.json")
        self.record = _load_record(self.state_path)
        self.stall_s = max(0.5, min(2.0, config.timeout_s / 4))
        self._queue: queue.Queue[tuple[Any, ...]] = queue.Queue()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._transfer: _Transfer | None = None
        self._before: tuple[Any, Any, Any] | None = None  # the agent's model before a health check swapped it
        self._live = False
        self._work = {"verifying": self._verify, "installing": self._install, "switching": self._switch,
                      "health_check": self._health_check, "rolling_back": self._roll_back}

    # -- lifecycle (agent threads) -------------------------------------------------------------

    def recover(self) -> None:
        """Settle what a crash left that needs no network: a rollback to finish, a result to report."""
        self._guarded(self._recover)

    def _recover(self) -> None:
        state = self.record["state"]
        target = RESUME.get(state, RESUME_DEFAULT)
        if target == "rolling_back":
            why = "" if state == "rolling_back" else f"the agent restarted during {state}"
            self._enter("rolling_back", "resume", why)
            self._advance()
        elif state in OUTCOMES and not self.record.get("reported", True):
            self._report()

    @property
    def took_over(self) -> bool:
        """True once an update was committed here: from then on the agent's model comes from the store."""
        return bool(self.record.get("ever_committed"))

    @property
    def alive(self) -> bool:
        """False only when the worker thread was started and has ended without :meth:`stop`."""
        return self._thread is None or self._thread.is_alive()

    def start(self) -> None:
        """Start the worker (again, when it ended)."""
        if self._thread is not None and self._thread.is_alive():
            return
        self._stop.clear()
        self._live = True
        thread = threading.Thread(target=self._loop, name="edgeops-agent-ota", daemon=True)
        thread.start()
        self._thread = thread  # once started: ``alive`` never sees a thread not yet running

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self._queue.put(("stop",))
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)
        self._thread, self._live = None, False

    # -- messages (the network thread) ---------------------------------------------------------

    def on_connect(self) -> None:
        self.agent.transport.subscribe(f"{self.agent.base}/ota/+/+", qos=1)
        self._queue.put(("connected",))

    def handle(self, topic: str, payload: bytes) -> bool:
        """Queue an OTA message for the worker; False when ``topic`` is not an OTA topic."""
        base = self.agent.base
        if topic == f"{base}/cmd/ota":
            self._queue.put(("offer", payload))
            return True
        if not topic.startswith(f"{base}/ota/"):
            return False
        parts = topic[len(base) + 5:].split("/")
        if len(parts) == 2 and parts[1].isdigit():
            self._queue.put(("chunk", parts[0], int(parts[1]), payload))
        return True

    # -- the worker ------------------------------------------------------------------------------

    def _loop(self) -> None:
        self._guarded(self._resume)
        while not self._stop.is_set():
            try:
                item = self._queue.get(timeout=0.25)
            except queue.Empty:
                item = ("tick",)
            if item[0] != "stop":
                self._guarded(self._dispatch, *item)

    def _dispatch(self, kind: str, *args: Any) -> None:
        getattr(self, f"_on_{kind}")(*args)

    def _guarded(self, fn: Any, *args: Any) -> None:
        try:
            fn(*args)
        except _Stopping:
            pass
        except Exception as exc:  # noqa: BLE001 - the worker must outlive any bug; the event says what happened
            self.agent.event("ota.error", level="error", deployment=self.record.get("deployment"),
                             state=self.record["state"], error=f"{type(exc).__name__}: {exc}")

    def _resume(self) -> None:
        state = self.record["state"]
        if state in ("idle", *OUTCOMES):
            self._sweep()
            return
        target = RESUME.get(state, RESUME_DEFAULT)
        if target == "receiving":
            self._transfer = _Transfer.open(self._folder())
            if self._transfer is None:
                self._transition("stalled", "the transfer's files are gone after a restart")
                return
        self._enter(target, "resume", "")
        if target == "receiving":
            self._ask("resumed")
        else:
            self._advance()

    def _sweep(self) -> None:
        """Remove transfer folders a crash left behind (nothing is in flight)."""
        for name in os.listdir(self.root) if os.path.isdir(self.root) else []:
            if os.path.isdir(os.path.join(self.root, name)):
                shutil.rmtree(os.path.join(self.root, name), ignore_errors=True)

    def _on_connected(self) -> None:
        if self.record["state"] == "receiving" and self._transfer is not None:
            self._ask("reconnected")

    def _on_tick(self) -> None:
        t = self._transfer
        if self.record["state"] != "receiving" or t is None:
            return
        now = time.monotonic()
        if now - t.last_progress > self.cfg.timeout_s:
            self._transition("stalled", f"no progress for {self.cfg.timeout_s:g} s: got {len(t.have)} of "
                                        f"{t.chunks} chunks")
        elif now - max(t.last_progress, t.last_ask) > self.stall_s:
            self._ask("stalled")

    def _on_offer(self, payload: bytes) -> None:
        try:
            offer = parse_offer(payload, self.cfg.chunk_size)
        except OfferError as exc:
            self._reply(False, error=str(exc))
            dep = _deployment_of(payload)
            if dep is None:
                self.agent.event("ota.error", level="warning", error=str(exc))
            else:  # the host waits for a result: it gets one
                self._result_only(dep, "refused", str(exc))
            return
        dep, rec = offer["deployment"], self.record
        self._reply(True, deployment=dep, state=rec["state"] if dep == rec.get("deployment") else "offered")
        if dep == rec.get("deployment") and rec["state"] == "receiving":
            self._ask("offered again")
            return
        done = [h for h in rec.get("history", []) if h["deployment"] == dep]
        if done:
            self.agent.event("ota.result", level=_level(done[-1]["outcome"]), again=True, **done[-1])
            return
        if rec["state"] == "receiving":
            if offer["created"] < rec.get("created", 0):
                self._result_only(dep, "cancelled", f"older than deployment {rec['deployment']}, in progress")
                return
            self._transition("newer", f"superseded by deployment {dep}")
        self._begin(offer)

    def _begin(self, offer: dict[str, Any]) -> None:
        need = 2 * offer["size"] + (16 << 20)  # the chunks, the assembled bundle, then its extraction
        free = shutil.disk_usage(_existing(self.root)).free
        if free < need:
            self._result_only(offer["deployment"], "refused", f"not enough disk: {free >> 20} MiB free, "
                                                              f"{need >> 20} MiB needed")
            return
        self._transfer = _Transfer(os.path.join(self.root, offer["deployment"]), offer)
        self._transfer.save_offer()  # before the state names it: a resumed 'receiving' always finds it
        fresh = {"deployment": offer["deployment"], "created": offer["created"], "size": offer["size"],
                 "chunks": offer["chunks"], "name": None, "version": None, "from_slot": None, "to_slot": None}
        self.record["reason"] = ""  # not the previous deployment's (``_enter`` writes only a non-empty reason)
        self._transition("offer", **fresh)
        self._ask("offered")

    def _on_chunk(self, deployment: str, index: int, data: bytes) -> None:
        t = self._transfer
        if self.record["state"] != "receiving" or t is None or deployment != t.deployment:
            return
        got = t.put(index, data)
        if got == "bad" and time.monotonic() - t.last_bad > 0.5:  # at most two a second; stalls ask for the rest
            t.last_bad = time.monotonic()
            self.agent.event("ota.need", deployment=t.deployment, missing=[index], reason="bad chunk",
                             have=len(t.have), chunks=t.chunks)
            return
        if got != "new":
            return
        if t.complete:
            self._progress(force=True)
            self._finish_transfer()
        else:
            self._progress()
            if t.asked and t.asked <= t.have:
                self._ask("next")

    def _finish_transfer(self) -> None:
        t = self._transfer
        assert t is not None
        error = t.assemble()
        if error:
            self._transition("corrupt", error)
            return
        self._transition("assembled")
        t.drop_chunks()
        self._advance()

    def _ask(self, why: str) -> None:
        t = self._transfer
        if t is None:
            return
        missing = t.missing(MAX_MISSING)
        t.asked, t.last_ask = set(missing), time.monotonic()
        self.agent.event("ota.need", deployment=t.deployment, missing=missing, reason=why, have=len(t.have),
                         chunks=t.chunks)

    def _progress(self, force: bool = False) -> None:
        t = self._transfer
        assert t is not None
        now = time.monotonic()
        if force or now - t.last_report >= 1.0:
            t.last_report = now
            self.agent.event("ota.progress", deployment=t.deployment, have=len(t.have), chunks=t.chunks,
                             bytes=t.bytes_have)

    def _reply(self, ok: bool, **fields: Any) -> None:
        self.agent.reply("ota", {"ok": ok, **fields, "ts": int(time.time() * 1000)})

    # -- the machine -----------------------------------------------------------------------------

    def _advance(self) -> None:
        """Do the current state's work and follow the table until a state that waits or rests."""
        while (work := self._work.get(self.record["state"])) is not None:
            try:
                event, reason = work()
            except _Stopping:
                raise
            except Exception as exc:  # noqa: BLE001 - any failure of a step is that step's "error" event
                event, reason = "error", _describe(exc)
            self._transition(event, reason)

    def _transition(self, event: str, reason: str = "", **updates: Any) -> None:
        state = self.record["state"]
        nxt = TRANSITIONS.get((state, event))
        if nxt is None:
            raise RuntimeError(f"the OTA table has no row for state {state!r} and event {event!r}")
        self._enter(nxt, event, reason, **updates)

    def _enter(self, state: str, event: str, reason: str = "", **updates: Any) -> None:
        """Persist ``state`` (then the kill hook), announce it; a final state is reported too."""
        previous = self.record["state"]
        self.record.update(updates, state=state, event=event, updated=int(time.time() * 1000))
        if reason:
            self.record["reason"] = reason
        if state in OUTCOMES:
            self.record["reported"] = False
        if state == "committed":
            self.record["ever_committed"] = True
        self._save()
        _kill_point(state)
        self.agent.event("ota.state", deployment=self.record.get("deployment"), state=state, previous=previous,
                         event=event, reason=self.record.get("reason", ""), version=self.record.get("version"))
        if state in OUTCOMES:
            self._report()

    def _report(self) -> None:
        rec = self.record
        result = {"deployment": rec.get("deployment"), "outcome": rec["state"], "reason": rec.get("reason", ""),
                  "version": rec.get("version")}
        self.agent.event("ota.result", level=_level(rec["state"]), **result)
        history = [h for h in rec.get("history", []) if h["deployment"] != result["deployment"]]
        rec["history"] = (history + [result])[-HISTORY:]
        rec["reported"] = True
        self._save()
        if rec.get("deployment"):
            shutil.rmtree(self._folder(), ignore_errors=True)
        self._transfer = None

    def _result_only(self, deployment: str, outcome: str, reason: str) -> None:
        """The result of an offer that never became the current deployment."""
        self.agent.event("ota.result", level=_level(outcome), deployment=deployment, outcome=outcome, reason=reason,
                         version=None)

    def _save(self) -> None:
        atomic_write(self.state_path, _json.dumps(self.record, indent=1) + "\n")

    def _folder(self) -> str:
        return os.path.join(self.root, self.record["deployment"])

    def _bundle(self) -> str:
        return os.path.join(self._folder(), _Transfer.BUNDLE)

    # -- the states' work: each returns (event, reason) ------------------------------------------

    def _verify(self) -> tuple[str, str]:
        from ..bundle import read_manifest, verify

        try:  # what the bundle says it is, for the result, even when it is refused
            self.record["version"] = read_manifest(self._bundle()).version
        except EdgeOpsError:
            pass
        if not self.cfg.trusted_keys:
            return "error", "this device has no [ota] trusted_keys, so it accepts no bundle; add the fleet's key"
        manifest = verify(self._bundle(), trusted_keys=self.cfg.trusted_keys, require_signature=True)
        self.record.update(name=manifest.name, version=manifest.version)
        return "ok", ""

    def _install(self) -> tuple[str, str]:
        active = self.store.active()
        self.record["from_slot"] = None if active is None else active.slot
        slot = self.store.install(self._bundle(), trusted_keys=self.cfg.trusted_keys, require_signature=True)
        self.record["to_slot"] = slot.slot
        return "ok", ""

    def _switch(self) -> tuple[str, str]:
        pointer = self.store.pointer()
        if pointer is None or pointer["active"] != self.record["to_slot"]:
            self.store.switch(self.record["to_slot"])
        return "ok", ""

    def _health_check(self) -> tuple[str, str]:
        started = time.monotonic()
        slot = self.store.active(verify=True)
        if slot is None or slot.slot != self.record["to_slot"]:
            return "error", "the new slot is not the active one"
        from ..loading import load

        try:
            model = load(slot.model_path)
        except EdgeOpsError as exc:
            return "error", f"the new model does not load: {exc}"
        feeds, problem = probe(model, slot.dir, slot.manifest, max_p95_ms=self.cfg.max_p95_ms)
        if problem:
            return "error", problem
        if time.monotonic() - started > self.cfg.timeout_s:
            return "timeout", f"the health check took over {self.cfg.timeout_s:g} s"
        self._use(model, slot)
        problem = self._watch(model, feeds)
        if problem:
            return "error", problem
        if time.monotonic() - started > self.cfg.timeout_s:
            return "timeout", f"the health check took over {self.cfg.timeout_s:g} s"
        self._before = None  # committed: the old model is let go
        return "ok", ""

    def _watch(self, model: Any, feeds: list[dict[str, np.ndarray]]) -> str | None:
        """The health window: the model runs (the workload's runs included) without an error."""
        errors = model.stats.errors
        deadline = time.monotonic() + self.cfg.health_window_s
        while time.monotonic() < deadline:
            if self._stop.wait(min(0.1, max(deadline - time.monotonic(), 0))):
                raise _Stopping
            if model.stats.errors > errors:
                return f"{model.stats.errors - errors} failed run(s) in the {self.cfg.health_window_s:g} s window"
        return _check_outputs(model, feeds[:1], None, None)

    def _use(self, model: Any, slot: Any) -> None:
        from ..monitor.drift import monitor_model

        drift = monitor_model(model, slot.profile_path)
        info = {"name": slot.name or "model", "version": slot.version or "unknown", "sha256": model.sha256}
        old = self.agent.swap_model(model, info, drift)
        if self._before is None:
            self._before = old

    def _roll_back(self) -> tuple[str, str]:
        back, pointer = self.record.get("from_slot"), self.store.pointer()
        try:
            if back is not None and (pointer is None or pointer["active"] != back):
                self.store.switch(back)
            elif back is None and pointer is not None and pointer["active"] == self.record.get("to_slot"):
                self._restore(None)
                return "error", "no earlier model in the store to roll back to; the new one stays active"
        except BaseException:
            self._restore(None)  # the store could not go back; the agent at least runs what it ran before
            raise
        self._restore(back)
        return "ok", ""

    def _restore(self, slot_name: str | None) -> None:
        """Give the agent back the model it ran before the health check swapped it (reloaded from the
        store when that one was the new model itself: an agent started in the middle of an update)."""
        before, self._before = self._before, None
        if before is None or not self._live:
            return  # nothing was swapped, or recovering at start: the agent opens the store's model next
        path = getattr(before[0], "path", None)
        slot = self.store.active() if slot_name is not None and _inside(path, self.store.root) else None
        if slot is not None and slot.slot == slot_name and os.path.abspath(path) != slot.model_path:
            from ..loading import load

            self._use(load(slot.model_path), slot)
            self._before = None
        else:
            self.agent.swap_model(*before)


# -- the transfer on disk ------------------------------------------------------------------------


class _Transfer:
    """One deployment's files: ``offer.json``, ``chunks/<index>`` (each checked), then ``bundle.eob``."""

    BUNDLE = "bundle.eob"

    def __init__(self, folder: str, offer: dict[str, Any]):
        self.folder, self.offer = folder, offer
        self.deployment, self.chunks = offer["deployment"], offer["chunks"]
        self.have: set[int] = set()
        self.asked: set[int] = set()
        self.bytes_have = 0
        self.last_progress = time.monotonic()
        self.last_ask = self.last_report = self.last_bad = 0.0

    @classmethod
    def open(cls, folder: str) -> _Transfer | None:
        """The transfer a crash interrupted: the offer and every chunk still intact."""
        try:
            with open(os.path.join(folder, "offer.json"), "rb") as fh:
                t = cls(folder, parse_offer(fh.read(), MAX_CHUNK_SIZE))
        except (OSError, OfferError):
            return None
        for name in os.listdir(t._chunk_dir()) if os.path.isdir(t._chunk_dir()) else []:
            if name.isdigit() and int(name) < t.chunks:
                with open(os.path.join(t._chunk_dir(), name), "rb") as fh:
                    t.put(int(name), fh.read(), write=False)
        return t

    def save_offer(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)
        os.makedirs(self._chunk_dir())
        atomic_write(os.path.join(self.folder, "offer.json"), _json.dumps(self.offer))

    def _chunk_dir(self) -> str:
        return os.path.join(self.folder, "chunks")

    def put(self, index: int, data: bytes, *, write: bool = True) -> str:
        """Keep a chunk: ``new``, ``dup`` (already here), ``bad`` (sha256 mismatch, dropped) or ``range``."""
        if not 0 <= index < self.chunks:
            return "range"
        if index in self.have:
            return "dup"
        if len(data) > self.offer["chunk_size"] or hashlib.sha256(data).hexdigest() != self.offer["chunk_sha256"][index]:
            return "bad"
        if write:
            path = os.path.join(self._chunk_dir(), str(index))
            with open(path + ".tmp", "wb") as fh:  # no fsync: a resumed transfer checks every chunk again
                fh.write(data)
            os.replace(path + ".tmp", path)
        self.have.add(index)
        self.bytes_have += len(data)
        self.last_progress = time.monotonic()
        return "new"

    @property
    def complete(self) -> bool:
        return len(self.have) == self.chunks

    def missing(self, limit: int) -> list[int]:
        out = []
        for i in range(self.chunks):
            if i not in self.have:
                out.append(i)
                if len(out) >= limit:
                    break
        return out

    def assemble(self) -> str | None:
        """Concatenate the chunks into ``bundle.eob``; an error message when sha256 or size disagree."""
        h, size = hashlib.sha256(), 0
        path = os.path.join(self.folder, self.BUNDLE)
        with open(path + ".tmp", "wb") as out:
            for i in range(self.chunks):
                with open(os.path.join(self._chunk_dir(), str(i)), "rb") as fh:
                    data = fh.read()
                h.update(data)
                size += len(data)
                out.write(data)
            out.flush()
            os.fsync(out.fileno())
        if h.hexdigest() != self.offer["bundle_sha256"] or size != self.offer["size"]:
            os.unlink(path + ".tmp")
            return (f"the assembled bundle does not match the offer (sha256 {h.hexdigest()[:12]}..., {size} bytes; "
                    f"offered {self.offer['bundle_sha256'][:12]}..., {self.offer['size']} bytes)")
        os.replace(path + ".tmp", path)
        return None

    def drop_chunks(self) -> None:
        shutil.rmtree(self._chunk_dir(), ignore_errors=True)


def parse_offer(payload: bytes, max_chunk: int) -> dict[str, Any]:
    """Check a ``cmd/ota`` payload (strict, bounded JSON: :func:`edgeops._json.loads`); OfferError says what is wrong."""
    try:
        offer = _json.loads(payload, what="the OTA offer", error=DataError)
    except DataError as exc:
        raise OfferError(str(exc)) from None
    if not isinstance(offer, dict):
        raise OfferError("the OTA offer must be a JSON object")
    dep = offer.get("deployment")
    if not isinstance(dep, str) or not _ID.match(dep):
        raise OfferError(f"deployment id {dep!r} must be 1-64 letters, digits, '_', '-' or '.'")
    ints = {k: offer.get(k) for k in ("size", "chunk_size", "chunks")}
    if any(isinstance(v, bool) or not isinstance(v, int) or v < 1 for v in ints.values()):
        raise OfferError(f"size, chunk_size and chunks must be positive integers, got {ints}")
    if ints["chunk_size"] > max_chunk:
        raise OfferError(f"chunk_size {ints['chunk_size']} is over this device's limit of {max_chunk} bytes")
    if ints["chunks"] != -(-ints["size"] // ints["chunk_size"]) or ints["chunks"] > MAX_CHUNKS:
        raise OfferError(f"{ints['chunks']} chunks cannot hold {ints['size']} bytes in chunks of {ints['chunk_size']}")
    shas = offer.get("chunk_sha256")
    if not isinstance(shas, list) or len(shas) != ints["chunks"] or not all(
            isinstance(s, str) and _HEX64.match(s) for s in shas) or not _HEX64.match(str(offer.get("bundle_sha256"))):
        raise OfferError("bundle_sha256 and chunk_sha256 (one per chunk) must be sha256 hex digests")
    created = offer.get("created", 0)
    if isinstance(created, bool) or not isinstance(created, (int, float)):
        raise OfferError(f"created must be a time in milliseconds, not {created!r}")
    return {**offer, "created": int(created)}


# -- the health check ----------------------------------------------------------------------------


def probe(model: Any, slot_dir: str, manifest: Mapping[str, Any], *,
          max_p95_ms: float | None = None) -> tuple[list[dict[str, np.ndarray]], str | None]:
    """Run the bundle's sample (or synthesised inputs) through ``model``: ``(feeds, problem or None)``."""
    try:
        feeds, refs = probe_inputs(model, slot_dir, manifest)
    except (OSError, ValueError, KeyError, EdgeOpsError) as exc:
        return [], f"the bundle's sample cannot be read: {exc}"
    problem = _check_outputs(model, feeds, refs, manifest.get("tolerances"))
    if problem:
        return feeds, problem
    times = []
    for i in range(LATENCY_RUNS):
        t0 = time.perf_counter()
        model.run(feeds[i % len(feeds)])
        times.append((time.perf_counter() - t0) * 1000)
    p95 = float(np.percentile(times, 95))
    model.stats.reset()  # the probe's runs are not the device's inferences
    if max_p95_ms is not None and p95 > max_p95_ms:
        return feeds, f"p95 latency {p95:.2f} ms is over the limit of {max_p95_ms:g} ms"
    return feeds, None


def probe_inputs(model: Any, slot_dir: str, manifest: Mapping[str, Any]
                 ) -> tuple[list[dict[str, np.ndarray]], list[dict[str, np.ndarray]] | None]:
    """The first few samples of the bundle's sample file, with reference outputs where it holds them."""
    member = manifest.get("sample")
    if not member:
        return synthesized_inputs(model), None
    with np.load(os.path.join(slot_dir, member), allow_pickle=False) as data:
        arrays = {k: data[k] for k in data.files}
    ins, outs = [s.name for s in model.inputs], [s.name for s in model.outputs]
    if len(ins) == 1 and len(arrays) == 1 and ins[0] not in arrays:  # one array under another name
        arrays = {ins[0]: next(iter(arrays.values()))}
    n = min(PROBE_SAMPLES, *(arrays[k].shape[0] for k in ins))
    feeds = [{s.name: _sample(arrays[s.name], i, s) for s in model.inputs} for i in range(n)]
    if not all(k in arrays for k in outs):
        return feeds, None
    return feeds, [{s.name: _sample(arrays[s.name], i, s) for s in model.outputs} for i in range(n)]


def _sample(array: np.ndarray, i: int, spec: Any) -> np.ndarray:
    """Sample ``i``: ``arr[i:i+1]`` where the model keeps a batch axis (DESIGN.md data files)."""
    batch = spec.shape is None or len(spec.shape) == array.ndim
    return np.ascontiguousarray(array[i:i + 1] if batch else array[i])


def synthesized_inputs(model: Any) -> list[dict[str, np.ndarray]]:
    """Zeros and seeded random values of each input's dtype and shape (dynamic dims 1)."""
    from ..bench.inputs import random_array

    rng = np.random.default_rng(0)
    shapes = {s.name: tuple(1 if d is None else int(d) for d in (s.shape or (1,))) for s in model.inputs}
    zeros = {s.name: np.zeros(shapes[s.name], dtype=s.dtype) for s in model.inputs}
    return [zeros, {s.name: random_array(rng, shapes[s.name], s.dtype) for s in model.inputs}]


def _check_outputs(model: Any, feeds: list[dict[str, np.ndarray]], refs: list[dict[str, np.ndarray]] | None,
                   tolerances: dict[str, Any] | None) -> str | None:
    atol, rtol = _tolerance(tolerances)
    for i, feed in enumerate(feeds):
        try:
            outs = model.run(feed)
        except EdgeOpsError as exc:
            return f"the new model fails on probe input {i}: {exc}"
        for name, value in outs.items():
            value = np.asarray(value)
            if value.dtype.kind in "fc" and not np.isfinite(value).all():
                return f"the new model's output {name!r} is not finite (NaN or inf) on probe input {i}"
            if refs is not None and atol is not None and name in refs[i]:
                ref = refs[i][name].astype(np.float64)
                if value.shape != ref.shape or not np.allclose(value.astype(np.float64), ref, atol=atol, rtol=rtol):
                    diff = float(np.max(np.abs(value.astype(np.float64) - ref))) if value.shape == ref.shape else math.inf
                    return (f"the new model's output {name!r} differs from the bundle's reference by {diff:.3g} on "
                            f"sample {i} (tolerance atol={atol:g}, rtol={rtol:g})")
    return None


def _tolerance(tolerances: dict[str, Any] | None) -> tuple[float | None, float]:
    """``(atol, rtol)`` from the manifest's tolerances (``max_abs`` or ``atol``, ``max_rel`` or ``rtol``);
    no absolute tolerance: no comparison."""
    t = tolerances or {}
    atol = next((t[k] for k in ("max_abs", "atol") if k in t), None)
    rtol = next((t[k] for k in ("max_rel", "rtol") if k in t), 0.0)
    if atol is None and rtol:
        atol = 0.0
    return (None if atol is None else float(atol)), float(rtol)


# -- helpers ---------------------------------------------------------------------------------------


def _load_record(path: str) -> dict[str, Any]:
    """The persisted state; an unreadable file is an unknown state (which rolls back)."""
    try:
        with open(path, "rb") as fh:
            record = _json.loads(fh.read(), what=path, error=DataError)
        if isinstance(record, dict) and isinstance(record.get("state"), str):
            return record
    except FileNotFoundError:
        return {"state": "idle", "history": []}
    except (OSError, DataError):
        pass
    return {"state": "unknown", "history": [], "reason": f"{path} was unreadable"}


def _deployment_of(payload: bytes) -> str | None:
    """The deployment id of an offer that is otherwise unusable, if it has a valid one."""
    try:
        dep = _json.loads(payload, what="the OTA offer", error=DataError).get("deployment")
    except (DataError, AttributeError):
        return None
    return dep if isinstance(dep, str) and _ID.match(dep) else None


def _kill_point(state: str) -> None:
    """The test hook (module docstring): SIGKILL this process right after ``state`` was persisted."""
    if os.environ.get(KILL_ENV) == state:
        os.kill(os.getpid(), signal.SIGKILL)


def _level(outcome: str) -> str:
    return {"committed": "info", "cancelled": "info", "failed": "error"}.get(outcome, "warning")


def _describe(exc: BaseException) -> str:
    return str(exc) if isinstance(exc, EdgeOpsError) else f"{type(exc).__name__}: {exc}"


def _inside(path: str | None, root: str) -> bool:
    return path is not None and os.path.abspath(path).startswith(os.path.join(root, ""))


def _existing(path: str) -> str:
    while not os.path.exists(path) and os.path.dirname(path) != path:
        path = os.path.dirname(path)
    return path
