"""Home Assistant discovery: one valid device config whose sensors read the agent's telemetry."""

from __future__ import annotations

import copy
import json
import re

import pytest

from edgeops.agent.discovery import home_assistant, sanitize_id
from edgeops.errors import UsageError

# The telemetry message as the agent publishes it (edgeops/agent/telemetry.py), after a JSON round trip.
TELEMETRY = {
    "ts": 1767225600000, "seq": 812, "id": "4f1c", "device": "pi-01", "fleet": "kitchen",
    "model": {"name": "digits_mlp", "version": "1.2.0", "sha256": "ab" * 32},
    "inference": {"count": 600, "errors": 2, "rate_per_s": 59.94, "window_s": 10.01, "total": 48000,
                  "total_errors": 7, "latency_ms": {"p50": 0.41, "p95": 0.83, "p99": 1.2, "mean": 0.45, "max": 3.1}},
    "guardrails": {"enabled": False},
    "drift": {"enabled": True, "inputs": {}, "max_psi": 0.031, "window_samples": 600, "skipped": {}},
    "health": {"cpu_percent": 23.5, "mem_percent": 41.0, "rss_mb": 88.2, "disk_free_mb": 10240.0,
               "uptime_s": 3600.0, "temperature_c": 52.1, "thermal": {"cpu-thermal": 52.1}},
    "interval_s": 10,
}
EXPECTED = {
    "latency_p95": "0.83", "inference_rate": "59.94", "errors": "2", "temperature": "52.1",
    "drift_psi": "0.031", "model_version": "1.2.0",
}
ABBREVIATIONS = {"p", "name", "uniq_id", "val_tpl", "unit_of_meas", "dev_cla", "stat_cla", "ent_cat", "sug_dsp_prc",
                 "ic", "stat_t"}


def discovery(fleet="kitchen", device="pi-01", **kwargs):
    return home_assistant(fleet, device, model_name="digits_mlp", model_version="1.2.0", sw_version="0.4.0", **kwargs)


def render(template: str, message: dict) -> str:
    jinja2 = pytest.importorskip("jinja2")
    from jinja2.sandbox import ImmutableSandboxedEnvironment  # what Home Assistant renders templates with

    value_json = json.loads(json.dumps(message))
    return ImmutableSandboxedEnvironment(undefined=jinja2.Undefined).from_string(template).render(value_json=value_json)


def test_one_retained_config_per_device_on_the_device_topic():
    topic, payload = discovery()
    assert topic == "homeassistant/device/pi-01/config"
    assert payload["stat_t"] == "edgeops/kitchen/pi-01/telemetry"
    assert payload["qos"] == 1
    assert json.loads(json.dumps(payload)) == payload


def test_custom_prefix_and_base():
    topic, payload = discovery(prefix="ha", base="acme")
    assert topic == "ha/device/pi-01/config"
    assert payload["stat_t"] == "acme/kitchen/pi-01/telemetry" and payload["avty_t"] == "acme/kitchen/pi-01/status"


def test_device_and_origin():
    _, payload = discovery()
    assert payload["dev"] == {"ids": ["edgeops_kitchen_pi-01"], "name": "pi-01", "mf": "edgeops",
                              "mdl": "digits_mlp", "mdl_id": "1.2.0", "sw": "0.4.0"}
    assert payload["o"] == {"name": "edgeops", "sw": "0.4.0"}


def test_availability_follows_the_status_topic():
    _, payload = discovery()
    assert (payload["avty_t"], payload["pl_avail"], payload["pl_not_avail"]) == (
        "edgeops/kitchen/pi-01/status", "online", "offline")
    for state in ("online", "offline"):
        status = {"state": state, "ts": 1767225600000, "device": "pi-01", "fleet": "kitchen"}
        assert render(payload["avty_tpl"], status) == state


@pytest.mark.parametrize("key", sorted(EXPECTED))
def test_every_component_is_a_complete_sensor(key):
    _, payload = discovery()
    comp = payload["cmps"][key]
    assert comp["p"] == "sensor"
    assert comp["name"] and comp["uniq_id"].endswith(key)
    assert comp.get("stat_t", payload["stat_t"]) == "edgeops/kitchen/pi-01/telemetry"
    assert comp["val_tpl"].startswith("{{ value_json.")
    assert set(comp) <= ABBREVIATIONS, f"unknown keys {set(comp) - ABBREVIATIONS}"


def test_components_are_the_ones_dashboards_need():
    _, payload = discovery()
    assert set(payload["cmps"]) == set(EXPECTED)
    temp = payload["cmps"]["temperature"]
    assert (temp["dev_cla"], temp["unit_of_meas"]) == ("temperature", "°C")
    assert payload["cmps"]["latency_p95"]["unit_of_meas"] == "ms"


def test_unique_ids_are_unique_within_and_across_devices():
    ids = []
    for fleet, device in (("kitchen", "pi-01"), ("kitchen", "pi-02"), ("garage", "pi-01")):
        _, payload = discovery(fleet, device)
        ids += [c["uniq_id"] for c in payload["cmps"].values()]
    assert len(ids) == len(set(ids)) == 3 * len(EXPECTED)
    assert all(re.fullmatch(r"[a-zA-Z0-9_-]+", i) for i in ids)


@pytest.mark.parametrize("key", sorted(EXPECTED))
def test_templates_render_the_telemetry(key):
    _, payload = discovery()
    assert render(payload["cmps"][key]["val_tpl"], TELEMETRY) == EXPECTED[key]


@pytest.mark.parametrize("missing", [
    pytest.param(("health", "temperature_c"), id="board-without-thermal-zones"),
    pytest.param(("drift", "max_psi"), id="drift-off"),
])
def test_values_a_device_may_not_report_render_as_unknown(missing):
    message = copy.deepcopy(TELEMETRY)
    section, field = missing
    del message[section][field]
    key = "temperature" if section == "health" else "drift_psi"
    _, payload = discovery()
    assert render(payload["cmps"][key]["val_tpl"], message) == "None"  # Home Assistant: unknown


def test_no_inference_yet_renders_as_unknown():
    message = copy.deepcopy(TELEMETRY)
    message["inference"]["latency_ms"]["p95"] = None  # NaN before the first inference: null in the JSON
    _, payload = discovery()
    assert render(payload["cmps"]["latency_p95"]["val_tpl"], message) == "None"


@pytest.mark.parametrize("device, object_id", [
    pytest.param("pi-01", "pi-01", id="plain"),
    pytest.param("pi.kitchen", "pi_kitchen", id="dot"),
    pytest.param("cam:front", "cam_front", id="colon"),
    pytest.param("küche_2", "k_che_2", id="non-ascii"),
])
def test_odd_device_ids_are_sanitized_for_home_assistant(device, object_id):
    topic, payload = discovery(device=device)
    assert topic == f"homeassistant/device/{object_id}/config"
    assert payload["stat_t"] == f"edgeops/kitchen/{device}/telemetry"  # the agent's real topic, unchanged
    assert payload["dev"]["name"] == device
    assert all(re.fullmatch(r"[a-zA-Z0-9_-]+", c["uniq_id"]) for c in payload["cmps"].values())


@pytest.mark.parametrize("fleet, device", [
    pytest.param("kitchen", "", id="empty-device"),
    pytest.param("kitchen", "pi/01", id="slash"),
    pytest.param("kitchen", "pi+", id="plus-wildcard"),
    pytest.param("kit#chen", "pi-01", id="hash-in-fleet"),
])
def test_ids_that_are_not_topic_levels_are_refused(fleet, device):
    with pytest.raises(UsageError, match="topic level"):
        discovery(fleet, device)


@pytest.mark.parametrize("text", ["...", "ü"])
def test_sanitize_refuses_ids_with_nothing_left(text):
    with pytest.raises(UsageError, match="no letters or digits"):
        sanitize_id(text)
