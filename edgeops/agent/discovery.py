"""Home Assistant MQTT discovery: one retained message that makes a device and its sensors appear.

This is device-based discovery (Home Assistant's newer schema, late 2024 on): one config message
per device on ``<prefix>/device/<device id>/config`` with the device (``dev``), the origin
(``o``), the options every sensor shares (state topic, availability, QoS) and the sensors
themselves under ``cmps``. Keys use Home Assistant's documented abbreviations (``stat_t`` for
state_topic, ``val_tpl`` for value_template, ...). The sensors read the agent's telemetry JSON
(``edgeops/<fleet>/<device>/telemetry``) with templates, and the device is available while its
retained status (``edgeops/<fleet>/<device>/status``, also the last will) says ``online``.

Publish the payload retained, QoS 1, on each connect; an empty retained payload on the same
topic removes the device from Home Assistant. Templates of values a board or a model may not
report (temperature, drift) end in ``default(none)``: Home Assistant shows them as unknown.
"""

from __future__ import annotations

import re
from typing import Any

from ..errors import UsageError

# (component id, name, value template, extra sensor options)
SENSORS: list[tuple[str, str, str, dict[str, Any]]] = [
    ("latency_p95", "Latency p95", "{{ value_json.inference.latency_ms.p95 }}",
     {"unit_of_meas": "ms", "stat_cla": "measurement", "sug_dsp_prc": 2, "ic": "mdi:timer-outline"}),
    ("inference_rate", "Inference rate", "{{ value_json.inference.rate_per_s }}",
     {"unit_of_meas": "/s", "stat_cla": "measurement", "sug_dsp_prc": 1, "ic": "mdi:speedometer"}),
    ("errors", "Inference errors", "{{ value_json.inference.errors }}",
     {"stat_cla": "measurement", "ic": "mdi:alert-circle-outline"}),
    ("temperature", "CPU temperature", "{{ value_json.health.temperature_c | default(none) }}",
     {"dev_cla": "temperature", "unit_of_meas": "°C", "stat_cla": "measurement", "ent_cat": "diagnostic"}),
    ("drift_psi", "Drift max PSI", "{{ value_json.drift.max_psi | default(none) }}",
     {"stat_cla": "measurement", "sug_dsp_prc": 3, "ic": "mdi:chart-bell-curve"}),
    ("model_version", "Model version", "{{ value_json.model.version }}",
     {"ent_cat": "diagnostic", "ic": "mdi:tag-outline"}),
]


def sanitize_id(text: str) -> str:
    """``text`` with every character outside ``[a-zA-Z0-9_-]`` replaced by ``_`` (Home Assistant's id rule)."""
    clean = re.sub(r"[^a-zA-Z0-9_-]", "_", text)
    if not clean.strip("_"):
        raise UsageError(f"{text!r} leaves no letters or digits for a Home Assistant id")
    return clean


def home_assistant(fleet: str, device: str, *, model_name: str, model_version: str, sw_version: str,
                   prefix: str = "homeassistant", base: str = "edgeops") -> tuple[str, dict[str, Any]]:
    """The discovery ``(topic, payload)`` of one device; see the module docstring."""
    for what, value in (("fleet", fleet), ("device", device)):
        if not value or any(c in value for c in "/+#"):
            raise UsageError(f"{what} {value!r} must be a non-empty MQTT topic level (no '/', '+' or '#')")
    uid = sanitize_id(f"{base}_{fleet}_{device}")
    root = f"{base}/{fleet}/{device}"
    components = {
        key: {"p": "sensor", "name": name, "uniq_id": f"{uid}_{key}", "val_tpl": template, **options}
        for key, name, template, options in SENSORS
    }
    payload = {
        "dev": {"ids": [uid], "name": device, "mf": "edgeops", "mdl": model_name, "mdl_id": model_version,
                "sw": sw_version},
        "o": {"name": "edgeops", "sw": sw_version},
        "cmps": components,
        "stat_t": f"{root}/telemetry",
        "avty_t": f"{root}/status",
        "avty_tpl": "{{ value_json.state }}",
        "pl_avail": "online",
        "pl_not_avail": "offline",
        "qos": 1,
    }
    return f"{prefix}/device/{sanitize_id(device)}/config", payload
