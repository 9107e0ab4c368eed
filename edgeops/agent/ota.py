"""Model updates over the air, on the device: receive a bundle over MQTT, verify, install, switch, check, commit.

Four modules, one job each:

* this one, **the state machine**: :class:`Ota`, the tables :data:`TRANSITIONS` and :data:`RESUME`;
* :mod:`.ota_wire`, **the wire format** shared with the host's flasher (:mod:`edgeops.deploy.mqtt`):
  topics, the offer and :func:`~.ota_wire.parse_offer`, event kinds, outcomes;
* :mod:`.ota_transfer`, **the chunks on disk** until they make the bundle;
* :mod:`.ota_probe`, **the health probe** of a freshly installed model.

**Transfer.** The host publishes an offer on ``cmd/ota`` and the chunks on ``ota/<deployment>/<index>``
(:mod:`.ota_wire`). The device keeps the offer and every chunk whose sha256 matches under
``<store>/ota/<deployment>/``; a bad chunk is dropped. It answers an offer, a stall (no chunk for a few
seconds), a reconnect and a bad chunk with an event ``{"kind": "ota.need", "deployment": ...,
"missing": [indices]}`` (at most ``MAX_MISSING`` at a time), so the host sends only what is still
missing, after its own disconnect too. ``ota.progress`` events follow the transfer. The assembled
bundle's sha256 and size must match the offer. An offer for another deployment cancels the one being
received (unless its ``created`` is older: then the offer itself is the one cancelled); an offer for
a deployment already finished gets its result again. A malformed offer gets an error reply on
``cmd/ota/reply`` (sent through the agent's outbox, like every reply) and, when it names a valid
deployment, a ``refused`` result.

**The state machine** is :data:`TRANSITIONS`: states (:class:`State`) do their work and post an
event (:class:`Event`), the table says what comes next. The state is written to
``<store>/ota/state.json`` (atomically) *before* each step with side effects, and every transition is
published as an ``ota.state`` event; the final one as ``ota.result`` ``{deployment, outcome, reason,
version}`` with ``outcome`` an :class:`~.ota_wire.Outcome` (committed, refused, rolled_back, failed,
cancelled); ``reason`` is this deployment's own (a new offer starts with none). The bundle's signature
is checked here on the device against ``[ota] trusted_keys`` (a device with no trusted keys refuses
every bundle). States and events are string enums: ``state.json`` and the events hold their values.

**After a crash** the persisted state is looked up in :data:`RESUME`; ``health_check`` (a
half-checked model is never trusted) and any state it does not know roll back. The rollback part
runs in :meth:`Ota.recover`, before the agent opens any model. An agent stopped cleanly in the
middle of a step is treated the same way at its next start. A first update onto an empty store has
nothing to roll back to: its failed health check ends ``failed`` with the new model left active.

**Shadow mode**: an offer with ``args: {"mode": "shadow", "rate": R}`` installs the verified bundle as
the agent's shadow candidate (:mod:`.online`, :mod:`.shadow`) instead of activating it: ``verifying``
posts ``shadow`` and the result is ``committed`` with ``mode: "shadow"``; the active model, the model
store and the slots are left as they were.

**Health check**: the new model passes :func:`~.ota_probe.probe`, its p95 latency is under
``max_p95_ms`` when set; then the agent runs it for ``health_window_s`` without a run error.

**Test hook**: with ``EDGEOPS_OTA_KILL_AT=<state>`` in its environment the process SIGKILLs itself
right after persisting that state, wherever it is persisted, a resumed one included (the
kill-point tests start the agent again without it); unset, it has no effect.
"""

from __future__ import annotations

import os
import queue
import shutil
import signal
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol, cast

from .. import _json
from .._io import atomic_write
from .._strenum import StrEnum
from ..errors import DataError, EdgeOpsError
from .ota_probe import Feeds, check_outputs, probe
from .ota_transfer import Transfer
from .ota_wire import (
    Kind,
    Offer,
    OfferError,
    Outcome,
    chunk_filter,
    deployment_of,
    offer_topic,
    parse_chunk_topic,
    parse_offer,
)

if TYPE_CHECKING:
    from typing import TypeAlias

    from ..deploy.store import SlotInfo
    from ..monitor.drift import DriftMonitor
    from ..runtime import Model
    from .config import OtaConfig
    from .transport import Transport

    Running: TypeAlias = "tuple[Model | None, dict[str, Any], DriftMonitor | None]"  # what the agent runs

__all__ = ["KILL_ENV", "OUTCOMES", "RESUME", "TRANSITIONS", "Event", "Ota", "OtaHost", "OfferError", "State",
           "parse_offer", "probe"]

KILL_ENV = "EDGEOPS_OTA_KILL_AT"
MAX_MISSING = 1024  # chunk indices in one ota.need
HISTORY = 20  # finished deployments remembered (a repeated offer gets its result again)


class State(StrEnum):
    """Where an update is; persisted in ``state.json`` as the value."""

    IDLE = "idle"
    RECEIVING = "receiving"
    VERIFYING = "verifying"
    INSTALLING = "installing"
    SWITCHING = "switching"
    HEALTH_CHECK = "health_check"
    ROLLING_BACK = "rolling_back"
    COMMITTED = "committed"  # the five final states: the outcomes (ota_wire.Outcome)
    REFUSED = "refused"
    ROLLED_BACK = "rolled_back"
    FAILED = "failed"
    CANCELLED = "cancelled"


class Event(StrEnum):
    """What a state's work (or a message) posts; the table turns (state, event) into the next state."""

    OFFER = "offer"
    ASSEMBLED = "assembled"
    CORRUPT = "corrupt"
    STALLED = "stalled"
    NEWER = "newer"
    OK = "ok"
    ERROR = "error"
    TIMEOUT = "timeout"
    ROLLBACK = "rollback"  # the ``rollback`` command: a committed update is undone (a fleet rollout halted)
    SHADOW = "shadow"  # verified, and the offer asked for it as the shadow candidate: installed there
    RESUME = "resume"  # not a row of the table: a start enters the resume table's state with it


OUTCOMES: tuple[State, ...] = tuple(State(outcome.value) for outcome in Outcome)

TRANSITIONS: dict[tuple[State, Event], State] = {
    # state              event              next state
    (State.IDLE,          Event.OFFER):      State.RECEIVING,
    (State.RECEIVING,     Event.ASSEMBLED):  State.VERIFYING,
    (State.RECEIVING,     Event.CORRUPT):    State.REFUSED,
    (State.RECEIVING,     Event.STALLED):    State.FAILED,
    (State.RECEIVING,     Event.NEWER):      State.CANCELLED,
    (State.VERIFYING,     Event.OK):         State.INSTALLING,
    (State.VERIFYING,     Event.ERROR):      State.REFUSED,
    (State.VERIFYING,     Event.SHADOW):     State.COMMITTED,
    (State.INSTALLING,    Event.OK):         State.SWITCHING,
    (State.INSTALLING,    Event.ERROR):      State.REFUSED,
    (State.SWITCHING,     Event.OK):         State.HEALTH_CHECK,
    (State.SWITCHING,     Event.ERROR):      State.ROLLING_BACK,
    (State.HEALTH_CHECK,  Event.OK):         State.COMMITTED,
    (State.HEALTH_CHECK,  Event.ERROR):      State.ROLLING_BACK,
    (State.HEALTH_CHECK,  Event.TIMEOUT):    State.ROLLING_BACK,
    (State.ROLLING_BACK,  Event.OK):         State.ROLLED_BACK,
    (State.ROLLING_BACK,  Event.ERROR):      State.FAILED,
    (State.COMMITTED,     Event.OFFER):      State.RECEIVING,
    (State.COMMITTED,     Event.ROLLBACK):   State.ROLLING_BACK,
    (State.REFUSED,       Event.OFFER):      State.RECEIVING,
    (State.ROLLED_BACK,   Event.OFFER):      State.RECEIVING,
    (State.FAILED,        Event.OFFER):      State.RECEIVING,
    (State.CANCELLED,     Event.OFFER):      State.RECEIVING,
}

RESUME: dict[State, State] = {
    # persisted          enter again          why
    State.IDLE:          State.IDLE,          # nothing in flight
    State.RECEIVING:     State.RECEIVING,     # the chunks on disk stay; ask for the missing ones
    State.VERIFYING:     State.VERIFYING,     # redo from the assembled file: the active slot was never touched
    State.INSTALLING:    State.INSTALLING,    # an install only writes the inactive slot: do it again
    State.SWITCHING:     State.SWITCHING,     # active.json says: the new slot goes on to the check, else switch again
    State.HEALTH_CHECK:  State.ROLLING_BACK,  # never trust a half-checked model
    State.ROLLING_BACK:  State.ROLLING_BACK,  # finish the rollback
    **{outcome: outcome for outcome in OUTCOMES},  # report the result if that did not happen
}
RESUME_DEFAULT = State.ROLLING_BACK  # a state this version does not know


def resume_target(persisted: str) -> State:
    """Where a start goes from the persisted state: :data:`RESUME`, or :data:`RESUME_DEFAULT` for a stranger."""
    try:
        state = State(persisted)
    except ValueError:
        return RESUME_DEFAULT
    return RESUME.get(state, RESUME_DEFAULT)


class OtaHost(Protocol):
    """What the OTA needs from its agent (:class:`~edgeops.agent.Agent` is one)."""

    @property
    def store_dir(self) -> str: ...  # the OTA keeps ``ota/`` and the model store ``models/`` here

    @property
    def base(self) -> str: ...  # ``edgeops/<fleet>/<device>``

    @property
    def transport(self) -> Transport: ...

    def event(self, kind: str, level: str = "info", **fields: Any) -> None: ...

    def reply(self, command: str, body: dict[str, Any]) -> None: ...

    def swap_model(self, model: Model | None, info: dict[str, Any], drift: DriftMonitor | None) -> Running: ...

    def install_shadow(self, bundle: str, rate: float) -> str: ...  # shadow mode: run it next to the model


class _Inbox(StrEnum):
    """What the worker's queue carries (the network thread puts, the worker takes)."""

    CONNECTED = "connected"  # ()
    TICK = "tick"  # (): nothing arrived for a quarter of a second
    OFFER = "offer"  # (payload,)
    CHUNK = "chunk"  # (deployment, index, data)
    ROLLBACK = "rollback"  # (reason,): the ``rollback`` command
    STOP = "stop"  # ()


class _Stopping(Exception):
    """The agent stops in the middle of a step: the persisted state decides at the next start."""


# -- the device side ---------------------------------------------------------------------------


class Ota:
    """The agent's OTA: a worker thread that receives, runs the state machine and reports (module docstring)."""

    def __init__(self, agent: OtaHost, config: OtaConfig):
        from ..deploy.store import ModelStore

        self.agent, self.cfg = agent, config
        self.root = os.path.join(agent.store_dir, "ota")
        self.store = ModelStore(os.path.join(agent.store_dir, "models"))
        self.state_path = os.path.join(self.root, "state.json")
        self.record = _load_record(self.state_path)
        self.stall_s = max(0.5, min(2.0, config.timeout_s / 4))
        self._queue: queue.Queue[tuple[Any, ...]] = queue.Queue()  # (_Inbox, *its arguments)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._transfer: Transfer | None = None
        self._before: Running | None = None  # the agent's model before a health check swapped it
        self._reload = False  # a rollback on command: the agent gets the store's model after the switch
        self._live = False
        self._handlers: dict[_Inbox, Callable[..., None]] = {  # what the worker does with a message
            _Inbox.CONNECTED: self._on_connected, _Inbox.TICK: self._on_tick, _Inbox.OFFER: self._on_offer,
            _Inbox.CHUNK: self._on_chunk, _Inbox.ROLLBACK: self._on_rollback}
        self._work: dict[State, Callable[[], tuple[Event, str]]] = {  # the states that do work, and post an event
            State.VERIFYING: self._verify, State.INSTALLING: self._install, State.SWITCHING: self._switch,
            State.HEALTH_CHECK: self._health_check, State.ROLLING_BACK: self._roll_back}

    # -- lifecycle (agent threads) -------------------------------------------------------------

    def recover(self) -> None:
        """Settle what a crash left that needs no network: a rollback to finish, a result to report."""
        self._guarded(self._recover)

    def _recover(self) -> None:
        state = self.record["state"]
        target = resume_target(state)
        if target == State.ROLLING_BACK:
            why = "" if state == State.ROLLING_BACK else f"the agent restarted during {state}"
            self._enter(State.ROLLING_BACK, Event.RESUME, why)
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
        self._queue.put((_Inbox.STOP,))
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)
        self._thread, self._live = None, False

    # -- messages (the network thread) ---------------------------------------------------------

    def on_connect(self) -> None:
        self.agent.transport.subscribe(chunk_filter(self.agent.base), qos=1)
        self._queue.put((_Inbox.CONNECTED,))

    def handle(self, topic: str, payload: bytes) -> bool:
        """Queue an OTA message for the worker; False when ``topic`` is not an OTA topic."""
        base = self.agent.base
        if topic == offer_topic(base):
            self._queue.put((_Inbox.OFFER, payload))
            return True
        if not topic.startswith(f"{base}/ota/"):
            return False
        chunk = parse_chunk_topic(base, topic)
        if chunk is not None:
            self._queue.put((_Inbox.CHUNK, *chunk, payload))
        return True

    def request_rollback(self, reason: str) -> dict[str, Any]:
        """The ``rollback`` command (network thread): undo the last committed update, in the worker.

        Only a ``committed`` deployment whose new slot is still the active one is rolled back (to the slot it
        replaced, through the two-slot store, then reported as an ``ota.result`` ``rolled_back``); anything
        else is answered with what there is, so the command can be repeated safely."""
        rec = self.record
        active = self.store.pointer()
        can = rec["state"] == State.COMMITTED and rec.get("from_slot") is not None and active is not None \
            and active.get("active") == rec.get("to_slot")
        if can:
            self._queue.put((_Inbox.ROLLBACK, reason))
        return {"queued": can, "state": str(rec["state"]), "deployment": rec.get("deployment"),
                "version": rec.get("version")}

    def _on_rollback(self, reason: str) -> None:
        rec, active = self.record, self.store.pointer()
        if rec["state"] != State.COMMITTED or active is None or active.get("active") != rec.get("to_slot"):
            return  # already undone, or another update came in between
        self._reload = True
        self._transition(Event.ROLLBACK, reason or "rollback requested")
        self._advance()

    # -- the worker ------------------------------------------------------------------------------

    def _loop(self) -> None:
        self._guarded(self._resume)
        while not self._stop.is_set():
            try:
                item = self._queue.get(timeout=0.25)
            except queue.Empty:
                item = (_Inbox.TICK,)
            if item[0] != _Inbox.STOP:
                self._guarded(self._handlers[item[0]], *item[1:])

    def _guarded(self, fn: Callable[..., None], *args: Any) -> None:
        try:
            fn(*args)
        except _Stopping:
            pass
        except Exception as exc:  # noqa: BLE001 - the worker must outlive any bug; the event says what happened
            self.agent.event(Kind.ERROR, level="error", deployment=self.record.get("deployment"),
                             state=self.record["state"], error=f"{type(exc).__name__}: {exc}")

    def _resume(self) -> None:
        state = self.record["state"]
        if state in (State.IDLE, *OUTCOMES):
            self._sweep()
            return
        target = resume_target(state)
        if target == State.RECEIVING:
            self._transfer = Transfer.open(self._folder())
            if self._transfer is None:
                self._transition(Event.STALLED, "the transfer's files are gone after a restart")
                return
        self._enter(target, Event.RESUME, "")
        if target == State.RECEIVING:
            self._ask("resumed")
        else:
            self._advance()

    def _sweep(self) -> None:
        """Remove transfer folders a crash left behind (nothing is in flight)."""
        for name in os.listdir(self.root) if os.path.isdir(self.root) else []:
            if os.path.isdir(os.path.join(self.root, name)):
                shutil.rmtree(os.path.join(self.root, name), ignore_errors=True)

    def _on_connected(self) -> None:
        if self.record["state"] == State.RECEIVING and self._transfer is not None:
            self._ask("reconnected")

    def _on_tick(self) -> None:
        t = self._transfer
        if self.record["state"] != State.RECEIVING or t is None:
            return
        now = time.monotonic()
        if now - t.last_progress > self.cfg.timeout_s:
            self._transition(Event.STALLED, f"no progress for {self.cfg.timeout_s:g} s: got {len(t.have)} of "
                                        f"{t.chunks} chunks")
        elif now - max(t.last_progress, t.last_ask) > self.stall_s:
            self._ask("stalled")

    def _on_offer(self, payload: bytes) -> None:
        try:
            offer = parse_offer(payload, self.cfg.chunk_size)
        except OfferError as exc:
            self._reply(False, error=str(exc))
            dep = deployment_of(payload)
            if dep is None:
                self.agent.event(Kind.ERROR, level="warning", error=str(exc))
            else:  # the host waits for a result: it gets one
                self._result_only(dep, Outcome.REFUSED, str(exc))
            return
        dep, rec = offer["deployment"], self.record
        self._reply(True, deployment=dep, state=rec["state"] if dep == rec.get("deployment") else "offered")
        if dep == rec.get("deployment") and rec["state"] == State.RECEIVING:
            self._ask("offered again")
            return
        done = [h for h in rec.get("history", []) if h["deployment"] == dep]
        if done:
            self.agent.event(Kind.RESULT, level=_level(done[-1]["outcome"]), again=True, **done[-1])
            return
        if rec["state"] == State.RECEIVING:
            if offer["created"] < rec.get("created", 0):
                self._result_only(dep, Outcome.CANCELLED, f"older than deployment {rec['deployment']}, in progress")
                return
            self._transition(Event.NEWER, f"superseded by deployment {dep}")
        self._begin(offer)

    def _begin(self, offer: Offer) -> None:
        need = 2 * offer["size"] + (16 << 20)  # the chunks, the assembled bundle, then its extraction
        free = shutil.disk_usage(_existing(self.root)).free
        if free < need:
            self._result_only(offer["deployment"], Outcome.REFUSED, f"not enough disk: {free >> 20} MiB free, "
                                                              f"{need >> 20} MiB needed")
            return
        self._transfer = Transfer(os.path.join(self.root, offer["deployment"]), offer)
        self._transfer.save_offer()  # before the state names it: a resumed 'receiving' always finds it
        fresh: dict[str, Any] = {"deployment": offer["deployment"], "created": offer["created"],
                                 "size": offer["size"], "chunks": offer["chunks"], "name": None, "version": None,
                                 "from_slot": None, "to_slot": None, **_mode(offer)}
        self.record["reason"] = ""  # not the previous deployment's (``_enter`` writes only a non-empty reason)
        self._transition(Event.OFFER, **fresh)
        self._ask("offered")

    def _on_chunk(self, deployment: str, index: int, data: bytes) -> None:
        t = self._transfer
        if self.record["state"] != State.RECEIVING or t is None or deployment != t.deployment:
            return
        got = t.put(index, data)
        if got == "bad" and time.monotonic() - t.last_bad > 0.5:  # at most two a second; stalls ask for the rest
            t.last_bad = time.monotonic()
            self.agent.event(Kind.NEED, deployment=t.deployment, missing=[index], reason="bad chunk",
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
            self._transition(Event.CORRUPT, error)
            return
        self._transition(Event.ASSEMBLED)
        t.drop_chunks()
        self._advance()

    def _ask(self, why: str) -> None:
        t = self._transfer
        if t is None:
            return
        missing = t.missing(MAX_MISSING)
        t.asked, t.last_ask = set(missing), time.monotonic()
        self.agent.event(Kind.NEED, deployment=t.deployment, missing=missing, reason=why, have=len(t.have),
                         chunks=t.chunks)

    def _progress(self, force: bool = False) -> None:
        t = self._transfer
        assert t is not None
        now = time.monotonic()
        if force or now - t.last_report >= 1.0:
            t.last_report = now
            self.agent.event(Kind.PROGRESS, deployment=t.deployment, have=len(t.have), chunks=t.chunks,
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
                event, reason = Event.ERROR, _describe(exc)
            self._transition(event, reason)

    def _transition(self, event: Event, reason: str = "", **updates: Any) -> None:
        state = self.record["state"]
        nxt = TRANSITIONS.get((state, event))
        if nxt is None:
            raise RuntimeError(f"the OTA table has no row for state {str(state)!r} and event {str(event)!r}")
        self._enter(nxt, event, reason, **updates)

    def _enter(self, state: State, event: Event, reason: str = "", **updates: Any) -> None:
        """Persist ``state`` (then the kill hook), announce it; a final state is reported too."""
        previous = self.record["state"]
        self.record.update(updates, state=state, event=event, updated=int(time.time() * 1000))
        if reason:
            self.record["reason"] = reason
        if state in OUTCOMES:
            self.record["reported"] = False
        if state == State.COMMITTED and self.record.get("mode") != "shadow":
            self.record["ever_committed"] = True
        self._save()
        _kill_point(state)
        self.agent.event(Kind.STATE, deployment=self.record.get("deployment"), state=state, previous=previous,
                         event=event, reason=self.record.get("reason", ""), version=self.record.get("version"))
        if state in OUTCOMES:
            self._report()

    def _report(self) -> None:
        rec = self.record
        result = {"deployment": rec.get("deployment"), "outcome": rec["state"], "reason": rec.get("reason", ""),
                  "version": rec.get("version")}
        if rec.get("mode") == "shadow":
            result["mode"] = "shadow"
        self.agent.event(Kind.RESULT, level=_level(rec["state"]), **result)
        history = [h for h in rec.get("history", []) if h["deployment"] != result["deployment"]]
        rec["history"] = (history + [result])[-HISTORY:]
        rec["reported"] = True
        self._save()
        if rec.get("deployment"):
            shutil.rmtree(self._folder(), ignore_errors=True)
        self._transfer = None

    def _result_only(self, deployment: str, outcome: Outcome, reason: str) -> None:
        """The result of an offer that never became the current deployment."""
        self.agent.event(Kind.RESULT, level=_level(outcome), deployment=deployment, outcome=outcome, reason=reason,
                         version=None)

    def _save(self) -> None:
        atomic_write(self.state_path, _json.dumps(self.record, indent=1) + "\n")

    def _folder(self) -> str:
        return os.path.join(self.root, self.record["deployment"])

    def _bundle(self) -> str:
        return os.path.join(self._folder(), Transfer.BUNDLE)

    # -- the states' work (the table ``_work``): each returns (event, reason) ----------------------

    def _verify(self) -> tuple[Event, str]:
        from ..bundle import read_manifest, verify

        try:  # what the bundle says it is, for the result, even when it is refused
            self.record["version"] = read_manifest(self._bundle()).version
        except EdgeOpsError:
            pass
        if not self.cfg.trusted_keys:
            return Event.ERROR, "this device has no [ota] trusted_keys, so it accepts no bundle; add the fleet's key"
        manifest = verify(self._bundle(), trusted_keys=self.cfg.trusted_keys, require_signature=True)
        self.record.update(name=manifest.name, version=manifest.version)
        if self.record.get("mode") == "shadow":
            self.agent.install_shadow(self._bundle(), float(self.record.get("shadow_rate") or 0.1))
            return Event.SHADOW, "installed as the shadow model"
        return Event.OK, ""

    def _install(self) -> tuple[Event, str]:
        active = self.store.active()
        self.record["from_slot"] = None if active is None else active.slot
        slot = self.store.install(self._bundle(), trusted_keys=self.cfg.trusted_keys, require_signature=True)
        self.record["to_slot"] = slot.slot
        return Event.OK, ""

    def _switch(self) -> tuple[Event, str]:
        pointer = self.store.pointer()
        if pointer is None or pointer["active"] != self.record["to_slot"]:
            self.store.switch(self.record["to_slot"])
        return Event.OK, ""

    def _health_check(self) -> tuple[Event, str]:
        started = time.monotonic()
        slot = self.store.active(verify=True)
        if slot is None or slot.slot != self.record["to_slot"]:
            return Event.ERROR, "the new slot is not the active one"
        from ..loading import load

        try:
            model = load(slot.model_path)
        except EdgeOpsError as exc:
            return Event.ERROR, f"the new model does not load: {exc}"
        feeds, problem = probe(model, slot.dir, slot.manifest, max_p95_ms=self.cfg.max_p95_ms)
        if problem:
            return Event.ERROR, problem
        if time.monotonic() - started > self.cfg.timeout_s:
            return Event.TIMEOUT, f"the health check took over {self.cfg.timeout_s:g} s"
        self._use(model, slot)
        problem = self._watch(model, feeds)
        if problem:
            return Event.ERROR, problem
        if time.monotonic() - started > self.cfg.timeout_s:
            return Event.TIMEOUT, f"the health check took over {self.cfg.timeout_s:g} s"
        self._before = None  # committed: the old model is let go
        return Event.OK, ""

    def _watch(self, model: Model, feeds: Feeds) -> str | None:
        """The health window: the model runs (the workload's runs included) without an error."""
        errors = model.stats.errors
        deadline = time.monotonic() + self.cfg.health_window_s
        while time.monotonic() < deadline:
            if self._stop.wait(min(0.1, max(deadline - time.monotonic(), 0))):
                raise _Stopping
            if model.stats.errors > errors:
                return f"{model.stats.errors - errors} failed run(s) in the {self.cfg.health_window_s:g} s window"
        return check_outputs(model, feeds[:1], None, None)

    def _use(self, model: Model, slot: SlotInfo) -> None:
        from ..monitor.drift import monitor_model

        drift = monitor_model(model, slot.profile_path)
        info = {"name": slot.name or "model", "version": slot.version or "unknown", "sha256": model.sha256}
        old = self.agent.swap_model(model, info, drift)
        if self._before is None:
            self._before = old

    def _roll_back(self) -> tuple[Event, str]:
        back, pointer = self.record.get("from_slot"), self.store.pointer()
        try:
            if back is not None and (pointer is None or pointer["active"] != back):
                self.store.switch(back)
            elif back is None and pointer is not None and pointer["active"] == self.record.get("to_slot"):
                self._restore(None)
                return Event.ERROR, "no earlier model in the store to roll back to; the new one stays active"
        except BaseException:
            self._restore(None)  # the store could not go back; the agent at least runs what it ran before
            raise
        self._restore(back)
        return Event.OK, ""

    def _restore(self, slot_name: str | None) -> None:
        """Give the agent back the model it ran before the health check swapped it (reloaded from the
        store when that one was the new model itself: an agent started in the middle of an update)."""
        before, self._before = self._before, None
        reload, self._reload = self._reload, False
        if before is None and reload and self._live and slot_name is not None:
            slot = self.store.active(verify=True)
            if slot is not None and slot.slot == slot_name:
                from ..loading import load

                self._use(load(slot.model_path), slot)
                self._before = None
            return
        if before is None or not self._live:
            return  # nothing was swapped, or recovering at start: the agent opens the store's model next
        path = before[0].path if before[0] is not None else None
        slot = self.store.active() if slot_name is not None and _inside(path, self.store.root) else None
        if slot is not None and path is not None and slot.slot == slot_name and os.path.abspath(path) != slot.model_path:
            from ..loading import load

            self._use(load(slot.model_path), slot)
            self._before = None
        else:
            self.agent.swap_model(*before)


# -- helpers ---------------------------------------------------------------------------------------


def _mode(offer: Offer) -> dict[str, Any]:
    """``{"mode", "shadow_rate"}`` of the offer's ``args`` (checked by :func:`~.ota_wire.parse_offer`)."""
    args = cast("dict[str, Any]", dict(offer).get("args") or {})
    return {"mode": args.get("mode", "active"), "shadow_rate": args.get("rate")}


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


def _kill_point(state: str) -> None:
    """The test hook (module docstring): SIGKILL this process right after ``state`` was persisted."""
    if os.environ.get(KILL_ENV) == state:
        os.kill(os.getpid(), signal.SIGKILL)


def _level(outcome: str) -> str:
    """The level of an ``ota.result`` event."""
    return {"committed": "info", "cancelled": "info", "failed": "error"}.get(outcome, "warning")


def _describe(exc: BaseException) -> str:
    return str(exc) if isinstance(exc, EdgeOpsError) else f"{type(exc).__name__}: {exc}"


def _inside(path: str | None, root: str) -> bool:
    return path is not None and os.path.abspath(path).startswith(os.path.join(root, ""))


def _existing(path: str) -> str:
    while not os.path.exists(path) and os.path.dirname(path) != path:
        path = os.path.dirname(path)
    return path
