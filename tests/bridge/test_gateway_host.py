"""End to end with the real C demo firmware (fixture ``host_device``: firmware_bridge/ports/host on a pty), the gateway,
a real mosquitto and the fleet collector's SQLite store: the MCU in ``edgeops fleet status`` with its inference
counts, a signed update committed, a broken one reverted, an untrusted one refused with nothing sent, the pty
closed and reopened (a device power cycle) with contiguous telemetry, and ``edgeops validate`` over serial."""

from __future__ import annotations

import json
import random
import time

import pytest
from click.testing import CliRunner
from hostdevice import ROOT
from test_gateway import _flash, broker, keys, store, tseqs, wait_until  # noqa: F401 - shared fixtures

from edgeops.bridge import wire
from edgeops.bridge.gateway import Gateway, GatewayOptions

MODELS = ROOT / "examples" / "models"
INT8 = MODELS / "digits_cnn_int8.tflite"
pytest.importorskip("serial")


@pytest.fixture
def gateway(host_device, broker, store, tmp_path, keys):  # noqa: F811
    gw = Gateway(GatewayOptions(port=host_device.port, broker=broker.url, fleet="lab",
                                store_dir=str(tmp_path / "gw"), trusted_keys=(keys[0][1],), health_timeout_s=30)).start()
    yield gw
    gw.stop()


def _bundle(tmp_path, model_bytes: bytes, key: str, version: str) -> str:
    from edgeops.bundle import create

    model = tmp_path / f"digits-{version}.tflite"
    model.write_bytes(model_bytes)
    out = str(tmp_path / f"digits-{version}.eob")
    create(str(model), out, name="digits", version=version, key=key)
    return out


def _shuffled_weights() -> bytes:
    """digits_cnn_int8.tflite with its int8 weights shuffled in place: the same graph (the image fits the
    firmware), a model that fails the device's health check on its labelled samples."""
    from edgeops.convert.codegen import compile_blob

    raw = bytearray(INT8.read_bytes())
    compiled = compile_blob(bytes(raw))
    rng = random.Random(17)
    for _, ctype, off, n in compiled.arrays:
        if ctype == "int8_t" and n != 256:
            part = bytearray(compiled.blob[off:off + n])
            at = raw.find(part)
            assert at >= 0, "the weights are stored as they are in the .tflite"
            rng.shuffle(part)
            raw[at:at + n] = part
    return bytes(raw)


def test_host_mcu_in_fleet_status_with_real_inference_counts(host_device, store, gateway, tmp_path):  # noqa: F811
    assert gateway.device == host_device.device_id
    assert wait_until(lambda: len(tseqs(store)[0]) >= 6 and store.device("lab", "mcu-01")
                      and store.device("lab", "mcu-01")["state"] == "online", 20)
    seen, rows = tseqs(store)
    got = [t for _, t in seen]
    assert got == list(range(got[0], got[0] + len(got)))
    last = rows[-1]
    assert last["runtime"]["backend"] == "mcu" and last["mcu"]["inferences"] > 0
    assert last["inference"]["total"] == last["mcu"]["inferences"]
    assert last["inference"]["latency_ms"]["p50"] > 0
    from edgeops.cli import cli

    out = CliRunner().invoke(cli, ["fleet", "status", "--db", str(tmp_path / "fleet.sqlite"), "--fleet", "lab",
                                   "--json"])
    assert out.exit_code == 0, out.output
    row = next(d for d in json.loads(out.output)["devices"] if d["device"] == "mcu-01")
    assert row["state"] == "online" and row["rate_per_s"] > 0
    assert row["model"]["sha256"] == gateway.hello.model_sha256.hex()


def test_host_flash_commits_a_signed_update(host_device, gateway, broker, tmp_path, keys):  # noqa: F811
    result = _flash(broker, _bundle(tmp_path, INT8.read_bytes(), keys[0][0], "2.0"))
    assert result.outcome == "committed", result.reason
    assert wait_until(lambda: gateway.publisher.model_info["version"] == "2.0", 10)
    assert gateway.hello.running_slot in (0, 1) and gateway.hello.boot_state == wire.BootState.CONFIRMED


def test_host_flash_of_a_broken_model_is_reverted(host_device, gateway, broker, tmp_path, keys):  # noqa: F811
    result = _flash(broker, _bundle(tmp_path, _shuffled_weights(), keys[0][0], "bad"))
    assert result.outcome == "rolled_back", result.reason
    hello = gateway.link.request(wire.HelloReq())
    assert hello.model_version != "bad" and hello.boot_flags & 1


def test_host_untrusted_bundle_is_refused_with_nothing_sent(host_device, gateway, broker, tmp_path, keys):  # noqa: F811
    result = _flash(broker, _bundle(tmp_path, INT8.read_bytes(), keys[1][0], "untrusted"))
    assert result.outcome == "refused" and "nothing was sent to the MCU" in result.reason
    assert gateway.link.sent.get("MODEL_OFFER", 0) == 0 and gateway.link.sent.get("MODEL_CHUNK", 0) == 0
    status = gateway.link.request(wire.ModelStatusReq())
    assert status.transfer == wire.TransferState.NONE


def test_host_pty_closed_and_reopened_recovers_with_contiguous_telemetry(host_device, store, gateway):  # noqa: F811
    assert wait_until(lambda: len(tseqs(store)[0]) >= 3, 20)
    boot = gateway.boot
    host_device.restart()  # the process and its pty go; a new one comes behind the same path
    assert wait_until(lambda: gateway.boot > boot and gateway.link.opens >= 2, 20), gateway.link.last_error
    assert wait_until(lambda: sum(1 for b, _ in tseqs(store)[0] if b == gateway.boot) >= 3, 20)
    gateway.publisher.wait_drained(10)
    seen, _ = tseqs(store)
    for boot_id in sorted({b for b, _ in seen}):
        got = [t for b, t in seen if b == boot_id]
        assert got == list(range(got[0], got[0] + len(got))), f"tseq gap in boot {boot_id}: {seen}"
    assert gateway.link.losses >= 1
    kinds = [e["kind"] for e in store.events("lab", "mcu-01")]
    assert "mcu.restarted" in kinds


def test_host_validate_over_serial_agrees_with_the_reference(host_device):
    from edgeops.cli import cli

    out = CliRunner().invoke(cli, ["validate", str(MODELS / "digits_cnn.onnx"), f"serial://{host_device.port}",
                                   "--data", str(MODELS / "digits_cnn_test.npz"), "--max-samples", "100",
                                   "--no-latency", "--json"])
    assert out.exit_code == 0, out.output
    report = json.loads(out.output)
    assert report["failures"] == [] and report["samples"] == 100
    assert report["outputs"]["probabilities"]["top1_agreement"] >= 0.98
    assert any("as the device measures it" in n for n in report["notes"])
    time.sleep(0)
