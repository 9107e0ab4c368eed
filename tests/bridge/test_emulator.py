"""The demo firmware cross-compiled for Cortex-M4 and run under QEMU's mps2-an386 with UART0 on a TCP socket
(``make -C firmware_bridge emulate PORT=N``), driven by the Python codec over pyserial's ``socket://``: HELLO,
the inference loop in TELEMETRY, INFER bit-exact with TFLite Micro, and a model update that commits, survives
resets half-way, and a broken one that is reverted.

One QEMU boot for the module (the ``emulated_device`` fixture): the tests run in order on one device and
one flash, each starting from what the previous one left (the update tests build on each other)."""

from __future__ import annotations

import hashlib
import random
import time

import numpy as np
import pytest
from hostdevice import ROOT

from edgeops.bridge import image as img
from edgeops.bridge import wire

MODEL = ROOT / "examples" / "models" / "digits_cnn_int8.tflite"
EV_CONFIRMED, EV_REVERTED = 0x0104, 0x0105
pytest.importorskip("serial")


@pytest.fixture(scope="module")
def client(emulated_device):
    c = emulated_device.client()
    yield c
    c.close()


def quantize(x: np.ndarray, scale: float, zero_point: int) -> np.ndarray:
    """TFLite Micro's AffineQuantize: round(x / scale) in float32, plus the zero point, clamped."""
    q = np.round(np.asarray(x, np.float32) / np.float32(scale)).astype(np.int64) + zero_point
    return np.clip(q, -128, 127).astype(np.int8)


def shuffled_weights_image(version: str) -> bytes:
    """The digits graph with its int8 weights shuffled: it loads, and fails the device's health check."""
    from edgeops.convert.codegen import compile_blob

    compiled = compile_blob(MODEL.read_bytes())
    blob = bytearray(compiled.blob)
    rng = random.Random(17)
    for _, ctype, off, n in compiled.arrays:
        if ctype == "int8_t" and n != 256:  # the weights, not the lookup tables
            part = blob[off:off + n]
            rng.shuffle(part)
            blob[off:off + n] = part
    return img.pack_image(compiled.graph_hash, bytes(blob), name="digits", version=version)


def test_hello_from_the_emulated_cortex_m4(emulated_device, client):
    assert emulated_device.url.startswith("socket://127.0.0.1:")
    hello = client.request(wire.HelloReq())
    assert isinstance(hello, wire.Hello), hello
    assert hello.device_id == "mps2-an386" and hello.firmware_version.startswith("eob-demo-mps2")
    assert (hello.model_name, hello.model_version, hello.model_format) == ("digits", "builtin", 1)
    assert hello.input.elements == 64 and hello.output.elements == 10 and hello.input.dtype == wire.DType.INT8
    assert hello.slot_count == 2 and hello.running_slot == wire.SLOT_NONE and hello.slot_size == (32 - 4) * 1024  # a slot less its header
    assert hello.boot_state == wire.BootState.CONFIRMED and hello.max_payload == 1024
    assert client.request(wire.Ping(nonce=5, data=bytes(range(256)) * 3)) == wire.Pong(nonce=5,
                                                                                        data=bytes(range(256)) * 3)


def test_the_demo_loop_runs_the_model_and_telemetry_counts_it(client):
    first = client.request(wire.TelemetryReq())
    client.pump(2.2)
    later = client.request(wire.TelemetryReq())
    periodic = [m for m in client.unsolicited if isinstance(m, wire.Telemetry)]
    client.unsolicited.clear()
    assert len(periodic) >= 1  # every second
    assert later.inferences >= first.inferences + 6, (first, later)  # the loop runs every 200 ms
    assert later.errors == 0 and later.uptime_ms >= first.uptime_ms + 2000
    assert later.latency_count > 0 and 0 < later.latency_min_us <= later.latency_p50_us <= later.latency_max_us
    assert 100_000 < later.ram_free < 4 * 1024 * 1024  # SSRAM2&3 less data, bss and used stack
    assert later.rx_dropped == 0 and later.tx_dropped == 0


def test_infer_is_bit_exact_with_tflite_micro(client):
    runtime = pytest.importorskip("tflite_micro").runtime
    hello = client.request(wire.HelloReq())
    x = np.load(ROOT / "examples" / "models" / "digits_cnn_test.npz")["image"][:25]
    interp = runtime.Interpreter.from_bytes(MODEL.read_bytes(), arena_size=64 * 1024)
    for k, sample in enumerate(x):
        q = quantize(sample.ravel(), hello.input.scale, hello.input.zero_point)
        resp = client.request(wire.InferReq(input=q.tobytes()))
        assert isinstance(resp, wire.InferResp) and resp.status == 0, resp
        ours = np.frombuffer(resp.output, np.int8)
        interp.set_input(sample.reshape(interp.get_input_details(0)["shape"]).astype(np.float32), 0)
        interp.invoke()
        theirs = np.array(interp.get_output(0)).ravel()  # float (the model's DEQUANTIZE): multiples of 1/256
        np.testing.assert_array_equal((ours.astype(np.float32) - hello.output.zero_point) * np.float32(
            hello.output.scale), theirs, err_msg=f"sample {k}")
        assert 0 < resp.latency_us < 1_000_000
    bad = client.request(wire.InferReq(input=b"\x00" * 63))
    assert isinstance(bad, wire.InferResp) and bad.status == wire.ErrorCode.INPUT_SIZE


def offer(image: bytes, chunk: int, version: str) -> wire.ModelOffer:
    return wire.ModelOffer(image_size=len(image), chunk_size=chunk, format=1, sha256=hashlib.sha256(image).digest(),
                           name="digits", version=version)


def test_update_survives_resets_mid_transfer_then_commits(emulated_device, client):
    image = img.build_image(MODEL, name="digits", version="2.0")
    chunk = 512
    total = -(-len(image) // chunk)
    status = client.send_image(image, name="digits", version="2.0", chunk_size=chunk, only=range(0, 4))
    assert status.chunks_missing == total - 4
    # RESET over the wire: the firmware's SYSRESETREQ; QEMU reloads the ELF, the flash model stays
    assert client.request(wire.Reset()) == wire.Ack(request=wire.MsgType.RESET, value=0)
    client.wait_for(wire.Hello, timeout=10)
    status = client.request(offer(image, chunk, "2.0"))
    assert status.missing == ((4, total - 4),), status
    status = client.send_image(image, name="digits", version="2.0", chunk_size=chunk, only=range(4, 8))
    assert status.missing == ((8, total - 8),)
    emulated_device.restart()  # the reset button (QMP system_reset)
    client.wait_for(wire.Hello, timeout=10)
    status = client.send_image(image, name="digits", version="2.0", chunk_size=chunk)
    assert status.chunks_missing == 0
    committed = client.request(wire.ModelCommit(sha256=hashlib.sha256(image).digest()))
    assert committed.boot_state == wire.BootState.PENDING and committed.transfer == wire.TransferState.VERIFIED
    client.request(wire.Reset())
    hello = client.wait_for(wire.Hello, timeout=10)
    assert hello.boot_state == wire.BootState.TESTING and hello.model_version == "2.0"
    trial = hello.running_slot
    event = client.wait_for(wire.Event, timeout=10, where=lambda e: e.code in (EV_CONFIRMED, EV_REVERTED))
    assert event.code == EV_CONFIRMED, event
    hello = client.request(wire.HelloReq())
    assert (hello.boot_state, hello.running_slot, hello.model_version) == (wire.BootState.CONFIRMED, trial, "2.0")
    assert hello.model_sha256 == hashlib.sha256(image).digest()
    emulated_device.restart()
    hello = client.wait_for(wire.Hello, timeout=10)
    assert (hello.boot_state, hello.running_slot, hello.model_version) == (wire.BootState.CONFIRMED, trial, "2.0")
    assert client.request(wire.InferReq(input=bytes(64))).status == 0


def test_broken_image_is_reverted_and_stays_reverted_across_resets(emulated_device, client):
    before = client.request(wire.HelloReq())
    assert before.model_version == "2.0" and before.running_slot in (0, 1)  # the previous test's commit
    image = shuffled_weights_image("bad")
    status = client.send_image(image, name="digits", version="bad")
    assert status.chunks_missing == 0
    committed = client.request(wire.ModelCommit(sha256=hashlib.sha256(image).digest()))
    assert committed.boot_state == wire.BootState.PENDING and committed.trial_slot == 1 - before.running_slot
    client.request(wire.Reset())
    hello = client.wait_for(wire.Hello, timeout=10)
    assert hello.boot_state == wire.BootState.TESTING and hello.model_version == "bad"
    event = client.wait_for(wire.Event, timeout=10, where=lambda e: e.code in (EV_CONFIRMED, EV_REVERTED))
    assert event.code == EV_REVERTED and "health check" in event.text
    for _ in range(2):  # after the revert, and after another reset
        hello = client.request(wire.HelloReq())
        assert (hello.model_version, hello.running_slot, hello.boot_state) == (
            "2.0", before.running_slot, wire.BootState.CONFIRMED)
        assert hello.boot_flags & 1  # the last trial was reverted
        emulated_device.restart()
        client.wait_for(wire.Hello, timeout=10)
    later = client.request(wire.TelemetryReq())
    assert later.errors == 0 and later.running_slot == before.running_slot


def test_it_runs_on_with_nobody_connected_and_takes_a_new_connection(emulated_device, client):
    """A gateway that goes away and comes back (a cable pull): QEMU drops UART0's output while no client is
    connected (frames sent then are lost on the line, the firmware does not block: tx_dropped stays 0 and the
    TELEMETRY tseq shows the gap), and accepts the next client on the same port."""
    before = client.request(wire.TelemetryReq())
    client.close()
    time.sleep(1.5)
    again = emulated_device.client()
    try:
        after = again.request(wire.TelemetryReq())
        assert after.inferences >= before.inferences + 5 and after.tseq >= before.tseq + 2
        assert after.tx_dropped == 0 and after.uptime_ms >= before.uptime_ms + 1500
        assert again.request(wire.Ping(nonce=3)) == wire.Pong(nonce=3)
    finally:
        again.close()


def test_no_elf_segment_covers_the_flash_model():
    """QEMU rewrites (and zero-fills) every PT_LOAD segment at a reset: the flash model must be in none."""
    import re
    import shutil
    import subprocess

    from emulator import build_emulated_firmware

    elf = build_emulated_firmware()
    readelf = shutil.which("arm-none-eabi-readelf") or pytest.skip("arm-none-eabi-readelf missing")
    out = subprocess.run([readelf, "-lW", str(elf)], check=True, capture_output=True, text=True).stdout
    segments = [(int(a, 16), int(m, 16)) for a, m in
                re.findall(r"^\s*LOAD\s+0x[0-9a-f]+ 0x([0-9a-f]+) 0x[0-9a-f]+ 0x[0-9a-f]+ 0x([0-9a-f]+)", out, re.M)]
    assert len(segments) >= 2, out
    flash_start, flash_end = 0x21000000, 0x22000000
    for addr, memsz in segments:
        assert addr + memsz <= flash_start or addr >= flash_end, out


def test_footprint_benchmark_accounts_for_the_whole_demo_image(tmp_path):
    """benchmarks/bridge_footprint.py --demo: the parts it reads from the linker map add up to the image."""
    import importlib.util

    from emulator import build_emulated_firmware

    build_emulated_firmware()  # skips without the cross compiler
    spec = importlib.util.spec_from_file_location("bridge_footprint", ROOT / "benchmarks" / "bridge_footprint.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    demo = bench.measure_demo(tmp_path)
    parts = demo["parts"]
    flash = sum(row["flash"] for row in parts.values())
    assert 0 <= demo["flash_total"] - flash < 256, demo  # alignment and fill only
    assert 0 <= demo["ram_total"] - sum(row["ram"] for row in parts.values()) < 64  # alignment
    assert parts["library (src/eob_*.c)"]["flash"] > 4000 and parts["library (src/eob_*.c)"]["ram"] == 0
    assert parts["digits model (code + constants)"]["flash"] > 5216  # the blob alone is 5216 bytes
    assert demo["stack_reserved"] == 64 * 1024 and demo["ram_total"] < 64 * 1024
