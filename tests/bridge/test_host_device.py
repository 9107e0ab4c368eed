"""The demo firmware (firmware_bridge/app) as a real C process on a real pty, driven by the Python codec:
HELLO, INFER bit-exact with TFLite Micro, telemetry from the inference loop, model updates with commit,
revert and resume after a kill, and garbage on the line."""

from __future__ import annotations

import hashlib
import random

import numpy as np
import pytest
from hostdevice import ROOT, Client

from edgeops.bridge import image as img
from edgeops.bridge import wire

MODEL = ROOT / "examples" / "models" / "digits_cnn_int8.tflite"
pytest.importorskip("serial")


@pytest.fixture
def client(host_device):
    c = Client(host_device.port)
    yield c
    c.close()


def quantize(x: np.ndarray, scale: float, zero_point: int) -> np.ndarray:
    """TFLite Micro's AffineQuantize: round(x / scale) in float32, plus the zero point, clamped."""
    q = np.round(np.asarray(x, np.float32) / np.float32(scale)).astype(np.int64) + zero_point
    return np.clip(q, -128, 127).astype(np.int8)


def compiled_model():
    from edgeops.convert.codegen import compile_blob

    return compile_blob(MODEL.read_bytes())


def shuffled_image(version: str, everything: bool = False) -> bytes:
    """The same graph with its int8 weights shuffled (loads, fails the device's health check), or with the
    whole blob shuffled (shifts and biases out of range: refused when the device loads it)."""
    compiled = compiled_model()
    blob = bytearray(compiled.blob)
    rng = random.Random(17)
    if everything:
        rng.shuffle(blob)
    for _, ctype, off, n in compiled.arrays:
        if ctype == "int8_t" and n != 256:  # the weights, not the lookup tables
            part = blob[off:off + n]
            rng.shuffle(part)
            blob[off:off + n] = part
    return img.pack_image(compiled.graph_hash, bytes(blob), name="digits", version=version)


def test_hello_describes_device_model_and_slots(host_device, client):
    hello = client.request(wire.HelloReq())
    assert isinstance(hello, wire.Hello)
    assert hello.device_id == "mcu-01"
    assert hello.protocol == 1 and hello.max_payload == 1024
    assert hello.capabilities & wire.Capability.INFER and hello.capabilities & wire.Capability.MODEL_UPDATE
    assert hello.capabilities & wire.Capability.RESET
    assert (hello.model_name, hello.model_version, hello.model_format) == ("digits", "builtin", img.IMAGE_FORMAT)
    assert hello.model_sha256 == bytes(32)
    assert img.hello_graph_prefix(hello) == img.graph_hash_of(MODEL).hex()[:16]
    assert hello.input.dims == (64,) and hello.output.dims == (10,)
    from edgeops.convert.codegen.model import read_graph

    g = read_graph(MODEL.read_bytes())
    assert (np.float32(hello.input.scale), hello.input.zero_point) == (np.float32(g.tensors[g.inputs[0]].q[0]),
                                                                       g.tensors[g.inputs[0]].q[1])
    assert hello.arena_bytes == 640
    assert (hello.slot_count, hello.running_slot, hello.boot_state) == (2, wire.SLOT_NONE, wire.BootState.CONFIRMED)
    assert hello.slot_size >= len(img.build_image(MODEL, name="digits", version="1"))
    assert client.request(wire.Ping(nonce=0xDEADBEEF, data=b"x" * 300)) == wire.Pong(nonce=0xDEADBEEF,
                                                                                      data=b"x" * 300)


def test_infer_is_bit_exact_with_tflite_micro(host_device, client):
    runtime = pytest.importorskip("tflite_micro").runtime
    data = MODEL.read_bytes()
    hello = client.request(wire.HelloReq())
    x = np.load(ROOT / "examples" / "models" / "digits_cnn_test.npz")["image"][:25]
    interp = runtime.Interpreter.from_bytes(data, arena_size=64 * 1024)
    for k, sample in enumerate(x):
        q = quantize(sample.ravel(), hello.input.scale, hello.input.zero_point)
        resp = client.request(wire.InferReq(input=q.tobytes()))
        assert isinstance(resp, wire.InferResp) and resp.status == 0, resp
        ours = np.frombuffer(resp.output, np.int8)
        interp.set_input(sample.reshape(interp.get_input_details(0)["shape"]).astype(np.float32), 0)
        interp.invoke()
        theirs = np.array(interp.get_output(0)).ravel()  # float (the model's DEQUANTIZE): exact multiples of 1/256
        np.testing.assert_array_equal((ours.astype(np.float32) - hello.output.zero_point) * np.float32(
            hello.output.scale), theirs, err_msg=f"sample {k}")
        assert 0 < resp.latency_us < 1_000_000
    bad = client.request(wire.InferReq(input=b"\x00" * 63))
    assert isinstance(bad, wire.InferResp) and bad.status == wire.ErrorCode.INPUT_SIZE and bad.output == b""


def test_telemetry_counts_the_inference_loop_with_contiguous_tseq(host_device, client):
    first = client.request(wire.TelemetryReq())
    client.pump(1.2)
    later = client.request(wire.TelemetryReq())
    periodic = [m for m in client.unsolicited if isinstance(m, wire.Telemetry)]
    assert len(periodic) >= 3  # every 250 ms
    seqs = [first.tseq] + [m.tseq for m in periodic] + [later.tseq]
    assert seqs == list(range(first.tseq, first.tseq + len(seqs)))
    assert later.inferences >= first.inferences + 15  # a run every 50 ms
    assert later.errors == 0 and later.uptime_ms > first.uptime_ms
    for t in periodic:
        assert t.latency_count > 0 and 0 < t.latency_min_us <= t.latency_p50_us <= t.latency_p90_us
        assert t.latency_p90_us <= t.latency_p99_us <= t.latency_max_us and t.latency_min_us <= t.latency_mean_us
    assert later.rx_frames >= 2 and later.rx_dropped == 0 and later.tx_dropped == 0


def test_good_image_commits_runs_in_test_then_is_confirmed(host_device, client):
    image = img.build_image(MODEL, name="digits", version="2.0")
    status = client.send_image(image, name="digits", version="2.0")
    assert status.chunks_missing == 0 and status.transfer == wire.TransferState.RECEIVING
    committed = client.request(wire.ModelCommit(sha256=hashlib.sha256(image).digest()))
    assert isinstance(committed, wire.ModelStatus), committed
    assert committed.boot_state == wire.BootState.PENDING and committed.transfer == wire.TransferState.VERIFIED
    assert client.request(wire.Reset()) == wire.Ack(request=wire.MsgType.RESET, value=0)
    hello = client.wait_for(wire.Hello)  # the port stays open across the device's RESET
    assert hello.boot_state == wire.BootState.TESTING and hello.model_version == "2.0"
    trial = hello.running_slot
    assert trial in (0, 1)
    client.wait_for(wire.Event, where=lambda e: e.code == 0x0104)  # confirmed after the health check
    hello = client.request(wire.HelloReq())
    assert (hello.boot_state, hello.running_slot, hello.model_version) == (wire.BootState.CONFIRMED, trial, "2.0")
    assert hello.model_sha256 == hashlib.sha256(image).digest() and not hello.boot_flags
    host_device.restart()  # a power cycle keeps it
    client.close()
    client2 = Client(host_device.port)
    try:
        hello = client2.request(wire.HelloReq())
        assert (hello.running_slot, hello.model_version, hello.boot_state) == (trial, "2.0", wire.BootState.CONFIRMED)
        assert client2.request(wire.InferReq(input=bytes(64))).status == 0
    finally:
        client2.close()


@pytest.mark.parametrize("everything, why", [(False, "health check"), (True, "does not load")],
                         ids=["shuffled-weights", "shuffled-blob"])
def test_broken_image_is_reverted_to_the_old_model(host_device, client, everything, why):
    image = shuffled_image("bad", everything)
    client.send_image(image, name="digits", version="bad")
    committed = client.request(wire.ModelCommit(sha256=hashlib.sha256(image).digest()))
    assert committed.boot_state == wire.BootState.PENDING
    client.request(wire.Reset())
    hello = client.wait_for(wire.Hello)
    assert hello.boot_state == wire.BootState.TESTING
    event = client.wait_for(wire.Event, where=lambda e: e.code in (0x0104, 0x0105))
    assert event.code == 0x0105 and why in event.text
    hello = client.request(wire.HelloReq())
    assert (hello.model_version, hello.running_slot, hello.boot_state) == ("builtin", wire.SLOT_NONE,
                                                                           wire.BootState.CONFIRMED)
    assert hello.boot_flags & 1  # the last trial was reverted
    status = client.request(wire.ModelStatusReq())
    assert status.flags & wire.ModelStatus.FLAG_REVERTED and status.trial_slot == wire.SLOT_NONE


def test_transfer_interrupted_by_a_kill_resumes_with_only_the_missing_chunks(host_device, client):
    image = img.build_image(MODEL, name="digits", version="3")
    chunk = 256
    total = -(-len(image) // chunk)
    status = client.send_image(image, name="digits", version="3", chunk_size=chunk, only=range(0, 9))
    assert status.chunks_missing == total - 9
    host_device.kill()  # power cut mid-transfer
    client.close()
    host_device.start()
    c = Client(host_device.port)
    try:
        sha = hashlib.sha256(image).digest()
        status = c.request(wire.ModelOffer(image_size=len(image), chunk_size=chunk, format=1, sha256=sha,
                                           name="digits", version="3"))
        assert status.missing == ((9, total - 9),) and status.chunks_missing == total - 9
        status = c.send_image(image, name="digits", version="3", chunk_size=chunk)
        assert status.chunks_missing == 0
        assert c.request(wire.ModelCommit(sha256=sha)).transfer == wire.TransferState.VERIFIED
    finally:
        c.close()


def test_images_for_another_graph_are_refused(host_device, client):
    compiled = compiled_model()
    other = img.pack_image(hashlib.sha256(b"another graph").digest(), compiled.blob, name="other", version="1")
    client.send_image(other, name="other", version="1")
    nack = client.request(wire.ModelCommit(sha256=hashlib.sha256(other).digest()))
    assert isinstance(nack, wire.Nack) and nack.error == wire.ErrorCode.UNSUPPORTED and "graph" in nack.detail
    hello = client.request(wire.HelloReq())
    with pytest.raises(Exception, match="graph"):
        img.check_fits(other, hello)
    img.check_fits(img.build_image(MODEL, name="digits", version="1"), hello)
    smaller = img.pack_image(compiled.graph_hash, compiled.blob[:-8], name="digits", version="1")
    nack = client.request(wire.ModelOffer(image_size=len(smaller), chunk_size=512, format=1,
                                          sha256=hashlib.sha256(smaller).digest(), name="digits", version="1"))
    assert isinstance(nack, wire.Nack) and nack.error == wire.ErrorCode.UNSUPPORTED
    nack = client.request(wire.ModelOffer(image_size=5312, chunk_size=512, format=7, sha256=bytes(32), name="x",
                                          version="1"))
    assert isinstance(nack, wire.Nack) and nack.error == wire.ErrorCode.UNSUPPORTED


def test_garbage_on_the_line_does_not_break_it(host_device, client):
    rng = random.Random(3)
    before = client.request(wire.TelemetryReq())
    good = wire.encode_message(wire.Ping(nonce=1, data=b"ok"), 7)
    client.write(bytes(rng.randrange(256) for _ in range(5000)))  # noise, with and without delimiters
    client.write(b"\xff" * 3000 + b"\x00")  # oversize
    client.write(good[:-5] + b"\x00")  # a truncated frame
    broken = bytearray(good)
    broken[3] ^= 0x40
    client.write(bytes(broken))  # a bad CRC
    client.write(b"\x00")
    assert client.request(wire.Ping(nonce=2, data=b"alive")) == wire.Pong(nonce=2, data=b"alive")
    after = client.request(wire.TelemetryReq())
    assert after.rx_dropped > before.rx_dropped
    assert client.request(wire.InferReq(input=bytes(64))).status == 0
    # a reply-type frame and an unknown type are NACKed, not fatal
    nack = client.request(wire.Pong(nonce=1))
    assert isinstance(nack, wire.Nack) and nack.error == wire.ErrorCode.TYPE


def test_generated_model_files_are_up_to_date(tmp_path):
    import importlib.util

    spec = importlib.util.spec_from_file_location("gen_model", ROOT / "firmware_bridge" / "app" / "gen_model.py")
    gen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen)
    for path in gen.generate(tmp_path):
        committed = ROOT / "firmware_bridge" / "app" / "model" / path.name
        assert committed.read_text() == path.read_text(), f"{committed} is stale: run firmware_bridge/app/gen_model.py"
