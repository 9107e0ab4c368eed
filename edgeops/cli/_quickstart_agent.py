"""Quickstart steps 8 and 9: the device agent with the example model, telemetry watched arriving over
MQTT; then the model bundled, signed and flashed over the air to that agent, the version changing.

Uses the broker given with ``--broker`` (or ``$EDGEOPS_BROKER``); otherwise starts a local mosquitto
when one is installed; otherwise says plainly that the step was skipped and how to get a broker.
"""

from __future__ import annotations

import json
import os
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any


def agent_step(ex: Path, err: Any, broker_url: str | None, seconds: float = 3.0,
               on_telemetry: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
    """Steps 8 and 9; ``on_telemetry`` gets step 8's summary of the telemetry once the agent has run,
    before step 9 starts, so it can be printed under its own heading. The returned summary covers the
    whole run (step 9's messages too)."""
    try:
        import paho.mqtt  # noqa: F401

        from ..agent import Agent
        from ..agent.transport import MqttTransport
    except ImportError as exc:
        return {"skipped": f"the agent extra is not installed ({exc}): pip install 'edgeops[agent]'"}
    url, local = tour_broker(broker_url)
    if url is None:
        return {"skipped": "no broker: give --broker mqtt://HOST:PORT (or set EDGEOPS_BROKER), or install "
                           "mosquitto (apt-get install mosquitto) and quickstart starts one"}
    err.print(f"[bold]8. agent[/bold] edgeops.Agent with digits_mlp.onnx for {seconds:g} s, telemetry every 1 s to "
              f"{url}{' (a local mosquitto started for this)' if local else ''}; the held-out digits replayed at 50 Hz")
    received: list[dict[str, Any]] = []
    watcher = MqttTransport(url, client_id=f"edgeops-quickstart-{os.getpid()}",
                            on_message=lambda t, p: received.append(json.loads(p)))
    watcher.subscribe("edgeops/quickstart/+/telemetry")
    try:
        watcher.start()
        if not watcher.wait_connected(5):
            return {"skipped": f"cannot connect to the broker at {url} ({watcher.last_error})"}
        so_far = (lambda: on_telemetry(_summary(list(received), url, local is not None))) if on_telemetry else None
        with tempfile.TemporaryDirectory(prefix="edgeops-quickstart-agent-") as store:
            ota = _run_agent(Agent, ex, url, store, seconds, err, so_far)
    finally:
        watcher.stop()
        if local is not None:
            local.close()
    return {**_summary(received, url, local is not None), "ota": ota}


def _summary(received: list[dict[str, Any]], url: str, local: bool) -> dict[str, Any]:
    """What the watcher saw: how many telemetry messages, their seqs, the last one from a busy agent."""
    telemetry = [m for m in received if "seq" in m and "inference" in m]
    unique = {m["id"]: m for m in telemetry}
    busy = [m for m in unique.values() if m["inference"].get("count")]  # the final one comes after the replay
    last = max(busy or list(unique.values()), key=lambda m: m["seq"]) if unique else {}
    return {"broker": url, "local_broker": local, "messages": len(unique),
            "seqs": sorted(m["seq"] for m in unique.values()), "last": last}


def _run_agent(agent_cls: Any, ex: Path, url: str, store: str, seconds: float, err: Any,
               so_far: Callable[[], None] | None) -> dict[str, Any]:
    from ..agent.config import OtaConfig
    from ..agent.workload import replay
    from ..loading import load

    model = load(ex / "digits_mlp.onnx", threads=1)
    stop = threading.Event()
    keys = os.path.join(store, "keys")
    os.makedirs(keys)
    try:
        import cryptography  # noqa: F401

        from ..bundle import keygen

        _, pub = keygen(os.path.join(keys, "fleet"))
        ota = OtaConfig(trusted_keys=[pub], health_window_s=0.5)
    except ImportError:  # no cryptography: the agent step runs, the update step is skipped
        ota, pub = None, None
    agent = agent_cls(model, broker=url, fleet="quickstart", device="demo-01", store_dir=store, interval_s=1.0,
                      model_version="1.0", ota=ota)
    with agent:
        worker = threading.Thread(target=replay, args=(model, str(ex / "digits_mlp_test.npz"), 50.0, stop,
                                                       lambda: agent.model), daemon=True)
        worker.start()
        time.sleep(seconds)
        if so_far:
            so_far()
        result = _flash(ex, url, keys, err) if ota is not None else {"skipped": "cryptography is not installed "
                                                                                "(pip install 'edgeops[sign]')"}
        if "outcome" in result:
            result["telemetry_version"] = agent.telemetry_now()["model"]["version"]
        stop.set()
        worker.join(2)
        agent.telemetry_now()
        agent.wait_drained(5)
        time.sleep(0.3)  # the watcher's copy of the last message
    return result


def _flash(ex: Path, url: str, keys: str, err: Any) -> dict[str, Any]:
    """Step 9: bundle the MLP as version 2.0, signed, and flash it over MQTT to the running agent."""
    from ..bundle import create
    from ..deploy.mqtt import flash_mqtt

    bundle = os.path.join(keys, "digits_mlp-2.0.eob")
    create(ex / "digits_mlp.onnx", bundle, name="digits_mlp", version="2.0", key=os.path.join(keys, "fleet.key"),
           sample=str(ex / "digits_mlp_test.npz"))
    err.print("[bold]9. ship[/bold] digits_mlp bundled as version 2.0 (signed), flashed over MQTT to the agent: "
              "chunks, signature check on the device, install into the other slot, health check, commit")
    result = flash_mqtt(bundle, url, "quickstart", "demo-01", timeout=60, chunk_size=16 * 1024,
                        progress=False).to_dict()
    result["bundle_bytes"] = os.path.getsize(bundle)
    return result


def tour_broker(broker_url: str | None) -> tuple[str | None, Any]:
    """The tours' broker: ``--broker``, else ``$EDGEOPS_BROKER``, else a local mosquitto started here
    (returned second, for the caller to close); ``(None, None)`` when there is none of these."""
    from ..agent.localbroker import LocalBroker

    url = broker_url or os.environ.get("EDGEOPS_BROKER")
    if url:
        return url, None
    if not LocalBroker.available():
        return None, None
    local = LocalBroker().start()
    return local.url, local
