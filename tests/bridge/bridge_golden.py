"""The golden frames of firmware_bridge/WIRE.md: fixed message values and the files they encode to.

``firmware_bridge/tests/golden/<name>.bin`` holds one frame on the line (COBS bytes and the 0x00
delimiter) for each entry of :data:`GOLDEN`; ``stream.bin`` is a byte stream with garbage, a bad CRC and
an oversize frame between two good frames (:data:`STREAM_EXPECT`). The C tests
(``firmware_bridge/tests/test_golden.c``) build the same values in C and must produce the same bytes.

Regenerate after a deliberate format change (and bump the protocol version)::

    PYTHONPATH=. python tests/bridge/bridge_golden.py --write
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

from edgeops.bridge import wire
from edgeops.bridge.wire import (
    Ack,
    BootState,
    DType,
    ErrorCode,
    Event,
    EventLevel,
    Hello,
    HelloReq,
    InferReq,
    InferResp,
    ModelChunk,
    ModelCommit,
    ModelOffer,
    ModelStatus,
    ModelStatusReq,
    MsgType,
    Nack,
    Ping,
    Pong,
    Reset,
    Telemetry,
    TelemetryReq,
    TensorDesc,
    TransferState,
)

GOLDEN_DIR = Path(__file__).resolve().parents[2] / "firmware_bridge" / "tests" / "golden"

IMAGE_SHA = hashlib.sha256(b"edgeops golden image").digest()
CHUNK = bytes((i * 7) & 0xFF for i in range(256))  # one 0x00, then 255 non-zero bytes: a full COBS block
INFER_INPUT = bytes(range(256 - 32, 256)) + bytes(range(32))  # int8 -32..31
INFER_OUTPUT = bytes([0x80, 0x81, 0x00, 0x7F, 0x10, 0x00, 0x00, 0xFF, 0x01, 0x02])

GOLDEN: dict[str, tuple[int, wire.Message]] = {
    "hello_req": (1, HelloReq()),
    "ping": (2, Ping(nonce=0xDEADBEEF, data=b"\x00\x01\x02\x00\xff")),
    "pong": (2, Pong(nonce=0xDEADBEEF, data=b"\x00\x01\x02\x00\xff")),
    "infer_req": (3, InferReq(input=INFER_INPUT)),
    "infer_resp": (3, InferResp(status=ErrorCode.OK, latency_us=1234, output=INFER_OUTPUT)),
    "model_offer": (4, ModelOffer(image_size=1000, chunk_size=256, format=1, sha256=IMAGE_SHA,
                                  name="digits_cnn", version="1.2.0")),
    "model_chunk": (5, ModelChunk(tag=wire.transfer_tag(IMAGE_SHA), index=2, crc32=wire.crc32(CHUNK), data=CHUNK)),
    "model_commit": (6, ModelCommit(sha256=IMAGE_SHA)),
    "model_status_req": (7, ModelStatusReq()),
    "model_status": (7, ModelStatus(boot_state=BootState.CONFIRMED, running_slot=0, confirmed_slot=0,
                                    trial_slot=wire.SLOT_NONE, transfer=TransferState.RECEIVING, flags=0,
                                    last_error=ErrorCode.CHUNK_CRC, sha256=IMAGE_SHA, image_size=1000,
                                    chunk_size=256, chunks_total=4, chunks_missing=3,
                                    missing=((0, 2), (3, 1)))),
    "telemetry_req": (8, TelemetryReq()),
    "telemetry": (9, Telemetry(tseq=42, uptime_ms=0x0123456789AB, inferences=100000, errors=3, latency_count=50,
                               latency_min_us=810, latency_mean_us=905, latency_p50_us=880, latency_p90_us=990,
                               latency_p99_us=1500, latency_max_us=2210, ram_free=53248, temperature_centi=-512,
                               rx_frames=77, rx_dropped=2, tx_dropped=0, running_slot=1,
                               boot_state=BootState.TESTING)),
    "telemetry_unknown": (10, Telemetry(tseq=0, uptime_ms=0, ram_free=wire.RAM_UNKNOWN,
                                        temperature_centi=wire.TEMPERATURE_UNKNOWN)),
    "event": (11, Event(level=EventLevel.WARNING, code=0x0102, uptime_ms=5000, text="flash write retried: ü")),
    "reset": (12, Reset()),
    "ack": (5, Ack(request=MsgType.MODEL_CHUNK, value=3)),
    "nack": (0xFFFF, Nack(request=MsgType.MODEL_COMMIT, error=ErrorCode.HASH, detail="sha256 mismatch")),
    "hello": (0, Hello(protocol=1, capabilities=0x0B, max_payload=1024, device_id="mcu-01",
                       firmware_version="0.3.0", model_name="digits_cnn", model_version="1.0.0",
                       model_sha256=IMAGE_SHA, model_format=1, arena_bytes=2304,
                       input=TensorDesc(dtype=DType.INT8, dims=(1, 8, 8, 1), scale=0.0625, zero_point=-128),
                       output=TensorDesc(dtype=DType.INT8, dims=(1, 10), scale=0.00390625, zero_point=-128),
                       slot_count=2, running_slot=0, boot_state=BootState.CONFIRMED, boot_flags=0,
                       slot_size=65536)),
}

# stream.bin: what a decoder must make of it (frames in order, then the drop counters)
STREAM_EXPECT = {"frames": [("ping", 2), ("pong", 2)], "bad_cobs": 1, "bad_crc": 1, "oversize": 1}


def frame(name: str) -> bytes:
    seq, msg = GOLDEN[name]
    return wire.encode_message(msg, seq)


def stream() -> bytes:
    """Garbage, a good frame, a frame with one CRC bit flipped, 3000 non-zero bytes, a good frame."""
    payload = wire.encode_payload(GOLDEN["hello_req"][1], GOLDEN["hello_req"][0])
    bad_crc = wire.cobs_encode(payload + (wire.crc32(payload) ^ 0x00000100).to_bytes(4, "little")) + b"\x00"
    return b"\x00\x13\x37 line noise\x00" + frame("ping") + bad_crc + b"\x5a" * 3000 + b"\x00" + frame("pong")


def files() -> dict[str, bytes]:
    out = {f"{name}.bin": frame(name) for name in GOLDEN}
    out["stream.bin"] = stream()
    return out


def main(argv: list[str]) -> int:
    if argv[1:] != ["--write"]:
        print(__doc__)
        return 2
    GOLDEN_DIR.mkdir(parents=True, exist_ok=True)
    for name, data in files().items():
        (GOLDEN_DIR / name).write_bytes(data)
    print(f"wrote {len(files())} files to {GOLDEN_DIR}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
