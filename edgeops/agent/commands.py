"""Commands on ``edgeops/<fleet>/<device>/cmd/<name>``, answered on ``cmd/<name>/reply``.

A command's payload is a JSON object (or empty), read with :func:`edgeops._json.loads`: bounded in
size and nesting depth, no NaN or Infinity, no repeated keys. ``request_id``, when given, comes
back in the reply so the caller can match them. Every reply has ``ok``; a failed one has
``error``. Malformed or unknown commands get an error reply and an ``command.error`` event, never
an exception in the network thread.

Replies go through the agent's outbox (stream ``replies``, see :meth:`Agent.reply`), so each one
gets ``seq`` and ``id`` and none is lost to a full MQTT queue when many commands come at once.

========================  ==========================================  ====================================
command                   payload                                     reply
========================  ==========================================  ====================================
``ping``                  ``{}``                                      ``{"ok": true, "ts": ...}``
``config``                ``{"interval_s": 5}``                       ``{"ok": true, "interval_s": 5.0}``
``telemetry-now``         ``{}``                                      ``{"ok": true, "seq": N}``
``rollback``              ``{"reason": "..."}``                       ``{"ok": true, "queued": bool, "state":
                                                                      ..., "deployment": ..., "version": ...}``
========================  ==========================================  ====================================
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from .. import _json
from ..errors import DataError, EdgeOpsError

if TYPE_CHECKING:
    from .agent import Agent

MAX_PAYLOAD = 64 * 1024


class CommandError(Exception):
    pass


class CommandHandler:
    def __init__(self, agent: Agent):
        self.agent = agent
        self.table = {"ping": self.ping, "config": self.config, "telemetry-now": self.telemetry_now,
                      "rollback": self.rollback}

    def handle(self, topic: str, payload: bytes) -> None:
        prefix = f"{self.agent.base}/cmd/"
        if not topic.startswith(prefix) or topic.endswith("/reply"):
            return
        name = topic[len(prefix):]
        request_id = None
        try:
            args = self._parse(payload)
            request_id = args.pop("request_id", None)
            if name not in self.table:
                raise CommandError(f"unknown command {name!r}; known: {', '.join(sorted(self.table))}")
            reply = {"ok": True, **self.table[name](args)}
        except (CommandError, EdgeOpsError) as exc:
            reply = {"ok": False, "error": str(exc)}
            self.agent.event("command.error", level="warning", command=name[:64], error=str(exc))
        except Exception as exc:  # noqa: BLE001 - the network thread must survive anything a command does
            reply = {"ok": False, "error": f"internal error: {type(exc).__name__}: {exc}"}
            self.agent.event("command.error", level="error", command=name[:64], error=reply["error"])
        if request_id is not None:
            reply["request_id"] = request_id
        reply["ts"] = int(time.time() * 1000)
        self.agent.reply(name, reply)

    @staticmethod
    def _parse(payload: bytes) -> dict[str, Any]:
        if len(payload) > MAX_PAYLOAD:
            raise CommandError(f"payload of {len(payload)} bytes is over the {MAX_PAYLOAD}-byte limit")
        if not payload.strip():
            return {}
        try:
            args = _json.loads(payload, what="the payload", error=DataError, max_bytes=MAX_PAYLOAD)
        except DataError as exc:
            raise CommandError(str(exc)) from None
        if not isinstance(args, dict):
            raise CommandError(f"payload must be a JSON object, not {type(args).__name__}")
        return args

    def ping(self, args: dict[str, Any]) -> dict[str, Any]:
        return {"pong": True, "uptime_s": round(time.time() - self.agent.started, 3)}

    def config(self, args: dict[str, Any]) -> dict[str, Any]:
        unknown = set(args) - {"interval_s"}
        if unknown or not args:
            raise CommandError(f"config takes interval_s; got {', '.join(sorted(unknown)) or 'nothing'}")
        return {"interval_s": self.agent.set_interval(args["interval_s"])}

    def telemetry_now(self, args: dict[str, Any]) -> dict[str, Any]:
        if args:
            raise CommandError(f"telemetry-now takes no arguments, got {', '.join(sorted(args))}")
        return {"seq": self.agent.telemetry_now()["seq"]}

    def rollback(self, args: dict[str, Any]) -> dict[str, Any]:
        """Undo the last committed OTA update (the two-slot store's previous slot); see :meth:`Ota.request_rollback`."""
        unknown = set(args) - {"reason"}
        if unknown:
            raise CommandError(f"rollback takes reason; got {', '.join(sorted(unknown))}")
        ota = getattr(self.agent, "ota", None)
        if ota is None:
            raise CommandError("this agent has no [ota] section, so it has no update to roll back")
        reason = args.get("reason", "")
        if not isinstance(reason, str):
            raise CommandError("rollback's reason must be a string")
        return dict(ota.request_rollback(reason[:500]))
