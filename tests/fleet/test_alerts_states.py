"""The per-(rule, device) state table of the alert engine: ``for``, the clear threshold and ``clear_for``,
as chains of readings and the transitions they give."""

from __future__ import annotations

import pytest

from edgeops.fleet.alert_rules import parse_rules
from edgeops.fleet.alerts import Reading, step


def rule(**table):
    return parse_rules({"rules": {"r": {"kind": "p95", **table}}})[0]


def run(r, values, every_ms=10_000):
    """Feed ``values`` (None = unknown) every ``every_ms``; the (time, transition) pairs and the last track."""
    track, out = None, []
    for i, v in enumerate(values):
        track, emits = step(r, track, Reading.of(r, v), i * every_ms)
        if emits:
            out.append((i * every_ms, emits))
    return out, track


@pytest.mark.parametrize("table, values, expected", [
    pytest.param({"above": 10}, [5, 11, 12, 9], [(10_000, "firing"), (30_000, "resolved")], id="for-0-fires-at-once"),
    pytest.param({"above": 10, "for": "30s"}, [11, 11, 11, 11, 11], [(30_000, "firing")], id="fires-after-for"),
    pytest.param({"above": 10, "for": "30s"}, [11, 11, 9, 11, 11, 11], [], id="a-dip-restarts-for"),
    pytest.param({"above": 10, "for": "30s"}, [11, 11, None, 11, 11], [], id="unknown-restarts-for"),
    pytest.param({"above": 10, "clear": 8}, [11, 9.5, 10.5, 9, 10.2, 7.9],
                 [(0, "firing"), (50_000, "resolved")], id="clear-threshold-no-flapping"),
    pytest.param({"above": 10}, [11, 10.0], [(0, "firing"), (10_000, "resolved")], id="at-the-threshold-is-clear"),
    pytest.param({"above": 10, "clear_for": "20s"}, [11, 9, 9, 11, 9, 9, 9],
                 [(0, "firing"), (60_000, "resolved")], id="clear-for-restarts-when-back-above"),
    pytest.param({"above": 10}, [11, None, None, 11], [(0, "firing")], id="unknown-keeps-firing"),
    pytest.param({"above": 10, "clear_for": "20s"}, [11, 9, None, 9, 9],
                 [(0, "firing"), (30_000, "resolved")], id="unknown-while-clearing-waits"),
])
def test_state_table(table, values, expected):
    assert run(rule(**table), values)[0] == expected


def test_a_value_oscillating_around_the_threshold_does_not_flap():
    r = rule(above=10, clear=8, **{"for": "20s"})
    values = [9.5, 10.5, 9.8, 10.4, 10.6, 10.3, 9.9, 10.1, 9.7] * 6  # around 10, never at or below 8
    out, track = run(r, values)
    assert out == [(50_000, "firing")]  # 10.5 .. 10.3 held for 20 s once, then it stays firing
    assert track is not None and track.state == "firing"
    out, _ = run(rule(above=10), values)  # without hysteresis the same series flaps
    assert len(out) > 10


def test_forced_true_holds_without_a_value():
    r = parse_rules({"rules": {"off": {"kind": "offline", "after": "1m"}}})[0]
    track, emits = step(r, None, Reading.of(r, None, forced=True), 0)
    assert emits == "firing"
    track, emits = step(r, track, Reading.of(r, 5.0, forced=True), 10_000)  # status still says offline
    assert emits is None and track.state == "firing"
    track, emits = step(r, track, Reading.of(r, 5.0), 20_000)  # online again, telemetry 5 s old
    assert emits == "resolved" and track is None
