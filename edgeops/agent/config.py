"""The agent's TOML configuration (``edgeops agent run --config agent.toml``).

```toml
[broker]
url = "mqtt://127.0.0.1:1883"     # mqtts:// for TLS; username, password, ca, cert, key, keepalive
password_file = "mqtt.pass"       # or the password from this file (one line), not in the config
[device]
fleet = "demo"
id = "pi-01"                      # default: the hostname
labels = {ring = "canary", site = "berlin"}   # optional: reported in every telemetry and status message
[telemetry]
interval_s = 10
home_assistant = false            # Home Assistant MQTT discovery
[store]
dir = "/var/lib/edgeops"          # outbox, seq counters
max_mb = 32                       # outbox bound; the oldest messages go first, counted
max_age_days = 7
[model]
path = "model.onnx"               # a model file; its NAME.profile.json next to it enables drift and guardrails
name = "digits"                   # default: the file's stem
version = "1.0"                   # default: the first 12 hex digits of its sha256
shadow = "candidate.eob"          # optional: a candidate run next to the model on a sample of inputs (shadow mode)
shadow_rate = 0.1                 # the share of inputs the candidate sees (default 0.1)
[workload]                        # optional: replay a data file through the model
data = "samples.npz"
rate_hz = 20
labels = "labels.npy"             # optional: each sample's true label, fed back to the model (online accuracy)
[ota]                             # optional: accept model updates over MQTT (edgeops.agent.ota)
trusted_keys = ["fleet.pub"]      # a bundle must be signed by one of these keys
health_window_s = 10              # how long the new model must stay healthy before it is committed
max_p95_ms = 50                   # optional: the new model's p95 latency limit in the health check
timeout_s = 600                   # a transfer with no progress for this long fails
chunk_size = 262144               # the largest transfer chunk accepted, bytes
```

Without ``[model] path`` the model comes from the store (``[store] dir``/models), and after an
update committed over the air it always does.

Relative paths are relative to the config file. Unknown sections or keys are an error (a typo
should not silently fall back to a default).

The broker password comes from ``password``, else ``password_file`` (its first line), else the
environment variable ``EDGEOPS_MQTT_PASSWORD`` (e.g. a systemd ``EnvironmentFile``); giving both
``password`` and ``password_file`` is an error. The CLI commands that take a broker read it the
same way (:func:`broker_password`): ``--password``, ``--password-file`` or the variable.
"""

from __future__ import annotations

import os
import re
import socket
import sys
from dataclasses import dataclass, field
from typing import Any

from ..errors import UsageError

_KEYS = {
    "broker": {"url", "username", "password", "password_file", "ca", "cert", "key", "keepalive"},
    "device": {"fleet", "id", "labels"},
    "telemetry": {"interval_s", "home_assistant"},
    "store": {"dir", "max_mb", "max_age_days"},
    "model": {"path", "name", "version", "shadow", "shadow_rate"},
    "workload": {"data", "rate_hz", "labels"},
    "ota": {"trusted_keys", "health_window_s", "max_p95_ms", "timeout_s", "chunk_size"},
}
_ID = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
PASSWORD_ENV = "EDGEOPS_MQTT_PASSWORD"


@dataclass
class OtaConfig:
    """``[ota]``: model updates over MQTT (see :mod:`edgeops.agent.ota`)."""

    trusted_keys: list[str] = field(default_factory=list)
    health_window_s: float = 10.0
    max_p95_ms: float | None = None
    timeout_s: float = 600.0
    chunk_size: int = 256 * 1024


@dataclass
class AgentConfig:
    broker_url: str
    fleet: str
    device: str
    store_dir: str
    model_path: str | None = None
    model_name: str | None = None
    model_version: str | None = None
    interval_s: float = 10.0
    home_assistant: bool = False
    username: str | None = None
    password: str | None = None
    ca: str | None = None
    cert: str | None = None
    key: str | None = None
    keepalive: int = 30
    max_bytes: int = 32 * 1024 * 1024
    max_age_s: float = 7 * 86400
    workload_data: str | None = None
    workload_rate_hz: float = 10.0
    workload_labels: str | None = None
    source: str | None = None
    ota: OtaConfig | None = None
    shadow: str | None = None
    shadow_rate: float = 0.1
    labels: dict[str, str] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)


def check_id(kind: str, value: Any) -> str:
    """Fleet and device ids become MQTT topic levels: no '/', '+', '#' or spaces."""
    if not isinstance(value, str) or not _ID.match(value):
        raise UsageError(f"{kind} id {value!r} must be 1-64 characters of letters, digits, '_', '-' or '.'")
    return value


def check_labels(value: Any, where: str = "labels") -> dict[str, str]:
    """Device labels (``{ring = "canary", site = "berlin"}``): at most 32, names like ids, values strings
    (numbers and booleans are written as strings) of at most 128 characters."""
    if value is None:
        return {}
    if not isinstance(value, dict) or len(value) > 32:
        raise UsageError(f"{where} must be a table of at most 32 name = \"value\" pairs, "
                         f"e.g. {{ring = \"canary\", site = \"berlin\"}}; got {value!r}")
    labels = {}
    for k, v in value.items():
        if not isinstance(k, str) or not _ID.match(k):
            raise UsageError(f"{where}: label name {k!r} must be 1-64 characters of letters, digits, '_', '-' or '.'")
        if isinstance(v, bool):
            v = "true" if v else "false"
        elif isinstance(v, (int, float)):
            v = str(v)
        if not isinstance(v, str) or len(v) > 128:
            raise UsageError(f"{where}: label {k} must be a string of at most 128 characters, not {v!r}")
        labels[k] = v
    return labels


def broker_password(password: str | None, password_file: str | None, *, given: str = "--password",
                    file_given: str = "--password-file") -> str | None:
    """The MQTT password: ``password``, else the first line of ``password_file``, else ``$EDGEOPS_MQTT_PASSWORD``
    (None when none is set). Both ``password`` and ``password_file`` is a UsageError naming ``given``
    and ``file_given`` (the options or keys the caller calls them)."""
    if password is not None and password_file is not None:
        raise UsageError(f"give the broker password once: {given} or {file_given}, not both")
    if password_file is not None:
        try:
            with open(password_file, encoding="utf-8") as fh:
                text = fh.read()
        except (OSError, UnicodeDecodeError) as exc:
            raise UsageError(f"cannot read the broker password from {password_file}: {exc}") from exc
        password = text.splitlines()[0] if text else ""
        if not password:
            raise UsageError(f"the password file {password_file} is empty; write the password on its first line")
        return password
    return password if password is not None else os.environ.get(PASSWORD_ENV)


def check_interval(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.1 <= value <= 86400:
        raise UsageError(f"telemetry interval_s must be a number of seconds in 0.1..86400, not {value!r}")
    return float(value)


def load_config(path: str | os.PathLike[str]) -> AgentConfig:
    p = os.fspath(path)
    try:
        with open(p, "rb") as f:
            data = _toml().load(f)
    except FileNotFoundError:
        raise UsageError(f"agent config {p} not found") from None
    except ValueError as exc:  # tomllib.TOMLDecodeError is a ValueError
        raise UsageError(f"agent config {p} is not valid TOML: {exc}") from exc
    return from_dict(data, base=os.path.dirname(os.path.abspath(p)), source=p)


def from_dict(data: dict[str, Any], *, base: str = ".", source: str | None = None) -> AgentConfig:
    where = source or "agent config"
    for section, values in data.items():
        if section not in _KEYS or not isinstance(values, dict):
            raise UsageError(f"{where}: unknown section [{section}] (known: {', '.join(sorted(_KEYS))})")
        unknown = set(values) - _KEYS[section]
        if unknown:
            raise UsageError(f"{where}: unknown key(s) {', '.join(sorted(unknown))} in [{section}]")
    broker, device = data.get("broker", {}), data.get("device", {})
    tele, store = data.get("telemetry", {}), data.get("store", {})
    model, work = data.get("model", {}), data.get("workload", {})
    if "url" not in broker:
        raise UsageError(f"{where}: [broker] url is required, e.g. url = \"mqtt://127.0.0.1:1883\"")
    if "fleet" not in device:
        raise UsageError(f"{where}: [device] fleet is required")

    def path(value: Any) -> str | None:
        return None if value is None else os.path.normpath(os.path.join(base, os.path.expanduser(str(value))))

    cfg = AgentConfig(
        broker_url=str(broker["url"]), fleet=check_id("fleet", device["fleet"]),
        device=check_id("device", device.get("id") or socket.gethostname().split(".")[0]),
        store_dir=path(store.get("dir", "/var/lib/edgeops")) or "",
        model_path=path(model.get("path")), model_name=model.get("name"), model_version=model.get("version"),
        interval_s=check_interval(tele.get("interval_s", 10)), home_assistant=bool(tele.get("home_assistant", False)),
        username=broker.get("username"),
        password=broker_password(broker.get("password"), path(broker.get("password_file")),
                                 given=f"{where}: [broker] password", file_given="password_file"),
        ca=path(broker.get("ca")),
        cert=path(broker.get("cert")), key=path(broker.get("key")), keepalive=int(broker.get("keepalive", 30)),
        max_bytes=int(float(store.get("max_mb", 32)) * 1024 * 1024),
        max_age_s=float(store.get("max_age_days", 7)) * 86400,
        workload_data=path(work.get("data")), workload_rate_hz=float(work.get("rate_hz", 10)), source=source,
        workload_labels=path(work.get("labels")),
        labels=check_labels(device.get("labels"), f"{where}: [device] labels"))
    if "ota" in data:  # before the [workload] check, which accepts an [ota] store as the model's source
        cfg.ota = _ota(data["ota"], path, where)
    if cfg.workload_data and not cfg.model_path and cfg.ota is None:
        raise UsageError(f"{where}: [workload] replays data through the model: give [model] path "
                         "(or an [ota] section, whose store provides the model)")
    if not 0 < cfg.workload_rate_hz <= 10000:
        raise UsageError(f"{where}: [workload] rate_hz must be in (0, 10000]")
    if "shadow" in model or "shadow_rate" in model:
        from .shadow import check_rate

        if not isinstance(model.get("shadow"), str):
            raise UsageError(f"{where}: [model] shadow must be the candidate's model file or bundle, "
                             "e.g. shadow = \"candidate.eob\" (shadow_rate needs it)")
        cfg.shadow = path(model["shadow"])
        cfg.shadow_rate = check_rate(model.get("shadow_rate", 0.1), f"{where}: [model] shadow_rate")
    return cfg


def _ota(ota: dict[str, Any], path: Any, where: str) -> OtaConfig:
    keys = ota.get("trusted_keys", [])
    if isinstance(keys, str) or not isinstance(keys, list) or not all(isinstance(k, str) for k in keys):
        raise UsageError(f"{where}: [ota] trusted_keys must be a list of public key files, e.g. [\"fleet.pub\"]")
    numbers = {k: ota[k] for k in ("health_window_s", "max_p95_ms", "timeout_s", "chunk_size") if k in ota}
    for key, value in numbers.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
            raise UsageError(f"{where}: [ota] {key} must be a number >= 0, not {value!r}")
    cfg = OtaConfig(trusted_keys=[path(k) for k in keys], **{k: v for k, v in numbers.items() if k != "chunk_size"})
    cfg.chunk_size = int(numbers.get("chunk_size", cfg.chunk_size))
    if cfg.timeout_s <= 0 or cfg.chunk_size < 1:
        raise UsageError(f"{where}: [ota] timeout_s and chunk_size must be > 0")
    return cfg


def _toml() -> Any:
    if sys.version_info >= (3, 11):
        import tomllib

        return tomllib
    try:
        import tomli
    except ImportError as exc:  # Python 3.10 (Jetson images): the agent extra installs tomli
        raise UsageError("reading the agent config on Python 3.10 needs tomli: pip install 'edgeops[agent]'") from exc
    return tomli
