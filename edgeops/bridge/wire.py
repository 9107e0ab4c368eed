"""The firmware_bridge wire format in pure Python: framing, the streaming decoder, every message.

``firmware_bridge/WIRE.md`` is the specification; this module and the C library
(``firmware_bridge/src/eob_frame.c``, ``eob_msg.c``) implement it, and the golden frames in
``firmware_bridge/tests/golden`` are decoded and re-encoded bit for bit by both.

A frame on the line is ``COBS(payload || CRC-32(payload) as u32 LE) || 0x00`` and the payload is a
4-byte header (protocol version, message type, sequence number) followed by the message body. Every
field is little-endian and fixed-width; strings carry a u8 length, blobs a u16 length.

    >>> from edgeops.bridge import wire
    >>> data = wire.encode_message(wire.Ping(nonce=7, data=b"hi"), seq=1)
    >>> decoder = wire.FrameDecoder()
    >>> [wire.decode_message(f) for f in decoder.feed(b"line noise\\x00" + data)], decoder.dropped
    ([Ping(nonce=7, data=b'hi')], 1)

Bad input raises :class:`WireError` (a :class:`edgeops.errors.DataError`) naming the message, the
field and what was wrong; the streaming decoder never raises, it counts what it drops.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any, ClassVar

from ..errors import DataError

PROTOCOL_VERSION = 1
HEADER = struct.Struct("<BBH")  # version, type, seq
HEADER_SIZE = HEADER.size
CRC_SIZE = 4
MAX_PAYLOAD_DEFAULT = 1024  # EOB_MAX_PAYLOAD in eob_config.h: header + body, CRC excluded
SHA256_SIZE = 32
SLOT_NONE = 0xFF  # no slot: the model built into the firmware, or no trial slot
TEMPERATURE_UNKNOWN = -32768  # Telemetry.temperature_centi when the board has no sensor
RAM_UNKNOWN = 0xFFFFFFFF  # Telemetry.ram_free when the firmware cannot tell
MAX_RANK = 4


class WireError(DataError):
    """A frame or a message that does not follow firmware_bridge/WIRE.md (or a value that cannot be encoded)."""


class MsgType(IntEnum):
    """Message type codes: host requests are 0x01-0x3F, their replies the request's code | 0x80."""

    HELLO_REQ = 0x01
    PING = 0x02
    INFER_REQ = 0x03
    MODEL_OFFER = 0x04
    MODEL_CHUNK = 0x05
    MODEL_COMMIT = 0x06
    MODEL_STATUS_REQ = 0x07
    TELEMETRY_REQ = 0x08
    RESET = 0x09
    HELLO = 0x81
    PONG = 0x82
    INFER_RESP = 0x83
    MODEL_STATUS = 0x84
    TELEMETRY = 0x88
    EVENT = 0x8A
    ACK = 0xF0
    NACK = 0xF1


class ErrorCode(IntEnum):
    """NACK and INFER_RESP status codes (u16)."""

    OK = 0
    VERSION = 1  # unsupported protocol version in the header
    TYPE = 2  # unknown message type, or one this side does not accept
    MALFORMED = 3  # body too short, too long, or a field out of range
    TOO_LARGE = 4  # the reply would not fit EOB_MAX_PAYLOAD
    BUSY = 5  # a model update while a trial image is being tested
    NO_TRANSFER = 6  # MODEL_CHUNK or MODEL_COMMIT without a matching MODEL_OFFER
    CHUNK_INDEX = 7  # chunk index past the image, or wrong chunk length
    CHUNK_CRC = 8  # the chunk's data does not match its CRC-32
    INCOMPLETE = 9  # MODEL_COMMIT while chunks are still missing
    HASH = 10  # the whole image's SHA-256 differs from the offer's; the transfer restarts
    FLASH = 11  # the HAL's flash read/erase/write failed, or flash is not as written
    NO_SPACE = 12  # the image (or its chunk count) does not fit a slot
    INFER = 13  # the model's invoke failed
    INPUT_SIZE = 14  # INFER input length differs from the model's input size
    UNSUPPORTED = 15  # a feature this firmware was built without
    STATE = 16  # not valid in the current state


class BootState(IntEnum):
    """The slot table's state (WIRE.md, "Model slots")."""

    CONFIRMED = 0
    PENDING = 1
    TESTING = 2


class TransferState(IntEnum):
    NONE = 0
    RECEIVING = 1
    VERIFIED = 2


class DType(IntEnum):
    INT8 = 1
    UINT8 = 2
    INT16 = 3
    INT32 = 4
    FLOAT32 = 5


class EventLevel(IntEnum):
    DEBUG = 0
    INFO = 1
    WARNING = 2
    ERROR = 3


class Capability(IntEnum):
    """Bits of Hello.capabilities."""

    INFER = 1 << 0
    MODEL_UPDATE = 1 << 1
    TEMPERATURE = 1 << 2
    RESET = 1 << 3


@dataclass(frozen=True)
class TensorDesc:
    """A model input or output: element type, shape (rank 0 to 4, u16 dims) and int8/uint8 quantization."""

    dtype: int = DType.INT8
    dims: tuple[int, ...] = ()
    scale: float = 0.0
    zero_point: int = 0

    @property
    def elements(self) -> int:
        n = 1
        for d in self.dims:
            n *= d
        return n


# Field kinds: fixed-width integers and float, and four composites.
_SCALARS = {"u8": struct.Struct("<B"), "u16": struct.Struct("<H"), "u32": struct.Struct("<I"),
            "u64": struct.Struct("<Q"), "i16": struct.Struct("<h"), "i32": struct.Struct("<i"),
            "f32": struct.Struct("<f")}
_RANGES = {"u8": (0, 0xFF), "u16": (0, 0xFFFF), "u32": (0, 0xFFFFFFFF), "u64": (0, 0xFFFFFFFFFFFFFFFF),
           "i16": (-0x8000, 0x7FFF), "i32": (-0x80000000, 0x7FFFFFFF)}
_TENSOR_HEAD = struct.Struct("<BB")
_TENSOR_QUANT = struct.Struct("<fi")
_RANGE = struct.Struct("<II")


class Message:
    """Base of the message dataclasses: ``TYPE`` is the header's type code, ``LAYOUT`` the body's fields in order."""

    TYPE: ClassVar[MsgType]
    LAYOUT: ClassVar[tuple[tuple[str, str], ...]] = ()


@dataclass(frozen=True)
class HelloReq(Message):
    TYPE = MsgType.HELLO_REQ


@dataclass(frozen=True)
class Ping(Message):
    TYPE = MsgType.PING
    LAYOUT = (("nonce", "u32"), ("data", "blob"))
    nonce: int = 0
    data: bytes = b""


@dataclass(frozen=True)
class InferReq(Message):
    TYPE = MsgType.INFER_REQ
    LAYOUT = (("input", "blob"),)
    input: bytes = b""


@dataclass(frozen=True)
class ModelOffer(Message):
    TYPE = MsgType.MODEL_OFFER
    LAYOUT = (("image_size", "u32"), ("chunk_size", "u16"), ("format", "u8"), ("sha256", "sha256"),
              ("name", "str"), ("version", "str"))
    image_size: int = 0
    chunk_size: int = 0
    format: int = 0
    sha256: bytes = bytes(SHA256_SIZE)
    name: str = ""
    version: str = ""

    @property
    def tag(self) -> int:
        """The transfer tag every MODEL_CHUNK carries: the SHA-256's first 4 bytes as a u32 LE."""
        return transfer_tag(self.sha256)


@dataclass(frozen=True)
class ModelChunk(Message):
    TYPE = MsgType.MODEL_CHUNK
    LAYOUT = (("tag", "u32"), ("index", "u32"), ("crc32", "u32"), ("data", "blob"))
    tag: int = 0
    index: int = 0
    crc32: int = 0
    data: bytes = b""


@dataclass(frozen=True)
class ModelCommit(Message):
    TYPE = MsgType.MODEL_COMMIT
    LAYOUT = (("sha256", "sha256"),)
    sha256: bytes = bytes(SHA256_SIZE)


@dataclass(frozen=True)
class ModelStatusReq(Message):
    TYPE = MsgType.MODEL_STATUS_REQ


@dataclass(frozen=True)
class TelemetryReq(Message):
    TYPE = MsgType.TELEMETRY_REQ


@dataclass(frozen=True)
class Reset(Message):
    TYPE = MsgType.RESET


@dataclass(frozen=True)
class Hello(Message):
    TYPE = MsgType.HELLO
    LAYOUT = (("protocol", "u8"), ("capabilities", "u32"), ("max_payload", "u16"), ("device_id", "str"),
              ("firmware_version", "str"), ("model_name", "str"), ("model_version", "str"),
              ("model_sha256", "sha256"), ("model_format", "u8"), ("arena_bytes", "u32"),
              ("input", "tensor"), ("output", "tensor"), ("slot_count", "u8"), ("running_slot", "u8"),
              ("boot_state", "u8"), ("boot_flags", "u8"), ("slot_size", "u32"))
    protocol: int = PROTOCOL_VERSION
    capabilities: int = 0
    max_payload: int = MAX_PAYLOAD_DEFAULT
    device_id: str = ""
    firmware_version: str = ""
    model_name: str = ""
    model_version: str = ""
    model_sha256: bytes = bytes(SHA256_SIZE)
    model_format: int = 0
    arena_bytes: int = 0
    input: TensorDesc = field(default_factory=TensorDesc)
    output: TensorDesc = field(default_factory=TensorDesc)
    slot_count: int = 0
    running_slot: int = SLOT_NONE
    boot_state: int = BootState.CONFIRMED
    boot_flags: int = 0
    slot_size: int = 0


@dataclass(frozen=True)
class Pong(Message):
    TYPE = MsgType.PONG
    LAYOUT = Ping.LAYOUT
    nonce: int = 0
    data: bytes = b""


@dataclass(frozen=True)
class InferResp(Message):
    TYPE = MsgType.INFER_RESP
    LAYOUT = (("status", "u16"), ("latency_us", "u32"), ("output", "blob"))
    status: int = ErrorCode.OK
    latency_us: int = 0
    output: bytes = b""


@dataclass(frozen=True)
class ModelStatus(Message):
    TYPE = MsgType.MODEL_STATUS
    LAYOUT = (("boot_state", "u8"), ("running_slot", "u8"), ("confirmed_slot", "u8"), ("trial_slot", "u8"),
              ("transfer", "u8"), ("flags", "u8"), ("last_error", "u16"), ("sha256", "sha256"),
              ("image_size", "u32"), ("chunk_size", "u16"), ("chunks_total", "u32"), ("chunks_missing", "u32"),
              ("missing", "ranges"))
    FLAG_RANGES_TRUNCATED: ClassVar[int] = 1 << 0
    FLAG_REVERTED: ClassVar[int] = 1 << 1
    boot_state: int = BootState.CONFIRMED
    running_slot: int = SLOT_NONE
    confirmed_slot: int = SLOT_NONE
    trial_slot: int = SLOT_NONE
    transfer: int = TransferState.NONE
    flags: int = 0
    last_error: int = ErrorCode.OK
    sha256: bytes = bytes(SHA256_SIZE)
    image_size: int = 0
    chunk_size: int = 0
    chunks_total: int = 0
    chunks_missing: int = 0
    missing: tuple[tuple[int, int], ...] = ()  # (first chunk, count) ranges, ascending


@dataclass(frozen=True)
class Telemetry(Message):
    TYPE = MsgType.TELEMETRY
    LAYOUT = (("tseq", "u32"), ("uptime_ms", "u64"), ("inferences", "u32"), ("errors", "u32"),
              ("latency_count", "u32"), ("latency_min_us", "u32"), ("latency_mean_us", "u32"),
              ("latency_p50_us", "u32"), ("latency_p90_us", "u32"), ("latency_p99_us", "u32"),
              ("latency_max_us", "u32"), ("ram_free", "u32"), ("temperature_centi", "i16"),
              ("rx_frames", "u32"), ("rx_dropped", "u32"), ("tx_dropped", "u32"), ("running_slot", "u8"),
              ("boot_state", "u8"))
    tseq: int = 0
    uptime_ms: int = 0
    inferences: int = 0
    errors: int = 0
    latency_count: int = 0
    latency_min_us: int = 0
    latency_mean_us: int = 0
    latency_p50_us: int = 0
    latency_p90_us: int = 0
    latency_p99_us: int = 0
    latency_max_us: int = 0
    ram_free: int = RAM_UNKNOWN
    temperature_centi: int = TEMPERATURE_UNKNOWN
    rx_frames: int = 0
    rx_dropped: int = 0
    tx_dropped: int = 0
    running_slot: int = SLOT_NONE
    boot_state: int = BootState.CONFIRMED


@dataclass(frozen=True)
class Event(Message):
    TYPE = MsgType.EVENT
    LAYOUT = (("level", "u8"), ("code", "u16"), ("uptime_ms", "u64"), ("text", "str"))
    level: int = EventLevel.INFO
    code: int = 0
    uptime_ms: int = 0
    text: str = ""


@dataclass(frozen=True)
class Ack(Message):
    TYPE = MsgType.ACK
    LAYOUT = (("request", "u8"), ("value", "u32"))
    request: int = 0
    value: int = 0  # per request: MODEL_CHUNK -> chunks still missing; otherwise 0


@dataclass(frozen=True)
class Nack(Message):
    TYPE = MsgType.NACK
    LAYOUT = (("request", "u8"), ("error", "u16"), ("detail", "str"))
    request: int = 0
    error: int = ErrorCode.MALFORMED
    detail: str = ""


MESSAGES: dict[int, type[Message]] = {cls.TYPE: cls for cls in (
    HelloReq, Ping, InferReq, ModelOffer, ModelChunk, ModelCommit, ModelStatusReq, TelemetryReq, Reset,
    Hello, Pong, InferResp, ModelStatus, Telemetry, Event, Ack, Nack)}


@dataclass(frozen=True)
class Frame:
    """One frame that passed the CRC: the header's fields and the undecoded body."""

    version: int
    type: int
    seq: int
    body: bytes

    @property
    def payload(self) -> bytes:
        return HEADER.pack(self.version, self.type, self.seq) + self.body


# -- helpers ------------------------------------------------------------------------------------------------------

def crc32(data: bytes) -> int:
    """CRC-32/ISO-HDLC (the IEEE 802.3, zlib and PNG CRC): reflected 0x04C11DB7, init and xorout 0xFFFFFFFF."""
    return zlib.crc32(data) & 0xFFFFFFFF


def transfer_tag(sha256: bytes) -> int:
    """A MODEL_CHUNK's tag: the image SHA-256's first four bytes read as a u32 LE."""
    if len(sha256) != SHA256_SIZE:
        raise WireError(f"a SHA-256 is {SHA256_SIZE} bytes, got {len(sha256)}")
    return int(struct.unpack_from("<I", sha256)[0])


def max_chunk_size(max_payload: int = MAX_PAYLOAD_DEFAULT) -> int:
    """The largest MODEL_CHUNK data a device with this ``max_payload`` takes: a multiple of 8, header and fields
    (18 bytes) subtracted."""
    size = (max_payload - HEADER_SIZE - 14) // 8 * 8
    if size < 8:
        raise WireError(f"max_payload {max_payload} leaves no room for a model chunk")
    return min(size, 0xFFF8)


def max_encoded_size(max_payload: int = MAX_PAYLOAD_DEFAULT) -> int:
    """Bytes a frame of ``max_payload`` payload bytes can take on the line, the 0x00 delimiter included."""
    n = max_payload + CRC_SIZE
    return n + n // 254 + 1 + 1


def cobs_encode(data: bytes) -> bytes:
    """Consistent Overhead Byte Stuffing (Cheshire and Baker, 1999): the result has no 0x00 byte.

    The canonical form of WIRE.md: a block of 254 non-zero bytes that ends the data is not followed by
    an empty ``0x01`` block (the decoder accepts both).
    """
    out = bytearray()
    i, n = 0, len(data)
    while True:
        zero = data.find(0, i, i + 254)
        if zero >= 0:  # a block that ends in a zero
            out.append(zero - i + 1)
            out += data[i:zero]
            i = zero + 1
            continue
        end = min(i + 254, n)  # a run of non-zero bytes: full (254, code 0xFF) or the last
        out.append(end - i + 1)
        out += data[i:end]
        i = end
        if i == n:
            return bytes(out)


def cobs_decode(data: bytes) -> bytes:
    """Undo :func:`cobs_encode`; :class:`WireError` for a 0x00 byte or a block that runs past the end."""
    out = bytearray()
    i = 0
    n = len(data)
    while i < n:
        code = data[i]
        if code == 0:
            raise WireError(f"COBS: a 0x00 byte inside the frame at offset {i}")
        end = i + code
        if end > n:
            raise WireError(f"COBS: a block of {code - 1} bytes at offset {i} runs past the frame's {n} bytes")
        block = data[i + 1:end]
        if 0 in block:
            raise WireError(f"COBS: a 0x00 byte inside the frame at offset {i + 1 + block.index(0)}")
        out += block
        i = end
        if code < 255 and i < n:
            out.append(0)
    return bytes(out)


# -- bodies -------------------------------------------------------------------------------------------------------

def _pack_field(out: bytearray, msg: str, name: str, kind: str, value: Any) -> None:
    where = f"{msg}.{name}"
    if kind in _SCALARS:
        if kind == "f32":
            try:
                out += _SCALARS[kind].pack(value)
            except (struct.error, TypeError, OverflowError) as exc:
                raise WireError(f"{where} must be a float32, got {value!r}") from exc
            return
        lo, hi = _RANGES[kind]
        if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
            raise WireError(f"{where} must be an integer in [{lo}, {hi}] ({kind}), got {value!r}")
        out += _SCALARS[kind].pack(value)
    elif kind == "str":
        raw = value.encode("utf-8") if isinstance(value, str) else None
        if raw is None or len(raw) > 255:
            raise WireError(f"{where} must be a str of at most 255 UTF-8 bytes, got {value!r:.80}")
        out.append(len(raw))
        out += raw
    elif kind == "blob":
        if not isinstance(value, (bytes, bytearray, memoryview)) or len(value) > 0xFFFF:
            raise WireError(f"{where} must be bytes of at most 65535, got {type(value).__name__}"
                            f"{' of ' + str(len(value)) if hasattr(value, '__len__') else ''}")
        out += struct.pack("<H", len(value))
        out += value
    elif kind == "sha256":
        if not isinstance(value, (bytes, bytearray)) or len(value) != SHA256_SIZE:
            raise WireError(f"{where} must be {SHA256_SIZE} bytes, got {value!r:.80}")
        out += value
    elif kind == "tensor":
        if not isinstance(value, TensorDesc) or len(value.dims) > MAX_RANK:
            raise WireError(f"{where} must be a TensorDesc of rank at most {MAX_RANK}, got {value!r}")
        _pack_field(out, msg, f"{name}.dtype", "u8", value.dtype)
        _pack_field(out, msg, f"{name}.rank", "u8", len(value.dims))
        for i, d in enumerate(value.dims):
            _pack_field(out, msg, f"{name}.dims[{i}]", "u16", d)
        _pack_field(out, msg, f"{name}.scale", "f32", value.scale)
        _pack_field(out, msg, f"{name}.zero_point", "i32", value.zero_point)
    elif kind == "ranges":
        if len(value) > 255:
            raise WireError(f"{where}: at most 255 ranges, got {len(value)}")
        out.append(len(value))
        for i, pair in enumerate(value):
            if len(pair) != 2:
                raise WireError(f"{where}[{i}] must be (first, count), got {pair!r}")
            _pack_field(out, msg, f"{name}[{i}].first", "u32", pair[0])
            _pack_field(out, msg, f"{name}[{i}].count", "u32", pair[1])
    else:  # pragma: no cover - a typo in a LAYOUT
        raise AssertionError(kind)


class _Reader:
    def __init__(self, body: bytes, msg: str, text_errors: str):
        self.body = body
        self.pos = 0
        self.msg = msg
        self.text_errors = text_errors

    def take(self, n: int, name: str) -> bytes:
        if self.pos + n > len(self.body):
            raise WireError(f"{self.msg} body truncated at field {name!r}: needs {n} bytes at offset {self.pos}, "
                            f"the body has {len(self.body)}")
        chunk = self.body[self.pos:self.pos + n]
        self.pos += n
        return chunk

    def scalar(self, kind: str, name: str) -> Any:
        s = _SCALARS[kind]
        return s.unpack(self.take(s.size, name))[0]


def _unpack_field(r: _Reader, name: str, kind: str) -> Any:
    if kind in _SCALARS:
        return r.scalar(kind, name)
    if kind == "str":
        raw = r.take(r.scalar("u8", name), name)
        try:
            return raw.decode("utf-8", errors=r.text_errors)
        except UnicodeDecodeError as exc:
            raise WireError(f"{r.msg}.{name} is not UTF-8: {raw!r:.80}") from exc
    if kind == "blob":
        return bytes(r.take(r.scalar("u16", name), name))
    if kind == "sha256":
        return bytes(r.take(SHA256_SIZE, name))
    if kind == "tensor":
        dtype, rank = _TENSOR_HEAD.unpack(r.take(_TENSOR_HEAD.size, name))
        if rank > MAX_RANK:
            raise WireError(f"{r.msg}.{name} has rank {rank}, at most {MAX_RANK} is allowed")
        dims = struct.unpack(f"<{rank}H", r.take(2 * rank, name))
        scale, zero_point = _TENSOR_QUANT.unpack(r.take(_TENSOR_QUANT.size, name))
        return TensorDesc(dtype=dtype, dims=tuple(dims), scale=scale, zero_point=zero_point)
    if kind == "ranges":
        count = r.scalar("u8", name)
        return tuple(_RANGE.unpack(r.take(_RANGE.size, name)) for _ in range(count))
    raise AssertionError(kind)  # pragma: no cover


def encode_body(msg: Message) -> bytes:
    """The body of ``msg`` (no header): its LAYOUT's fields in order, little-endian."""
    if not isinstance(msg, Message) or type(msg) not in MESSAGES.values():
        raise WireError(f"not a firmware_bridge message: {msg!r:.80}")
    out = bytearray()
    for name, kind in msg.LAYOUT:
        _pack_field(out, type(msg).__name__, name, kind, getattr(msg, name))
    return bytes(out)


def decode_body(type_code: int, body: bytes, *, text_errors: str = "strict") -> Message:
    """The message of type ``type_code`` in ``body``; every byte must be used.

    ``text_errors`` is how a string that is not UTF-8 decodes (:meth:`bytes.decode`'s ``errors``): the
    default refuses it, ``"replace"`` keeps a device's EVENT text however mangled.
    """
    cls = MESSAGES.get(type_code)
    if cls is None:
        raise WireError(f"unknown message type 0x{type_code:02X}")
    r = _Reader(body, cls.__name__, text_errors)
    values = {name: _unpack_field(r, name, kind) for name, kind in cls.LAYOUT}
    if r.pos != len(body):
        raise WireError(f"{cls.__name__} body has {len(body) - r.pos} bytes after its last field "
                        f"({len(body)} bytes, the layout ends at {r.pos})")
    return cls(**values)


# -- frames -------------------------------------------------------------------------------------------------------

def encode_payload(msg: Message, seq: int, *, version: int = PROTOCOL_VERSION) -> bytes:
    """Header and body of ``msg``: what the CRC covers."""
    if isinstance(seq, bool) or not isinstance(seq, int) or not 0 <= seq <= 0xFFFF:
        raise WireError(f"seq must be an integer in [0, 65535], got {seq!r}")
    if not isinstance(version, int) or not 0 <= version <= 0xFF:
        raise WireError(f"version must be an integer in [0, 255], got {version!r}")
    return HEADER.pack(version, msg.TYPE, seq) + encode_body(msg)


def encode_frame(payload: bytes, *, max_payload: int = MAX_PAYLOAD_DEFAULT) -> bytes:
    """The bytes on the line for ``payload``: COBS(payload + CRC-32 LE) and the 0x00 delimiter."""
    if len(payload) < HEADER_SIZE:
        raise WireError(f"a payload has at least the {HEADER_SIZE}-byte header, got {len(payload)} bytes")
    if len(payload) > max_payload:
        raise WireError(f"payload of {len(payload)} bytes exceeds the maximum of {max_payload} "
                        f"(EOB_MAX_PAYLOAD); split the data or raise the limit on both sides")
    return cobs_encode(bytes(payload) + struct.pack("<I", crc32(payload))) + b"\x00"


def encode_message(msg: Message, seq: int, *, max_payload: int = MAX_PAYLOAD_DEFAULT,
                   version: int = PROTOCOL_VERSION) -> bytes:
    """``msg`` as a complete frame on the line (delimiter included)."""
    return encode_frame(encode_payload(msg, seq, version=version), max_payload=max_payload)


def decode_frame(data: bytes, *, max_payload: int = MAX_PAYLOAD_DEFAULT) -> Frame:
    """One frame (the COBS bytes, with or without its 0x00 delimiter) checked and split into header and body."""
    raw = bytes(data)
    if raw.endswith(b"\x00"):
        raw = raw[:-1]
    if len(raw) > max_encoded_size(max_payload) - 1:
        raise WireError(f"frame of {len(raw)} bytes is longer than a {max_payload}-byte payload can encode to")
    decoded = cobs_decode(raw)
    if len(decoded) < HEADER_SIZE + CRC_SIZE:
        raise WireError(f"frame too short: {len(decoded)} bytes decoded, a header and a CRC need "
                        f"{HEADER_SIZE + CRC_SIZE}")
    payload, (crc,) = decoded[:-CRC_SIZE], struct.unpack("<I", decoded[-CRC_SIZE:])
    if len(payload) > max_payload:
        raise WireError(f"payload of {len(payload)} bytes exceeds the maximum of {max_payload}")
    if crc32(payload) != crc:
        raise WireError(f"CRC mismatch: the frame says 0x{crc:08X}, its payload gives 0x{crc32(payload):08X}")
    version, type_code, seq = HEADER.unpack_from(payload)
    return Frame(version=version, type=type_code, seq=seq, body=payload[HEADER_SIZE:])


def decode_message(frame: Frame, *, text_errors: str = "strict") -> Message:
    """The message in a frame; :class:`WireError` for another protocol version, an unknown type or a bad body
    (``text_errors``: see :func:`decode_body`)."""
    if frame.version != PROTOCOL_VERSION:
        raise WireError(f"protocol version {frame.version} is not supported (this side speaks "
                        f"{PROTOCOL_VERSION}); update the firmware or the gateway")
    return decode_body(frame.type, frame.body, text_errors=text_errors)


class FrameDecoder:
    """Streaming frame decoder: :meth:`feed` any bytes, get the frames that passed the CRC.

    Garbage between frames, bad CRCs, broken COBS and oversize frames are skipped and counted, never
    raised; the decoder resynchronises on the next 0x00. An empty frame (two 0x00 in a row) is not an error:
    senders may start with a 0x00 to flush a receiver's half-received garbage.
    """

    def __init__(self, max_payload: int = MAX_PAYLOAD_DEFAULT):
        if max_payload < HEADER_SIZE:
            raise WireError(f"max_payload must be at least {HEADER_SIZE}, got {max_payload}")
        self.max_payload = max_payload
        self._limit = max_encoded_size(max_payload) - 1  # COBS bytes of the largest frame
        self._buf = bytearray()
        self._skipping = False  # an oversize frame: drop everything up to the next 0x00
        self.frames = 0
        self.bad_crc = 0
        self.bad_cobs = 0  # broken COBS or shorter than a header and a CRC
        self.oversize = 0

    @property
    def dropped(self) -> int:
        return self.bad_crc + self.bad_cobs + self.oversize

    def reset(self) -> None:
        """Forget a half-received frame (the counters stay)."""
        self._buf.clear()
        self._skipping = False

    def feed(self, data: bytes) -> list[Frame]:
        out: list[Frame] = []
        parts = bytes(data).split(b"\x00")
        for i, part in enumerate(parts):
            last = i == len(parts) - 1
            if not self._skipping:
                self._buf += part
                if len(self._buf) > self._limit:
                    self.oversize += 1
                    self._buf.clear()
                    self._skipping = True
            if last:
                break
            # a delimiter ends the frame
            if self._skipping:
                self._skipping = False
            elif self._buf:
                frame = self._finish(bytes(self._buf))
                if frame is not None:
                    out.append(frame)
            self._buf.clear()
        return out

    def _finish(self, raw: bytes) -> Frame | None:
        try:
            decoded = cobs_decode(raw)
        except WireError:
            self.bad_cobs += 1
            return None
        if len(decoded) < HEADER_SIZE + CRC_SIZE:
            self.bad_cobs += 1
            return None
        if len(decoded) - CRC_SIZE > self.max_payload:
            self.oversize += 1
            return None
        payload = decoded[:-CRC_SIZE]
        if crc32(payload) != int.from_bytes(decoded[-CRC_SIZE:], "little"):
            self.bad_crc += 1
            return None
        self.frames += 1
        version, type_code, seq = HEADER.unpack_from(payload)
        return Frame(version=version, type=type_code, seq=seq, body=payload[HEADER_SIZE:])


__all__ = ["PROTOCOL_VERSION", "HEADER_SIZE", "CRC_SIZE", "MAX_PAYLOAD_DEFAULT", "SHA256_SIZE", "SLOT_NONE",
           "TEMPERATURE_UNKNOWN", "RAM_UNKNOWN", "MAX_RANK", "WireError", "MsgType", "ErrorCode", "BootState",
           "TransferState", "DType", "EventLevel", "Capability", "TensorDesc", "Message", "HelloReq", "Ping",
           "InferReq", "ModelOffer", "ModelChunk", "ModelCommit", "ModelStatusReq", "TelemetryReq", "Reset",
           "Hello", "Pong", "InferResp", "ModelStatus", "Telemetry", "Event", "Ack", "Nack", "MESSAGES", "Frame",
           "crc32", "transfer_tag", "max_chunk_size", "max_encoded_size", "cobs_encode", "cobs_decode", "encode_body",
           "decode_body", "encode_payload", "encode_frame", "encode_message", "decode_frame", "decode_message",
           "FrameDecoder"]
