"""What listens to devices (``fleet status|watch``, the host side of ``flash --broker``) survives any payload.

Regression: a payload nested 5000 deep raised a raw RecursionError in the listener's callback (only
ValueError was caught), and NaN or repeated keys were taken for JSON.
"""

from __future__ import annotations

import json

import pytest

from edgeops.fleet.status import FleetView

HOSTILE = [
    pytest.param(b"[" * 5000 + b"]" * 5000, id="nested-5000-deep"),
    pytest.param(b'{"seq": NaN, "id": "x"}', id="nan"),
    pytest.param(b'{"seq": 1, "id": "a", "id": "b"}', id="duplicate-key"),
    pytest.param(b"\xff\xfe", id="not-utf8"),
    pytest.param(b"{broken", id="not-json"),
]


@pytest.mark.parametrize("payload", HOSTILE)
def test_the_fleet_view_counts_a_hostile_payload_and_goes_on(payload):
    view = FleetView("demo")
    view.feed("edgeops/demo/d1/telemetry", payload)
    view.feed("edgeops/demo/d1/status", payload)
    view.feed("edgeops/demo/d1/telemetry", json.dumps({"seq": 1, "id": "a"}).encode())
    assert view.malformed == 2
    (row,) = view.snapshot()
    assert row["seq"] == 1 and row["telemetry_count"] == 1


@pytest.mark.parametrize("payload", HOSTILE)
def test_the_flasher_ignores_a_hostile_event(tmp_path, payload):
    pytest.importorskip("paho.mqtt")
    from edgeops.deploy.mqtt import _Flasher, _Source

    bundle = tmp_path / "b.eob"
    bundle.write_bytes(b"x" * 100)
    flasher = _Flasher(_Source(str(bundle), 64), "mqtt://127.0.0.1:1", "edgeops/demo/pi-01", "dep", None, None, {})
    flasher._message("edgeops/demo/pi-01/events", payload)  # the network thread's callback: must not raise
    assert flasher.inbox.empty()
    flasher._message("edgeops/demo/pi-01/events", json.dumps({"deployment": "dep", "kind": "ota.need"}).encode())
    assert flasher.inbox.get_nowait()[0] == "ota.need"
