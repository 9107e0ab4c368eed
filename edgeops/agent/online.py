"""What the agent watches in each result of its model: output drift, a shadow candidate, predictions awaiting labels.

:class:`Online` is the model's ``result_observer`` (see :class:`edgeops.Model`): for each run it
keeps the outputs by request id (:class:`~edgeops.runtime.feedback.FeedbackLog`), counts them into
the output drift window (:class:`~edgeops.monitor.output_drift.OutputDrift`) and offers the run to
the shadow candidate (:class:`~.shadow.Shadow`, which never makes the run wait). Telemetry reads
three blocks from it: ``output_drift``, ``shadow`` and ``feedback``.

**Labels that arrive later** come on ``edgeops/<fleet>/<device>/feedback`` (QoS 1), in batches::

    {"labels": [{"request_id": 4398046511105, "label": 3}, {"request_id": 4398046511106, "label": 7}]}

(a bare list of those objects is accepted too). Each is counted against the prediction of that run
and the model version that made it; labels for runs no longer kept are counted as ``unmatched``. A
malformed batch is reported as a ``feedback.error`` event and otherwise ignored.

**A shadow installed over the air** (an OTA offer with ``args: {"mode": "shadow", "rate": R}``) is
kept in ``<store>/shadow/`` with ``shadow.json`` naming it, so it runs again after a restart; a
``[model] shadow`` in the config wins over it. The command ``shadow-stop`` (``cmd/shadow-stop``, ``{}``)
stops the candidate and forgets the one installed over the air.
"""

from __future__ import annotations

import os
import shutil
from typing import TYPE_CHECKING, Any

from .. import _json
from .._io import atomic_write
from ..errors import DataError, EdgeOpsError, UsageError
from ..runtime.feedback import FeedbackLog

if TYPE_CHECKING:
    import numpy as np

    from ..monitor.output_drift import OutputDrift
    from ..runtime import Model
    from .shadow import Shadow

__all__ = ["Online", "parse_labels", "MAX_LABELS"]

MAX_LABELS = 10_000  # labels in one feedback message
MAX_FEEDBACK_BYTES = 1 << 20


def parse_labels(payload: bytes) -> list[tuple[Any, Any]]:
    """``[(request_id, label)]`` of a feedback message (module docstring); DataError says what is wrong."""
    body = _json.loads(payload, what="the feedback message", error=DataError, max_bytes=MAX_FEEDBACK_BYTES)
    items = body.get("labels") if isinstance(body, dict) else body
    if not isinstance(items, list):
        raise DataError('a feedback message is {"labels": [{"request_id": ..., "label": ...}, ...]}')
    if len(items) > MAX_LABELS:
        raise DataError(f"{len(items)} labels in one feedback message; send at most {MAX_LABELS} at a time")
    out = []
    for i, item in enumerate(items):
        if not isinstance(item, dict) or "request_id" not in item or "label" not in item:
            raise DataError(f"feedback label {i} must be an object with request_id and label, not {item!r}"[:300])
        rid = item["request_id"]
        if isinstance(rid, bool) or not isinstance(rid, (int, str)):
            raise DataError(f"feedback label {i}: request_id must be an integer or a string, not {rid!r}"[:300])
        out.append((rid, item["label"]))
    return out


class Online:
    """The agent's result observer and its three telemetry blocks (module docstring)."""

    def __init__(self, store_dir: str, keep: int = 4096):
        self.feedback = FeedbackLog(keep)
        self.output_drift: OutputDrift | None = None
        self.shadow: Shadow | None = None
        self.version = "unknown"
        self.shadow_dir = os.path.join(store_dir, "shadow")

    # -- the model's thread --------------------------------------------------------------------

    def on_result(self, request_id: Any, feeds: dict[str, np.ndarray], outputs: dict[str, np.ndarray],
                  ns: int) -> None:
        self.feedback.record(request_id, outputs, self.version)
        drift = self.output_drift
        if drift is not None:
            drift.update(outputs)
        shadow = self.shadow
        if shadow is not None:
            shadow.offer(feeds, outputs, ns)

    # -- which model ---------------------------------------------------------------------------

    def attach(self, model: Model | None, version: str, profile: Any) -> None:
        """Watch ``model`` (version ``version``): its results come here, its output drift uses ``profile``
        (a dict or path; None: the profile next to the model file)."""
        from ..monitor.output_drift import monitor_outputs

        self.version = str(version)
        self.output_drift = None
        if model is None:
            return
        try:
            self.output_drift = monitor_outputs(model, profile)
        except EdgeOpsError:
            self.output_drift = None  # a profile without usable outputs: input drift still says why
        model.result_observer = self.on_result
        model.feedback_log = self.feedback

    def detach(self, model: Model | None) -> None:
        if model is not None and model.result_observer == self.on_result:
            model.result_observer = None

    # -- the shadow candidate ------------------------------------------------------------------

    def open_shadow(self, path: str, rate: float, *, start: bool) -> Shadow:
        """Run the model file or bundle ``path`` as the shadow from now on (replacing one that ran)."""
        from ..loading import load
        from .shadow import Shadow

        model = load(path, threads=1)  # one core at most: the candidate must not take the active model's CPU
        manifest = getattr(model, "bundle", None)
        version = manifest.version if manifest is not None else (model.sha256 or "unknown")[:12]
        shadow = Shadow(model, version, rate, path=path)
        self.stop_shadow()
        self.shadow = shadow
        if start:
            shadow.start()
        return shadow

    def stop_shadow(self) -> None:
        shadow, self.shadow = self.shadow, None
        if shadow is not None:
            shadow.stop()

    def install_shadow(self, bundle: str, rate: float, *, start: bool) -> Shadow:
        """Keep the verified bundle as the shadow (survives a restart: ``shadow.json``) and run it."""
        from .shadow import check_rate

        check_rate(rate, "the OTA offer's args.rate")
        os.makedirs(self.shadow_dir, exist_ok=True)
        target = os.path.join(self.shadow_dir, "candidate.eob")
        tmp = target + ".tmp"
        shutil.copyfile(bundle, tmp)
        os.replace(tmp, target)
        shadow = self.open_shadow(target, rate, start=start)
        atomic_write(os.path.join(self.shadow_dir, "shadow.json"),
                     _json.dumps({"path": "candidate.eob", "rate": rate, "version": shadow.version}) + "\n")
        return shadow

    def forget_shadow(self) -> None:
        """Drop the shadow installed over the air (it does not come back at the next start)."""
        shutil.rmtree(self.shadow_dir, ignore_errors=True)

    def saved_shadow(self) -> tuple[str, float] | None:
        """``(path, rate)`` of the shadow installed over the air, if any."""
        meta = os.path.join(self.shadow_dir, "shadow.json")
        if not os.path.isfile(meta):
            return None
        try:
            with open(meta, "rb") as fh:
                saved = _json.loads(fh.read(), what=meta, error=DataError)
            return os.path.join(self.shadow_dir, str(saved["path"])), float(saved["rate"])
        except (OSError, DataError, KeyError, TypeError, ValueError) as exc:
            raise UsageError(f"the saved shadow {meta} is unreadable ({exc}); delete the folder to drop it") from exc

    # -- labels --------------------------------------------------------------------------------

    def labels(self, payload: bytes) -> dict[str, int]:
        """Count a feedback message's labels; ``{"matched", "unmatched"}``."""
        matched = unmatched = 0
        for rid, label in parse_labels(payload):
            if self.feedback.label(rid, label):
                matched += 1
            else:
                unmatched += 1
        return {"matched": matched, "unmatched": unmatched}

    # -- telemetry -----------------------------------------------------------------------------

    def telemetry(self) -> dict[str, Any]:
        drift = self.output_drift
        shadow = self.shadow
        return {
            "output_drift": {"enabled": True, **drift.snapshot(reset=True)} if drift is not None else
            {"enabled": False, "reason": "no reference outputs in the profile (or no profile)"},
            "shadow": shadow.snapshot(reset=True) if shadow is not None else {"enabled": False},
            "feedback": self.feedback.snapshot(reset=True),
            "feedback_unmatched": self.feedback.unmatched,
        }
