"""The serial gateway: an MCU in the fleet, recovery, updates through the gateway, validation over serial.

The device here is :class:`edgeops.bridge.simdevice.SimDevice` on a real pty (WIRE.md spoken by
edgeops.bridge.wire), the broker a real mosquitto, the fleet store a real SQLite store fed by the
fleet collector.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from edgeops.agent.localbroker import LocalBroker
from edgeops.bridge import wire
from edgeops.bridge.gateway import Gateway, GatewayOptions
from edgeops.bridge.link import Link, LinkError
from edgeops.bridge.simdevice import SimDevice

ROOT = Path(__file__).resolve().parents[2]
MODELS = ROOT / "examples" / "models"
pytestmark = pytest.mark.skipif(shutil.which("mosquitto") is None and not os.path.exists("/usr/sbin/mosquitto"),
                                reason="mosquitto is not installed")


def wait_until(cond, timeout: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.05)
    return bool(cond())


@pytest.fixture
def broker(tmp_path):
    b = LocalBroker(workdir=str(tmp_path / "broker")).start()
    yield b
    b.stop()


@pytest.fixture
def device(tmp_path):
    d = SimDevice(str(tmp_path), (MODELS / "digits_mlp.onnx").read_bytes(), device_id="mcu-01", telemetry_s=0.25)
    d.start()
    yield d
    d.stop()


@pytest.fixture
def keys(tmp_path):
    pytest.importorskip("cryptography")
    from edgeops.bundle import keygen

    return keygen(str(tmp_path / "release")), keygen(str(tmp_path / "stranger"))


@pytest.fixture
def gateway(device, broker, tmp_path, keys):
    gw = Gateway(GatewayOptions(port=device.port, broker=broker.url, fleet="lab", store_dir=str(tmp_path / "gw"),
                                trusted_keys=(keys[0][1],), health_timeout_s=20)).start()
    yield gw
    gw.stop()


@pytest.fixture
def store(tmp_path, broker):
    from edgeops.fleet.collector import Collector
    from edgeops.fleet.store import open_store

    s = open_store(str(tmp_path / "fleet.sqlite"))
    c = Collector(s, broker.url, "lab", client_id="c-bridge").start(wait_s=10)
    yield s
    c.stop()
    s.close()


def tseqs(store, device="mcu-01"):
    rows = sorted((r["payload"] for r in store.telemetry("lab", device)), key=lambda p: p["seq"])
    return [(r["mcu"]["boot"], r["mcu"]["tseq"]) for r in rows], rows


# -- the link ---------------------------------------------------------------------------------------------------

def test_link_survives_garbage_and_a_pulled_cable(device):
    with Link(device.port, timeout=0.5) as link:
        assert link.wait_open(5)
        assert link.request(wire.Ping(nonce=1, data=b"a")) == wire.Pong(nonce=1, data=b"a")
        device.garbage(b"\x01\x02\xff junk \x00\x17\x00" + bytes(range(1, 200)) + b"\x00")
        assert link.request(wire.Ping(nonce=2, data=b"b")) == wire.Pong(nonce=2, data=b"b")
        assert link.decoder.dropped >= 2
        device.unplug()
        with pytest.raises(LinkError):
            link.request(wire.Ping(nonce=3), retries=1, timeout=0.3)
        device.plug()
        assert wait_until(lambda: link.opens == 2, 10), link.last_error
        assert link.request(wire.Ping(nonce=4, data=b"d")) == wire.Pong(nonce=4, data=b"d")
        assert link.losses == 1


def test_a_nack_is_an_error_that_names_the_code(device):
    with Link(device.port) as link:
        link.wait_open(5)
        with pytest.raises(LinkError, match="NO_TRANSFER"):
            link.request(wire.ModelCommit(sha256=bytes(32)))


# -- in the fleet ----------------------------------------------------------------------------------------------

def test_mcu_shows_in_fleet_status_with_inference_counts(device, store, gateway, broker, tmp_path):
    assert gateway.device == "mcu-01"
    assert wait_until(lambda: len(tseqs(store)[0]) >= 6 and store.device("lab", "mcu-01")
                      and store.device("lab", "mcu-01")["state"] == "online")
    seen, rows = tseqs(store)
    assert [t for _, t in seen] == list(range(seen[0][1], seen[0][1] + len(seen)))
    last = rows[-1]
    assert last["runtime"]["backend"] == "mcu" and last["model"]["name"] == "builtin"
    assert last["inference"]["total"] == last["mcu"]["inferences"] > 0  # the windows add up to the device's count
    assert sum(r["inference"]["count"] for r in rows) == last["mcu"]["inferences"]
    assert last["inference"]["latency_ms"]["p50"] >= 0 and last["health"]["ram_free_bytes"] == 100_000
    from edgeops.cli import cli

    out = CliRunner().invoke(cli, ["fleet", "status", "--db", str(tmp_path / "fleet.sqlite"), "--fleet", "lab",
                                   "--json"])
    assert out.exit_code == 0, out.output
    row = next(d for d in json.loads(out.output)["devices"] if d["device"] == "mcu-01")
    assert row["state"] == "online" and row["model"]["sha256"] == gateway.hello.model_sha256.hex()
    assert row["rate_per_s"] > 0


def test_recovers_from_a_pulled_cable_garbage_and_a_reset(device, store, gateway):
    assert wait_until(lambda: len(tseqs(store)[0]) >= 3)
    device.unplug()
    time.sleep(1.0)  # frames written meanwhile wait in the device (a USB-CDC device)
    device.plug()
    assert wait_until(lambda: gateway.link.opens >= 2)
    device.garbage(b"\xde\xad\xbe\xef" * 50 + b"\x00")
    device.restart()
    boot = gateway.boot
    assert wait_until(lambda: gateway.boot == boot + 1)
    assert wait_until(lambda: sum(1 for b, _ in tseqs(store)[0] if b == gateway.boot) >= 3)
    gateway.publisher.wait_drained(10)
    seen, rows = tseqs(store)
    for boot_id in {b for b, _ in seen}:
        got = [t for b, t in seen if b == boot_id]
        assert got == list(range(got[0], got[0] + len(got))), f"tseq gap in boot {boot_id}: {seen}"
    assert gateway.link.decoder.dropped >= 1 and gateway.link.losses >= 1
    kinds = [e["kind"] for e in store.events("lab", "mcu-01")]
    assert "mcu.restarted" in kinds and "mcu.telemetry_gap" not in kinds


def test_telemetry_kept_while_the_broker_is_away(device, store, gateway, broker):
    assert wait_until(lambda: len(tseqs(store)[0]) >= 2)
    broker.stop()
    time.sleep(1.5)
    assert gateway.publisher.outbox.stats()["pending"] >= 3  # stored while the broker was away
    broker.start()
    assert wait_until(lambda: gateway.publisher.outbox.stats()["pending"] == 0, 30)
    assert wait_until(lambda: len(tseqs(store)[0]) >= 8, 20)
    seen, _ = tseqs(store)
    got = [t for _, t in seen]
    assert got == list(range(got[0], got[0] + len(got)))


# -- updates through the gateway ---------------------------------------------------------------------------------

def _bundle(tmp_path, model, key, version):
    from edgeops.bundle import create

    out = str(tmp_path / f"m-{version}.eob")
    create(str(model), out, name="digits", version=version, key=key)
    return out


def _nan_model(path):
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    w = helper.make_tensor("w", TensorProto.FLOAT, [64, 10], [float("nan")] * 640)
    g = helper.make_graph([helper.make_node("MatMul", ["pixels", "w"], ["probabilities"])], "nan",
                          [helper.make_tensor_value_info("pixels", TensorProto.FLOAT, [None, 64])],
                          [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, [None, 10])], [w])
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)]), str(path))
    return path


def _flash(broker, bundle, device="mcu-01", timeout=90):
    from edgeops.deploy.mqtt import flash_mqtt

    return flash_mqtt(bundle, broker.url, "lab", device, timeout=timeout, chunk_size=4096, progress=False)


def test_flash_through_the_gateway_commits(device, gateway, broker, tmp_path, keys):
    good = _bundle(tmp_path, MODELS / "digits_cnn.onnx", keys[0][0], "2.0")
    result = _flash(broker, good)
    assert result.outcome == "committed", result.reason
    assert device.received.get("ModelChunk", 0) >= 1 and device.table["confirmed"] in (0, 1)
    assert wait_until(lambda: gateway.publisher.model_info["version"] == "2.0")
    assert gateway.hello.model_sha256 == device._hello().model_sha256


def test_a_broken_model_is_reverted_and_reported(device, gateway, broker, tmp_path, keys):
    bad = _bundle(tmp_path, _nan_model(tmp_path / "nan.onnx"), keys[0][0], "3.0")
    result = _flash(broker, bad)
    assert result.outcome == "rolled_back", result.reason
    assert "reverted" in result.reason
    assert gateway.hello.model_name == "builtin" and gateway.hello.boot_flags & 1


def test_a_bundle_signed_by_an_untrusted_key_is_refused_and_nothing_sent(device, gateway, broker, tmp_path, keys):
    tampered = _bundle(tmp_path, MODELS / "digits_cnn.onnx", keys[1][0], "4.0")
    result = _flash(broker, tampered)
    assert result.outcome == "refused"
    assert "nothing was sent to the MCU" in result.reason
    assert device.received.get("ModelOffer", 0) == 0 and device.received.get("ModelChunk", 0) == 0


# -- validation on the target -------------------------------------------------------------------------------------

def test_validate_over_serial_agrees_with_the_reference(device):
    from edgeops.cli import cli

    out = CliRunner().invoke(cli, ["validate", str(MODELS / "digits_mlp.onnx"), f"serial://{device.port}",
                                   "--data", str(MODELS / "digits_mlp_test.npz"), "--max-samples", "40",
                                   "--no-latency", "--json"])
    assert out.exit_code == 0, out.output
    report = json.loads(out.output)
    assert report["samples"] == 40 and report["failures"] == []
    assert report["outputs"]["probabilities"]["top1_agreement"] == 1.0
    assert any("as the device measures it" in n for n in report["notes"])
    assert device.received["InferReq"] == 40


def test_validate_refuses_a_port_with_nothing_on_it(tmp_path):
    from edgeops.bridge.remote import open_remote

    with pytest.raises(LinkError, match="cannot open"):
        open_remote(f"serial://{tmp_path}/nothing", timeout=0.5)
    assert np.dtype(np.int8)  # numpy stays importable (the remote backend's types)
