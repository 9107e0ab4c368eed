"""Alert rules in TOML: the defaults that ship, a --rules file that replaces or extends them, and bad rules
as a UsageError that names the rule and the key."""

from __future__ import annotations

import re
import textwrap

import pytest

from edgeops.errors import UsageError
from edgeops.fleet.alert_rules import KINDS, default_rules_path, duration_ms, load_rules, parse_rules


def write(tmp_path, text: str):
    path = tmp_path / "rules.toml"
    path.write_text(textwrap.dedent(text))
    return path


def test_default_rules_ship_with_the_package_and_cover_every_kind():
    rules = load_rules()
    assert default_rules_path().endswith("edgeops/fleet/rules.toml")
    assert {r.kind for r in rules} == set(KINDS)
    by_name = {r.name: r for r in rules}
    assert by_name["offline"].threshold == 120.0 and by_name["offline"].severity == "critical"
    assert by_name["drift"].threshold == 0.2 and by_name["drift"].clear == 0.15
    assert by_name["site_drift"].by == "site"
    assert by_name["p95_regression"].baseline_ms == 86_400_000


def test_the_default_rules_are_package_data():
    import configparser
    from pathlib import Path

    cfg = configparser.ConfigParser()
    cfg.read(Path(__file__).resolve().parents[2] / "setup.cfg")
    assert "fleet/rules.toml" in cfg["options.package_data"]["edgeops"]


def test_a_rules_file_replaces_the_defaults(tmp_path):
    rules = load_rules(write(tmp_path, """
        [rules.slow]
        kind = "p95"
        above = 25
        clear = 20
        for = "90s"
        clear_for = "1m"
        severity = "critical"
        labels = {site = "berlin", ring = ["canary", "beta"]}
    """))
    assert [r.name for r in rules] == ["slow"]
    slow = rules[0]
    assert (slow.threshold, slow.clear, slow.for_ms, slow.clear_for_ms) == (25.0, 20.0, 90_000, 60_000)
    assert slow.labels == {"site": ("berlin",), "ring": ("canary", "beta")}
    assert slow.selects({"site": "berlin", "ring": "beta", "extra": "x"})
    assert not slow.selects({"site": "berlin", "ring": "stable"})
    assert not slow.selects({"ring": "canary"})


def test_include_defaults_extends_them_and_a_same_name_rule_replaces_one(tmp_path):
    rules = load_rules(write(tmp_path, """
        include_defaults = true
        [rules.offline]
        kind = "offline"
        after = "30s"
        [rules.hot_berlin]
        kind = "temperature"
        above = 70
        labels = {site = "berlin"}
    """))
    names = [r.name for r in rules]
    assert len(names) == len(load_rules()) + 1 and names.count("offline") == 1
    assert {r.name: r for r in rules}["offline"].threshold == 30.0


@pytest.mark.parametrize("value, ms", [(30, 30_000), (1.5, 1500), ("500ms", 500), ("90s", 90_000), ("5m", 300_000),
                                       ("24h", 86_400_000), ("7d", 604_800_000), (" 2 m ", 120_000)])
def test_durations(value, ms):
    assert duration_ms(value, "for") == ms


@pytest.mark.parametrize("table, message", [
    pytest.param({"kind": "p95_hi", "above": 1}, "rule 'r': kind must be one of offline, ", id="unknown-kind"),
    pytest.param({"above": 1}, "rule 'r': kind must be one of", id="no-kind"),
    pytest.param({"kind": "p95"}, "rule 'r': kind 'p95' needs above", id="no-threshold"),
    pytest.param({"kind": "p95", "above": "fast"}, "rule 'r': above must be a number, not 'fast'", id="text-threshold"),
    pytest.param({"kind": "p95", "above": True}, "rule 'r': above must be a number", id="bool-threshold"),
    pytest.param({"kind": "p95", "above": -1}, "rule 'r': above must be >= 0", id="negative"),
    pytest.param({"kind": "error_rate", "above": 5}, "rule 'r': above must be in 0..1, not 5", id="rate-over-1"),
    pytest.param({"kind": "p95", "above": 10, "clear": 12}, "rule 'r': clear (12) must be at or below the threshold",
                 id="clear-above-threshold"),
    pytest.param({"kind": "p95", "above": 10, "for": "soon"}, "rule 'r': for must be a duration", id="bad-for"),
    pytest.param({"kind": "p95", "above": 10, "for": -5}, "rule 'r': for must be a duration >= 0", id="negative-for"),
    pytest.param({"kind": "p95", "above": 10, "clear_for": "3 weeks"}, "rule 'r': clear_for must be a duration",
                 id="bad-clear-for"),
    pytest.param({"kind": "p95", "above": 10, "threshold": 3}, "rule 'r': unknown key(s) threshold for kind 'p95'",
                 id="unknown-key"),
    pytest.param({"kind": "offline", "after": "1m", "clear": 3}, "rule 'r': unknown key(s) clear", id="offline-clear"),
    pytest.param({"kind": "p95", "above": 10, "severity": "page"}, "rule 'r': severity must be one of", id="severity"),
    pytest.param({"kind": "p95", "above": 10, "labels": "site=berlin"}, "rule 'r': labels must be a table",
                 id="labels-string"),
    pytest.param({"kind": "p95", "above": 10, "labels": {"site": [1.5]}}, "rule 'r': labels.site must be a string",
                 id="labels-float"),
    pytest.param({"kind": "no_telemetry", "intervals": 0}, "rule 'r': intervals must be greater than 0",
                 id="zero-intervals"),
    pytest.param({"kind": "throttled", "flags": ["hot"]}, "rule 'r': flags must be a non-empty list of under_voltage",
                 id="bad-flag"),
    pytest.param({"kind": "p95_baseline", "factor": 2, "baseline": "10m"}, "rule 'r': baseline must be at least 1h",
                 id="short-baseline"),
    pytest.param({"kind": "error_rate", "above": 0.1, "min_count": 0}, "rule 'r': min_count must be an integer >= 1",
                 id="min-count"),
    pytest.param({"kind": "fleet_psi", "by": ""}, "rule 'r': by must be a label name", id="empty-by"),
    pytest.param({"kind": "p95", "above": 10, "window": 0}, "rule 'r': window must be longer than 0", id="zero-window"),
])
def test_a_bad_rule_is_a_usage_error_naming_the_rule_and_the_key(table, message):
    with pytest.raises(UsageError, match="^rules.toml: " + re.escape(message)):
        parse_rules({"rules": {"r": table}}, source="rules.toml")


def test_bad_toml_and_bad_names_are_usage_errors(tmp_path):
    with pytest.raises(UsageError, match=r"rules file .*rules.toml is not valid TOML"):
        load_rules(write(tmp_path, "[rules.x\nkind = 1"))
    with pytest.raises(UsageError, match="not found"):
        load_rules(tmp_path / "missing.toml")
    with pytest.raises(UsageError, match="a rule name is an MQTT topic level"):
        parse_rules({"rules": {"a/b": {"kind": "p95", "above": 1}}})
    with pytest.raises(UsageError, match="unknown top-level key"):
        load_rules(write(tmp_path, "[rule.x]\nkind = 'p95'\nabove = 1\n"))
    with pytest.raises(UsageError, match="include_defaults must be true or false"):
        parse_rules({"include_defaults": "yes"})
