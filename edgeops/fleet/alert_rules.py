"""Alert rules: what they say in TOML, the table of kinds, and the checks that make a bad rule a clear error.

A rules file is TOML with one table per rule under ``rules``; the table's key is the rule's name
(it becomes an MQTT topic level: letters, digits, ``_``, ``-``, ``.``)::

    include_defaults = true        # add these rules to the default ones (same name: replaces it);
                                   # without it the file replaces the defaults entirely

    [rules.p95_high]
    kind = "p95"                   # one of KINDS below
    above = 50.0                   # the threshold (its key and unit depend on the kind)
    clear = 40.0                   # hysteresis: firing ends only once the value is at or below this
    for = "2m"                     # the condition must hold this long before the alert fires
    clear_for = "1m"               # ... and the clear condition this long before it resolves
    severity = "critical"          # info | warning | critical
    labels = {site = "berlin", ring = ["canary", "beta"]}   # only devices whose labels match all of these

Durations are a number of seconds or a string with a unit: ``"500ms"``, ``"90s"``, ``"5m"``, ``"24h"``,
``"7d"``. Every rule compares one number with its threshold: it is true above ``threshold`` and
clear at or below ``clear`` (default: the threshold itself). The kinds (``edgeops fleet serve``
reads them from :data:`KINDS`, which is also the reference below)::

    kind            threshold key (default)   the value compared                                   other keys
    offline         after (required)          seconds since the device's last telemetry; the      -
                                              retained status "offline" (last will) counts too
    no_telemetry    intervals (required)      that age in units of the device's own interval_s    -
    p95             above (required)          newest p95 latency, ms                               window
    p95_baseline    factor (required)         newest p95 / median p95 of the previous `baseline`   window, baseline,
                                              (default 24h) before the current window             min_ms, min_baseline
    error_rate      above (required)          errors / count summed over the window (0..1)         window, min_count
    max_psi         above (0.2)               newest drift.max_psi                                 window
    temperature     above (required)          newest health.temperature_c, °C                      window
    throttled       - (0)                     how many throttling flags are set now                window, flags
    outbox_dropped  above (0)                 messages the outbox dropped within the window        window
    fleet_psi       above (0.2)               max PSI of the merged histograms of the fleet, or    window, by
                                              of each value of label `by` (e.g. by = "site")

``window`` is how far back a rule looks (default 10 minutes, 15 for ``fleet_psi``; a device whose
newest telemetry is older has no value, so the rule neither fires nor resolves it: the offline rules
cover silence). ``fleet_psi`` merges the histograms again every 30 s, so its ``for`` counts in those steps.
Anything else (an unknown key or kind, a threshold of the wrong type, clear above the threshold)
is a :class:`~edgeops.errors.UsageError` naming the file, the rule and the key.
"""

from __future__ import annotations

import math
import os
import re
import sys
from dataclasses import dataclass, field
from typing import Any

from ..errors import UsageError

__all__ = ["Rule", "Kind", "KINDS", "SEVERITIES", "load_rules", "parse_rules", "default_rules_path", "duration_ms"]

SEVERITIES = ("info", "warning", "critical")
_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)\s*$")
_UNITS_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}
_COMMON = {"kind", "for", "clear_for", "severity", "labels", "description"}
THROTTLE_FLAGS = ("under_voltage", "freq_capped", "throttled", "soft_temp_limit")


@dataclass(frozen=True)
class Kind:
    """One kind of rule: its threshold key and default, the unit of its value, the keys it takes."""

    name: str
    threshold: str | None  # the TOML key of the threshold; None: fixed at ``default``
    default: float | None  # None: the threshold is required
    unit: str
    scope: str = "device"  # "device": one alert per device; "fleet": per fleet or label value
    keys: tuple[str, ...] = ()  # the kind's other keys
    clear: bool = True  # takes a ``clear`` threshold
    doc: str = ""


KINDS: dict[str, Kind] = {k.name: k for k in (
    Kind("offline", "after", None, "s", clear=False, doc="seconds since the last telemetry, or status offline"),
    Kind("no_telemetry", "intervals", None, "intervals", clear=False,
         doc="seconds since the last telemetry / the device's interval_s"),
    Kind("p95", "above", None, "ms", keys=("window",), doc="newest p95 latency"),
    Kind("p95_baseline", "factor", None, "x", keys=("window", "baseline", "min_ms", "min_baseline"),
         doc="newest p95 / median p95 over the baseline period before the window"),
    Kind("error_rate", "above", None, "", keys=("window", "min_count"), doc="errors / count over the window"),
    Kind("max_psi", "above", 0.2, "", keys=("window",), doc="newest drift.max_psi"),
    Kind("temperature", "above", None, "°C", keys=("window",), doc="newest health.temperature_c"),
    Kind("throttled", None, 0.0, "flags", keys=("window", "flags"), clear=False,
         doc="throttling flags set now"),
    Kind("outbox_dropped", "above", 0.0, "messages", keys=("window",), doc="outbox drops within the window"),
    Kind("fleet_psi", "above", 0.2, "", scope="fleet", keys=("window", "by"),
         doc="max PSI of the fleet's merged drift histograms (per value of label `by`)"),
)}


@dataclass(frozen=True)
class Rule:
    """One parsed rule; thresholds are numbers, durations milliseconds."""

    name: str
    kind: str
    threshold: float
    clear: float
    for_ms: int = 0
    clear_for_ms: int = 0
    severity: str = "warning"
    labels: dict[str, tuple[str, ...]] = field(default_factory=dict)
    window_ms: int = 600_000
    baseline_ms: int = 86_400_000
    min_ms: float = 0.0
    min_baseline: int = 10
    min_count: int = 20
    flags: tuple[str, ...] = THROTTLE_FLAGS
    by: str | None = None
    description: str = ""

    @property
    def scope(self) -> str:
        return KINDS[self.kind].scope

    @property
    def unit(self) -> str:
        return KINDS[self.kind].unit

    def selects(self, labels: dict[str, Any] | None) -> bool:
        """Whether a device with these labels is one this rule watches."""
        labels = labels or {}
        return all(k in labels and str(labels[k]) in allowed for k, allowed in self.labels.items())


def default_rules_path() -> str:
    """The rules that ship with edgeops (``edgeops/fleet/rules.toml``)."""
    return os.path.join(os.path.dirname(os.path.abspath(__file__)), "rules.toml")


def load_rules(path: str | os.PathLike[str] | None = None) -> list[Rule]:
    """The default rules (``path`` None), or those of ``path``: replacing the defaults, or added to them
    (a rule of the same name replaces the default one) when the file says ``include_defaults = true``."""
    if path is None:
        return parse_rules(_read(default_rules_path()), source=default_rules_path())
    p = os.fspath(path)
    data = _read(p)
    if data.pop("include_defaults", False) is True:
        rules = {r.name: r for r in parse_rules(_read(default_rules_path()), source=default_rules_path())}
        rules.update((r.name, r) for r in parse_rules(data, source=p))
        return list(rules.values())
    return parse_rules(data, source=p)


def parse_rules(data: dict[str, Any], *, source: str = "rules") -> list[Rule]:
    """Rules from a parsed TOML document (``{"rules": {name: table}}``); see the module docstring."""
    unknown = set(data) - {"rules", "include_defaults"}
    if unknown:
        raise UsageError(f"{source}: unknown top-level key(s) {', '.join(sorted(unknown))}; "
                         "rules go in [rules.<name>] tables")
    if "include_defaults" in data and not isinstance(data["include_defaults"], bool):
        raise UsageError(f"{source}: include_defaults must be true or false")
    tables = data.get("rules", {})
    if not isinstance(tables, dict):
        raise UsageError(f"{source}: 'rules' must be tables, [rules.<name>]")
    return [_rule(name, table, f"{source}: rule {name!r}") for name, table in tables.items()]


def duration_ms(value: Any, what: str) -> int:
    """``90``, ``1.5``, ``"500ms"``, ``"90s"``, ``"5m"``, ``"24h"``, ``"7d"`` -> milliseconds (>= 0)."""
    if isinstance(value, bool):
        raise UsageError(f"{what} must be a duration like 30, \"90s\", \"5m\" or \"24h\", not {value!r}")
    if isinstance(value, (int, float)):
        if not math.isfinite(value) or value < 0:
            raise UsageError(f"{what} must be a duration >= 0, not {value!r}")
        return int(round(value * 1000))
    m = _DURATION.match(value) if isinstance(value, str) else None
    if m is None:
        raise UsageError(f"{what} must be a duration like 30, \"90s\", \"5m\" or \"24h\", not {value!r}")
    return int(round(float(m.group(1)) * _UNITS_MS[m.group(2)]))


def _number(value: Any, what: str, *, low: float | None = None, high: float | None = None) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise UsageError(f"{what} must be a number, not {value!r}")
    if (low is not None and value < low) or (high is not None and value > high):
        span = f"in {low}..{high}" if high is not None else f">= {low}"
        raise UsageError(f"{what} must be {span}, not {value!r}")
    return float(value)


def _rule(name: Any, table: Any, where: str) -> Rule:
    if not isinstance(name, str) or not _NAME.match(name):
        raise UsageError(f"{where}: a rule name is an MQTT topic level of letters, digits, '_', '-', '.'")
    if not isinstance(table, dict):
        raise UsageError(f"{where} must be a table, [rules.{name}]")
    kind_name = table.get("kind")
    if kind_name not in KINDS:
        raise UsageError(f"{where}: kind must be one of {', '.join(KINDS)}, not {kind_name!r}")
    kind = KINDS[kind_name]
    allowed = _COMMON | set(kind.keys) | ({kind.threshold} if kind.threshold else set()) | ({"clear"} if kind.clear else set())
    unknown = set(table) - allowed
    if unknown:
        raise UsageError(f"{where}: unknown key(s) {', '.join(sorted(unknown))} for kind {kind_name!r} "
                         f"(it takes {', '.join(sorted(allowed))})")
    threshold = _threshold(kind, table, where)
    clear = threshold
    if "clear" in table:
        clear = _threshold_value(kind, table["clear"], f"{where}: clear")
        if clear > threshold:
            raise UsageError(f"{where}: clear ({table['clear']}) must be at or below the threshold "
                             f"{kind.threshold} ({threshold:g}): the alert ends once the value falls back to it")
    severity = table.get("severity", "warning")
    if severity not in SEVERITIES:
        raise UsageError(f"{where}: severity must be one of {', '.join(SEVERITIES)}, not {severity!r}")
    description = table.get("description", "")
    if not isinstance(description, str):
        raise UsageError(f"{where}: description must be a string")
    extra: dict[str, Any] = {}
    if "window" in table:
        extra["window_ms"] = duration_ms(table["window"], f"{where}: window")
        if extra["window_ms"] <= 0:
            raise UsageError(f"{where}: window must be longer than 0")
    elif kind.name == "fleet_psi":
        extra["window_ms"] = 900_000
    if "baseline" in table:
        extra["baseline_ms"] = duration_ms(table["baseline"], f"{where}: baseline")
        if extra["baseline_ms"] < 3_600_000:
            raise UsageError(f"{where}: baseline must be at least 1h (it is a median over past telemetry)")
    if "min_ms" in table:
        extra["min_ms"] = _number(table["min_ms"], f"{where}: min_ms", low=0)
    for key in ("min_baseline", "min_count"):
        if key in table:
            if isinstance(table[key], bool) or not isinstance(table[key], int) or table[key] < 1:
                raise UsageError(f"{where}: {key} must be an integer >= 1, not {table[key]!r}")
            extra[key] = table[key]
    if "flags" in table:
        flags = table["flags"]
        if not isinstance(flags, list) or not flags or any(f not in THROTTLE_FLAGS for f in flags):
            raise UsageError(f"{where}: flags must be a non-empty list of {', '.join(THROTTLE_FLAGS)}, not {flags!r}")
        extra["flags"] = tuple(flags)
    if "by" in table:
        if not isinstance(table["by"], str) or not table["by"]:
            raise UsageError(f"{where}: by must be a label name such as \"site\", not {table['by']!r}")
        extra["by"] = table["by"]
    return Rule(name=name, kind=kind.name, threshold=threshold, clear=clear,
                for_ms=duration_ms(table.get("for", 0), f"{where}: for"),
                clear_for_ms=duration_ms(table.get("clear_for", 0), f"{where}: clear_for"),
                severity=severity, labels=_labels(table.get("labels", {}), where), description=description, **extra)


def _threshold(kind: Kind, table: dict[str, Any], where: str) -> float:
    if kind.threshold is None or kind.threshold not in table:
        if kind.default is None:
            raise UsageError(f"{where}: kind {kind.name!r} needs {kind.threshold} (its threshold, {kind.unit or 'a number'})")
        return kind.default
    return _threshold_value(kind, table[kind.threshold], f"{where}: {kind.threshold}")


def _threshold_value(kind: Kind, value: Any, what: str) -> float:
    if kind.name == "offline":
        return duration_ms(value, what) / 1000
    if kind.name == "error_rate":
        return _number(value, what, low=0, high=1)
    if kind.name in ("no_telemetry", "p95_baseline"):
        number = _number(value, what, low=0)
        if number <= 0:
            raise UsageError(f"{what} must be greater than 0, not {value!r}")
        return number
    if kind.name == "temperature":
        return _number(value, what)
    return _number(value, what, low=0)


def _labels(value: Any, where: str) -> dict[str, tuple[str, ...]]:
    if not isinstance(value, dict):
        raise UsageError(f"{where}: labels must be a table such as {{site = \"berlin\"}}, not {value!r}")
    out: dict[str, tuple[str, ...]] = {}
    for key, allowed in value.items():
        items = allowed if isinstance(allowed, list) else [allowed]
        if not items or not all(isinstance(v, (str, int)) and not isinstance(v, bool) for v in items):
            raise UsageError(f"{where}: labels.{key} must be a string or a list of strings, not {allowed!r}")
        out[str(key)] = tuple(str(v) for v in items)
    return out


def _read(path: str) -> dict[str, Any]:
    try:
        with open(path, "rb") as f:
            return _toml().load(f)
    except FileNotFoundError:
        raise UsageError(f"rules file {path} not found") from None
    except IsADirectoryError:
        raise UsageError(f"rules file {path} is a directory") from None
    except ValueError as exc:  # tomllib.TOMLDecodeError is a ValueError
        raise UsageError(f"rules file {path} is not valid TOML: {exc}") from exc


def _toml() -> Any:
    if sys.version_info >= (3, 11):
        import tomllib

        return tomllib
    try:
        import tomli
    except ImportError as exc:
        raise UsageError("reading alert rules on Python 3.10 needs tomli: pip install 'edgeops[fleet]'") from exc
    return tomli
