"""A rollout's gates: ``metric OP number[unit]`` expressions, read by a small parser (no ``eval``), and their
values from the stored telemetry of a soak window.

Grammar (one gate; several are separated by commas or given as several ``--gate``)::

    gate   := metric op number [unit]
    metric := one of METRICS
    op     := "<=" | "<" | ">=" | ">" | "=="
    unit   := "%" | "pt" (both: hundredths) | "ms" | "x" (as written)

Each metric compares the devices updated in the stage (their telemetry since their commit, on the new
version) with the devices still on the old version over the same window, or, when none are left, with
the updated devices' own history before their update. A metric with no data is ``None`` and neither
passes nor fails; :data:`DEFAULT_GATES` apply to every metric the user did not set.
"""

from __future__ import annotations

import re
import statistics
from dataclasses import dataclass
from typing import Any

from ..errors import UsageError
from .store import _dig

__all__ = ["Gate", "METRICS", "DEFAULT_GATES", "DECIDING", "parse_gate", "parse_gates", "measure", "check"]

METRICS = {
    "p95_ratio": "median p95 latency of the updated devices / that of the baseline",
    "error_rate": "run errors / runs on the updated devices",
    "error_rate_delta": "error rate of the updated devices minus the baseline's",
    "guardrail_violations": "guardrail violations (values out of the profile's range) on the updated devices",
    "guardrail_rate_delta": "guardrail violations per run on the updated devices minus the baseline's",
    "psi_in": "largest input PSI reported by an updated device",
    "psi_out": "largest output PSI (output_drift) reported by an updated device",
    "temperature_c": "highest temperature of an updated device",
    "cpu_percent": "highest CPU use of an updated device",
    "restarts": "agent thread restarts on the updated devices during the soak",
    "offline": "updated devices that stopped reporting during the soak",
    "flash_failed": "share of the stage's devices that could not be updated (after retries)",
    "shadow_agreement": "lowest shadow agreement of an updated device over its soak (shadow rollouts)",
    "shadow_samples": "fewest shadow samples of an updated device over its soak (shadow rollouts)",
    "accuracy_drop_ci_upper": "upper bound of the 95 % interval of (baseline accuracy - new accuracy) (A/B)",
}
DEFAULT_GATES = ("p95_ratio<=1.5", "error_rate_delta<=0.01", "guardrail_rate_delta<=0.05", "psi_in<=0.25",
                 "psi_out<=0.25", "temperature_c<=85", "restarts<=0", "offline<=0", "flash_failed<=0.25")
_OPS = {"<=": lambda a, b: a <= b, "<": lambda a, b: a < b, ">=": lambda a, b: a >= b, ">": lambda a, b: a > b,
        "==": lambda a, b: a == b}
_UNITS = {None: 1.0, "": 1.0, "%": 0.01, "pt": 0.01, "ms": 1.0, "x": 1.0}
_GATE = re.compile(r"\s*([a-z_][a-z0-9_]*)\s*(<=|>=|==|<|>)\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*(%|pt|ms|x)?\s*")


@dataclass(frozen=True)
class Gate:
    metric: str
    op: str
    threshold: float
    text: str

    def passes(self, value: float | None) -> bool | None:
        """True/False, or None when there is no value to judge."""
        return None if value is None else bool(_OPS[self.op](value, self.threshold))

    def to_dict(self) -> dict[str, Any]:
        return {"metric": self.metric, "op": self.op, "threshold": self.threshold, "text": self.text}


def parse_gate(text: str) -> Gate:
    m = _GATE.fullmatch(text)
    if m is None:
        raise UsageError(f"gate {text!r}: write metric<=number, e.g. 'p95_ratio<=1.2' or 'accuracy_drop_ci_upper<=1pt'"
                         f" (operators <= < >= > ==; units % pt ms x)")
    metric, op, number, unit = m.groups()
    if metric not in METRICS:
        raise UsageError(f"gate {text!r}: unknown metric {metric!r}; known: {', '.join(METRICS)}")
    return Gate(metric, op, float(number) * _UNITS[unit], text.strip())


def parse_gates(texts: list[str] | tuple[str, ...] | None, defaults: bool = True) -> list[Gate]:
    """The gates of ``texts`` (each may hold several, comma-separated) on top of :data:`DEFAULT_GATES`: a metric
    given replaces its default. ``defaults=False``: only the ones given."""
    given = [parse_gate(part) for text in texts or () for part in str(text).split(",") if part.strip()]
    if not defaults:
        return given
    named = {g.metric for g in given}
    return [parse_gate(t) for t in DEFAULT_GATES if parse_gate(t).metric not in named] + given


# -- the numbers ------------------------------------------------------------------------------------


def _num(v: Any) -> float | None:
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None


def _guardrail_values(payload: dict[str, Any]) -> float:
    """Violations in one message: the ``values`` counts of each guardrail tensor (the window's, per message)."""
    g = payload.get("guardrails") if isinstance(payload, dict) else None
    if not isinstance(g, dict) or not g.get("enabled"):
        return 0.0
    total = 0.0
    for side in ("inputs", "outputs"):
        for counts in (g.get(side) or {}).values():
            v = _num(counts.get("values")) if isinstance(counts, dict) else None
            total += v or 0.0
    return total


def _restarts(rows: list[dict[str, Any]]) -> float:
    vals = [sum(v for v in (_dig(r["payload"], "health", "thread_restarts") or {}).values()
                if isinstance(v, (int, float))) for r in rows]
    return float(max(vals) - min(vals)) if vals else 0.0


def measure(new: dict[str, list[dict[str, Any]]], base: dict[str, list[dict[str, Any]]], *, offline: int,
            flash_failed: float | None, accuracy: dict[str, Any] | None = None) -> dict[str, float | None]:
    """Every metric from telemetry rows (the store's rows, ``payload`` decoded): ``new`` per updated device
    (since its commit, new version), ``base`` per baseline device (same window, old version)."""
    new_rows = [r for rows in new.values() for r in rows]
    base_rows = [r for rows in base.values() for r in rows]

    def p95(rows: list[dict[str, Any]]) -> float | None:
        vals = [v for r in rows if (v := _num(r.get("p95_ms"))) is not None and (r.get("count") or 0) > 0]
        return statistics.median(vals) if vals else None

    def err(rows: list[dict[str, Any]]) -> float | None:
        n = sum(r.get("count") or 0 for r in rows)
        return None if n == 0 else sum(r.get("errors") or 0 for r in rows) / n

    def top(rows: list[dict[str, Any]], get: Any) -> float | None:
        vals = [v for r in rows if (v := get(r)) is not None]
        return max(vals) if vals else None

    def guard(rows: list[dict[str, Any]]) -> float | None:
        n = sum(r.get("count") or 0 for r in rows)
        return None if n == 0 else sum(_guardrail_values(r["payload"]) for r in rows) / n

    g_new, g_base = guard(new_rows), guard(base_rows)
    p_new, p_base = p95(new_rows), p95(base_rows)
    e_new, e_base = err(new_rows), err(base_rows)
    # the shadow block is per telemetry window (``count`` samples, their ``agreement``): add up each device's soak
    shadow_n: dict[str, float] = {}
    shadow_agree: dict[str, float] = {}
    for device, rows in new.items():
        for r in rows:
            block = r["payload"].get("shadow") if isinstance(r.get("payload"), dict) else None
            n = _num(block.get("count")) if isinstance(block, dict) else None
            a = _num(block.get("agreement")) if isinstance(block, dict) else None
            if n is not None:
                shadow_n[device] = shadow_n.get(device, 0.0) + n
                if a is not None and n > 0:
                    shadow_agree[device] = shadow_agree.get(device, 0.0) + a * n
    out: dict[str, float | None] = {
        "p95_ratio": None if p_new is None or not p_base else round(p_new / p_base, 4),
        "error_rate": e_new,
        "error_rate_delta": None if e_new is None or e_base is None else e_new - e_base,
        "guardrail_violations": sum(_guardrail_values(r["payload"]) for r in new_rows) if new_rows else None,
        "guardrail_rate_delta": None if g_new is None or g_base is None else g_new - g_base,
        "psi_in": top(new_rows, lambda r: _num(r.get("max_psi"))),
        "psi_out": top(new_rows, lambda r: _num(_dig(r["payload"], "output_drift", "max_psi"))),
        "temperature_c": top(new_rows, lambda r: _num(r.get("temperature_c"))),
        "cpu_percent": top(new_rows, lambda r: _num(r.get("cpu_percent"))),
        "restarts": sum(_restarts(rows) for rows in new.values()) if new_rows else None,
        "offline": float(offline),
        "flash_failed": flash_failed,
        "shadow_agreement": min((shadow_agree.get(d, 0.0) / n for d, n in shadow_n.items() if n > 0), default=None),
        "shadow_samples": min(shadow_n.values(), default=None),
        "accuracy_drop_ci_upper": None,
        "accuracy_drop_ci_lower": None,
    }
    if accuracy:
        out["accuracy_drop_ci_upper"] = _num(accuracy.get("drop_ci_upper"))
        out["accuracy_drop_ci_lower"] = _num(accuracy.get("drop_ci_lower"))
    return out


DECIDING = ("accuracy_drop_ci_upper", "shadow_samples")


def check(gates: list[Gate], values: dict[str, float | None], deciding: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    """One row per gate: ``metric, op, threshold, text, value, ok`` (``ok`` None: no data yet, or not decided).

    A metric in ``deciding`` (of :data:`DECIDING`) is a sequential decision that holds its stage (``decides``)
    until it is made, instead of failing while the evidence is thin:

    * ``accuracy_drop_ci_upper``: passes once the interval's upper bound meets the threshold (the drop is
      shown small enough); fails only once its *lower* bound misses it too (the drop is shown too large);
      in between, more labels are needed (``ok`` None);
    * ``shadow_samples``: too few samples is a wait, not a failure, and ``shadow_agreement`` is judged only
      once there are enough."""
    rows = [{**g.to_dict(), "value": values.get(g.metric), "ok": g.passes(values.get(g.metric))} for g in gates]
    for row, g in zip(rows, gates):
        if g.metric not in deciding:
            continue
        row["decides"] = True
        if g.metric == "accuracy_drop_ci_upper" and row["ok"] is False:
            row["ok"] = False if g.passes(values.get("accuracy_drop_ci_lower")) is False else None
        elif g.metric == "shadow_samples" and row["ok"] is False:
            row["ok"] = None
    if any(r["metric"] == "shadow_samples" and r.get("decides") and r["ok"] is not True for r in rows):
        for row in rows:
            if row["metric"] == "shadow_agreement":
                row["ok"] = None
    return rows
