"""The Python codec of firmware_bridge/WIRE.md: golden frames, COBS, CRC, the streaming decoder, bad input."""

from __future__ import annotations

import struct

import pytest
from bridge_golden import GOLDEN, GOLDEN_DIR, STREAM_EXPECT, files, frame

from edgeops.bridge import wire
from edgeops.errors import DataError


@pytest.mark.parametrize("name", sorted(GOLDEN))
def test_golden_frame_decodes_to_its_values_and_reencodes_identically(name):
    data = (GOLDEN_DIR / f"{name}.bin").read_bytes()
    seq, expected = GOLDEN[name]
    f = wire.decode_frame(data)
    assert (f.version, f.type, f.seq) == (wire.PROTOCOL_VERSION, expected.TYPE, seq)
    msg = wire.decode_message(f)
    assert msg == expected
    assert wire.encode_message(msg, f.seq) == data


def test_golden_files_are_what_the_values_encode_to():
    on_disk = {p.name: p.read_bytes() for p in GOLDEN_DIR.glob("*.bin")}
    assert on_disk == files(), "golden files drifted: regenerate with tests/bridge/bridge_golden.py --write"


def test_every_message_type_has_a_golden_frame():
    assert {msg.TYPE for _, msg in GOLDEN.values()} == set(wire.MESSAGES)


def test_stream_with_garbage_bad_crc_and_oversize_resyncs():
    dec = wire.FrameDecoder()
    frames = dec.feed((GOLDEN_DIR / "stream.bin").read_bytes())
    assert [(wire.decode_message(f), f.seq) for f in frames] == [
        (GOLDEN[n][1], s) for n, s in STREAM_EXPECT["frames"]]
    assert (dec.bad_cobs, dec.bad_crc, dec.oversize) == (
        STREAM_EXPECT["bad_cobs"], STREAM_EXPECT["bad_crc"], STREAM_EXPECT["oversize"])
    assert dec.frames == len(STREAM_EXPECT["frames"])


@pytest.mark.parametrize("chunk", [1, 2, 7, 255, 4096])
def test_decoder_gives_the_same_frames_whatever_the_read_size(chunk):
    data = (GOLDEN_DIR / "stream.bin").read_bytes() + b"".join(frame(n) for n in sorted(GOLDEN))
    whole = wire.FrameDecoder().feed(data)
    dec = wire.FrameDecoder()
    pieces = [f for i in range(0, len(data), chunk) for f in dec.feed(data[i:i + chunk])]
    assert pieces == whole
    assert len(whole) == len(STREAM_EXPECT["frames"]) + len(GOLDEN)
    assert dec.dropped == 3


def test_empty_frames_are_not_errors():
    dec = wire.FrameDecoder()
    assert dec.feed(b"\x00\x00\x00" + frame("ping") + b"\x00") == [wire.decode_frame(frame("ping"))]
    assert dec.dropped == 0


def test_oversize_frame_is_dropped_and_the_next_one_decoded():
    dec = wire.FrameDecoder(max_payload=64)
    big = wire.encode_message(wire.Ping(data=bytes(200)), seq=1, max_payload=4096)
    got = dec.feed(big + frame("pong"))
    assert [f.type for f in got] == [wire.MsgType.PONG]
    assert dec.oversize == 1


def test_payload_within_cobs_limit_but_over_max_is_oversize():
    # the line limit allows for one COBS code per 254 bytes; zeros cost no extra code, so a 301-byte
    # payload of zeros passes the line limit of a 300-byte maximum while its payload does not
    dec = wire.FrameDecoder(max_payload=300)
    data = wire.encode_message(wire.Ping(data=bytes(291)), seq=1, max_payload=400)
    assert len(data) <= wire.max_encoded_size(300)
    assert dec.feed(data) == [] and dec.oversize == 1


@pytest.mark.parametrize("n", [0, 1, 2, 253, 254, 255, 256, 507, 508, 509, 1000])
@pytest.mark.parametrize("fill", [0x00, 0x01, 0xFF])
def test_cobs_round_trip_at_block_boundaries(n, fill):
    data = bytes([fill]) * n
    enc = wire.cobs_encode(data)
    assert 0 not in enc
    assert wire.cobs_decode(enc) == data
    assert len(enc) <= n + n // 254 + 1


def test_cobs_canonical_form_has_no_trailing_empty_block():
    assert wire.cobs_encode(b"") == b"\x01"
    assert wire.cobs_encode(b"\x00") == b"\x01\x01"
    assert wire.cobs_encode(b"\x11\x22\x00\x33") == b"\x03\x11\x22\x02\x33"
    assert wire.cobs_encode(b"\x01" * 254) == b"\xff" + b"\x01" * 254
    assert wire.cobs_encode(b"\x01" * 255) == b"\xff" + b"\x01" * 254 + b"\x02\x01"
    # the non-canonical trailing 0x01 decodes to the same bytes
    assert wire.cobs_decode(b"\xff" + b"\x01" * 254 + b"\x01") == b"\x01" * 254


def test_crc32_is_the_ieee_crc():
    assert wire.crc32(b"123456789") == 0xCBF43926


@pytest.mark.parametrize("raw, match", [
    (b"\x05\x01\x02", "runs past"),
    (b"\x02\x00\x01", "0x00 byte"),
    (b"\x03\x01\x02", "too short"),
])
def test_decode_frame_rejects_broken_cobs(raw, match):
    with pytest.raises(wire.WireError, match=match):
        wire.decode_frame(raw)


def test_decode_frame_rejects_a_flipped_bit_with_the_crcs():
    data = bytearray(frame("telemetry"))
    data[20] ^= 0x04
    with pytest.raises(wire.WireError, match="CRC mismatch: the frame says 0x"):
        wire.decode_frame(bytes(data))


def _frame_of(type_code: int, body: bytes, version: int = 1) -> wire.Frame:
    return wire.decode_frame(wire.encode_frame(struct.pack("<BBH", version, type_code, 9) + body))


def test_bad_messages_say_what_is_wrong():
    with pytest.raises(wire.WireError, match="protocol version 2 is not supported"):
        wire.decode_message(_frame_of(0x02, b"", version=2))
    with pytest.raises(wire.WireError, match="unknown message type 0x7E"):
        wire.decode_message(_frame_of(0x7E, b""))
    with pytest.raises(wire.WireError, match="Ping body truncated at field 'data'"):
        wire.decode_message(_frame_of(0x02, b"\x01\x00\x00\x00\x05\x00ab"))
    with pytest.raises(wire.WireError, match="Ping body has 1 bytes after its last field"):
        wire.decode_message(_frame_of(0x02, b"\x01\x00\x00\x00\x00\x00!"))
    mangled = _frame_of(0x8A, b"\x01\x00\x00" + bytes(8) + b"\x02\xff\xfe")
    with pytest.raises(wire.WireError, match="Event.text is not UTF-8"):
        wire.decode_message(mangled)
    assert wire.decode_message(mangled, text_errors="replace").text == "\ufffd\ufffd"
    hello = bytearray(wire.encode_body(GOLDEN["hello"][1]))
    rank_at = hello.index(b"\x01\x04\x01\x00\x08\x00")  # input: int8, rank 4, dims 1, 8, ...
    hello[rank_at + 1] = 5
    with pytest.raises(wire.WireError, match="Hello.input has rank 5"):
        wire.decode_message(_frame_of(0x81, bytes(hello)))
    assert issubclass(wire.WireError, DataError)


@pytest.mark.parametrize("msg, match", [
    (wire.Ping(nonce=-1), r"Ping.nonce must be an integer in \[0, 4294967295\]"),
    (wire.Ping(nonce=True), "Ping.nonce must be an integer"),
    (wire.Ping(data="text"), "Ping.data must be bytes"),
    (wire.Ping(data=bytes(70000)), "Ping.data must be bytes of at most 65535"),
    (wire.Event(text="x" * 256), "Event.text must be a str of at most 255"),
    (wire.ModelCommit(sha256=b"short"), "ModelCommit.sha256 must be 32 bytes"),
    (wire.Telemetry(temperature_centi=40000), r"Telemetry.temperature_centi must be an integer in \[-32768"),
    (wire.Hello(input=wire.TensorDesc(dims=(1, 2, 3, 4, 5))), "Hello.input must be a TensorDesc of rank at most 4"),
    (wire.Hello(input=wire.TensorDesc(dims=(70000,))), r"Hello.input.dims\[0\] must be an integer"),
    (wire.ModelStatus(missing=((1, 2, 3),)), r"ModelStatus.missing\[0\] must be \(first, count\)"),
])
def test_encode_refuses_values_that_do_not_fit(msg, match):
    with pytest.raises(wire.WireError, match=match):
        wire.encode_message(msg, seq=1)


def test_encode_refuses_a_payload_over_the_maximum_and_a_bad_seq():
    with pytest.raises(wire.WireError, match="exceeds the maximum of 1024"):
        wire.encode_message(wire.InferReq(input=bytes(1100)), seq=1)
    assert wire.decode_frame(wire.encode_message(wire.InferReq(input=bytes(1100)), seq=1, max_payload=2048),
                             max_payload=2048).type == wire.MsgType.INFER_REQ
    with pytest.raises(wire.WireError, match="seq must be an integer in"):
        wire.encode_message(wire.Ping(), seq=65536)
    with pytest.raises(wire.WireError, match="not a firmware_bridge message"):
        wire.encode_body("PING")  # type: ignore[arg-type]


def test_transfer_tag_is_the_sha_prefix():
    sha = bytes(range(32))
    assert wire.transfer_tag(sha) == 0x03020100 == wire.ModelOffer(sha256=sha).tag


@pytest.mark.parametrize("max_payload, size", [(1024, 1000), (256, 232), (64, 40)])
def test_max_chunk_size_fits_the_payload_in_whole_write_units(max_payload, size):
    assert wire.max_chunk_size(max_payload) == size
    chunk = wire.ModelChunk(data=bytes(size))
    assert len(wire.encode_payload(chunk, 0)) <= max_payload
    wire.encode_message(chunk, 0, max_payload=max_payload)
    with pytest.raises(wire.WireError, match="no room for a model chunk"):
        wire.max_chunk_size(20)
