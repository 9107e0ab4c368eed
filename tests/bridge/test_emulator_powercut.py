"""Power cuts in the emulator: QEMU (the demo firmware on mps2-an386, its flash model in a file) is killed
with SIGKILL while it handles each step of a model update (MODEL_OFFER, every MODEL_CHUNK, MODEL_COMMIT, the
RESET into the trial, when one is needed, and the trial's health check), at a random moment just after the request was sent, then
booted again on the same flash file. After every cut the board must start and answer with a consistent state
(the old model confirmed, or the new one in test or confirmed: never anything else), INFER must work, and
the update, driven on from whatever the device reports, must end confirmed. The byte-exact version of this
(a cut at every byte erased or written) is the host test firmware_bridge/tests/test_slots.c; here the cuts
land wherever QEMU happens to be."""

from __future__ import annotations

import hashlib
import random
import time

import pytest
from hostdevice import ROOT

from edgeops.bridge import image as img
from edgeops.bridge import wire

MODEL = ROOT / "examples" / "models" / "digits_cnn_int8.tflite"
CHUNK = 1000
pytest.importorskip("serial")


def next_request(client, image: bytes, offer: wire.ModelOffer) -> wire.Message | None:
    """The request that moves the update on from the state the device reports (None: confirmed)."""
    hello = client.request(wire.HelloReq())
    if hello.model_version == "2.0" and hello.boot_state == wire.BootState.CONFIRMED:
        return None
    if hello.boot_state == wire.BootState.TESTING:  # the health check is running or about to
        client.wait_for(wire.Event, timeout=10, where=lambda e: e.code in (0x0104, 0x0105))
        return next_request(client, image, offer)
    status = client.request(offer)
    assert isinstance(status, wire.ModelStatus), status
    if status.boot_state == wire.BootState.PENDING:
        return wire.Reset()
    if status.chunks_missing:
        index = status.missing[0][0]
        data = image[index * CHUNK:(index + 1) * CHUNK]
        return wire.ModelChunk(tag=offer.tag, index=index, crc32=wire.crc32(data), data=data)
    return wire.ModelCommit(sha256=offer.sha256)


def check_consistent(client, sha: bytes) -> wire.Hello:
    hello = client.request(wire.HelloReq(), timeout=10)
    assert isinstance(hello, wire.Hello), hello
    assert hello.boot_state in (wire.BootState.CONFIRMED, wire.BootState.TESTING), hello
    if hello.model_version == "2.0":
        assert hello.model_sha256 == sha and hello.running_slot in (0, 1), hello
    else:
        assert (hello.model_version, hello.running_slot) == ("builtin", wire.SLOT_NONE), hello
        assert hello.boot_state == wire.BootState.CONFIRMED, hello
    resp = client.request(wire.InferReq(input=bytes(64)))
    assert isinstance(resp, wire.InferResp) and resp.status == 0, resp
    return hello


def test_a_power_cut_at_every_step_of_an_update_leaves_a_bootable_consistent_device(emulated_device):
    image = img.build_image(MODEL, name="digits", version="2.0")
    sha = hashlib.sha256(image).digest()
    offer = wire.ModelOffer(image_size=len(image), chunk_size=CHUNK, format=1, sha256=sha, name="digits",
                            version="2.0")
    rng = random.Random(1717)
    done: set[tuple[str, int]] = set()  # the steps cut so far: each is cut once, then done whole
    client = emulated_device.client()
    try:
        request: wire.Message | None = offer  # the first offer erases the slot it will write
        for _ in range(40):
            if request is None:
                break
            key = (type(request).__name__, getattr(request, "index", 0))
            if key not in done:
                done.add(key)
                client.write(wire.encode_message(request, 60000 + len(done)))
                time.sleep(rng.uniform(0.0, 0.03))
                emulated_device.kill()
                client.close()
                emulated_device.start()
                client = emulated_device.client()
                check_consistent(client, sha)
            else:
                reply = client.request(request)
                assert not isinstance(reply, wire.Nack), (request, reply)
                if isinstance(request, wire.Reset):
                    client.wait_for(wire.Hello, timeout=10)
            request = next_request(client, image, offer)
        else:
            pytest.fail("the update did not complete in 40 rounds")
        hello = check_consistent(client, sha)
        assert (hello.model_version, hello.boot_state) == ("2.0", wire.BootState.CONFIRMED)
        chunks = -(-len(image) // CHUNK)
        # the RESET is cut too when the device asks for one; a cut that lands after the commit restarts it
        # into the trial by itself
        assert {("ModelOffer", 0), ("ModelCommit", 0)} <= done, done
        assert {i for kind, i in done if kind == "ModelChunk"} == set(range(chunks)), done
    finally:
        client.close()
    emulated_device.power_cycle()  # and it stays
    client = emulated_device.client()
    try:
        hello = check_consistent(client, sha)
        assert (hello.model_version, hello.boot_state) == ("2.0", wire.BootState.CONFIRMED)
    finally:
        client.close()
