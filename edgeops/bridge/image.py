"""Model images for the demo firmware's slots (``firmware_bridge/app``, image format 1).

The firmware keeps the compiled graph (``edgeops convert --format c --codegen`` in blob mode: operators,
shapes and scalar kernel parameters are code); a slot image carries only the model's constant data, the
*blob* (weights, biases, per-channel multipliers and shifts, lookup tables), behind a 96-byte header that
binds it to the graph::

    offset size field
    0      4    magic 0x4D424F45 ("EOBM"), u32 LE
    4      2    layout version (1)
    6      2    header size (96): the blob starts there
    8      32   graph hash: SHA-256 of what the blob-mode code compiles in (codegen.compile_blob)
    40     4    blob size
    44     4    CRC-32 of the blob
    48     32   model name, NUL-padded
    80     16   model version, NUL-padded

A model fits a device when its graph hash is the firmware's: the device refuses an image for another
graph at MODEL_COMMIT (and another size at MODEL_OFFER). The demo firmware states the first 8 bytes of its
graph hash in ``HELLO.firmware_version`` (``"... graph:<16 hex>"``), so the gateway can check before it
streams anything: :func:`check_fits`.

    >>> image = build_image("digits_int8.tflite", name="digits", version="2")  # doctest: +SKIP
    >>> info = read_image(image); info.graph_hash.hex()[:16], info.blob_size   # doctest: +SKIP

The trust boundary: the device checks the image's SHA-256 (against the offer), its header (graph hash,
size, CRC) and its health check on labelled samples; it does not check signatures. The gateway checks
the bundle's signature before it builds or streams an image.

Importing this module is cheap; building an image loads the code generator (numpy, LiteRT's schema).
"""

from __future__ import annotations

import os
import re
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import DataError, ModelFormatError, UsageError

__all__ = ["IMAGE_FORMAT", "ImageInfo", "build_image", "check_fits", "graph_hash_of", "hello_graph_prefix",
           "pack_image", "read_image"]

IMAGE_FORMAT = 1  # MODEL_OFFER.format and HELLO.model_format of the demo firmware
MAGIC = 0x4D424F45  # "EOBM"
LAYOUT_VERSION = 1
HEADER = struct.Struct("<IHH32sII32s16s")
HEADER_SIZE = HEADER.size  # 96
NAME_MAX, VERSION_MAX = 32, 16
_GRAPH_IN_FIRMWARE = re.compile(r"(?:^|\s)graph:([0-9a-f]{16})(?:\s|$)")


@dataclass(frozen=True)
class ImageInfo:
    """What an image's header says (and its SHA-256, which MODEL_OFFER carries)."""

    name: str
    version: str
    graph_hash: bytes
    blob_size: int
    size: int
    sha256: bytes
    format: int = IMAGE_FORMAT


def pack_image(graph_hash: bytes, blob: bytes, *, name: str, version: str) -> bytes:
    """An image from its parts (the header, then the blob)."""
    if len(graph_hash) != 32:
        raise UsageError(f"graph_hash must be 32 bytes (a SHA-256), got {len(graph_hash)}")
    raw_name, raw_version = name.encode(), version.encode()
    if not raw_name or len(raw_name) > NAME_MAX:
        raise UsageError(f"model name {name!r} must be 1 to {NAME_MAX} bytes (UTF-8)")
    if not raw_version or len(raw_version) > VERSION_MAX:
        raise UsageError(f"model version {version!r} must be 1 to {VERSION_MAX} bytes (UTF-8)")
    header = HEADER.pack(MAGIC, LAYOUT_VERSION, HEADER_SIZE, graph_hash, len(blob), zlib.crc32(blob),
                         raw_name, raw_version)
    return header + bytes(blob)


def read_image(data: bytes) -> ImageInfo:
    """The header of an image, checked (magic, layout, sizes, the blob's CRC); :class:`DataError` otherwise."""
    import hashlib

    if len(data) < HEADER_SIZE:
        raise DataError(f"model image is {len(data)} bytes, shorter than its {HEADER_SIZE}-byte header")
    magic, layout, header_size, graph, blob_size, crc, name, version = HEADER.unpack_from(data)
    if magic != MAGIC or layout != LAYOUT_VERSION or header_size != HEADER_SIZE:
        raise DataError(f"not a firmware_bridge model image (magic 0x{magic:08x}, layout {layout}, header "
                        f"{header_size}); build one with edgeops.bridge.image.build_image")
    if len(data) != HEADER_SIZE + blob_size:
        raise DataError(f"model image is {len(data)} bytes; its header says {HEADER_SIZE} + {blob_size}")
    if zlib.crc32(data[HEADER_SIZE:]) != crc:
        raise DataError("model image blob does not match its CRC-32: the image is damaged")
    return ImageInfo(name.rstrip(b"\0").decode("utf-8", "replace"), version.rstrip(b"\0").decode("utf-8", "replace"),
                     graph, blob_size, len(data), hashlib.sha256(data).digest())


def _model_bytes(model: str | os.PathLike[str] | bytes) -> bytes:
    if isinstance(model, (bytes, bytearray)):
        return bytes(model)
    path = Path(model)
    if path.suffix.lower() == ".onnx":
        raise UsageError(f"{path} is ONNX: the firmware runs int8 models; convert it first "
                         f"(edgeops convert {path} --quantize int8 --calibration DATA -o {path.stem}_int8.tflite) "
                         "and build the image from the .tflite")
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ModelFormatError(f"cannot read model {path}: {exc}") from exc


def graph_hash_of(model: str | os.PathLike[str] | bytes) -> bytes:
    """The graph hash of an int8 model as the blob-mode code generator compiles it."""
    from ..convert.codegen import compile_blob

    return compile_blob(_model_bytes(model)).graph_hash


def build_image(model: str | os.PathLike[str] | bytes, *, name: str, version: str) -> bytes:
    """The slot image of an int8 ``.tflite`` (path or bytes) for firmware built from the same graph."""
    from ..convert.codegen import compile_blob

    compiled = compile_blob(_model_bytes(model))
    return pack_image(compiled.graph_hash, compiled.blob, name=name, version=version)


def hello_graph_prefix(hello: Any) -> str | None:
    """The graph hash prefix (16 hex digits) a demo firmware states in its HELLO, or None."""
    if int(getattr(hello, "model_format", 0)) != IMAGE_FORMAT:
        return None
    m = _GRAPH_IN_FIRMWARE.search(str(getattr(hello, "firmware_version", "")))
    return m.group(1) if m else None


def check_fits(image: bytes, hello: Any) -> ImageInfo:
    """The image's info when it fits the device that sent ``hello`` (a :class:`wire.Hello`); else
    :class:`UsageError` saying why (another image format, no model update, another graph, too large)."""
    info = read_image(image)
    if int(getattr(hello, "slot_count", 0)) == 0:
        raise UsageError(f"device {getattr(hello, 'device_id', '?')} was built without model update")
    prefix = hello_graph_prefix(hello)
    if prefix is None:
        raise UsageError(f"device {getattr(hello, 'device_id', '?')} runs image format "
                         f"{getattr(hello, 'model_format', '?')}, not the demo firmware's {IMAGE_FORMAT}")
    if info.graph_hash.hex()[:16] != prefix:
        raise UsageError(f"model image is for graph {info.graph_hash.hex()[:16]}, device "
                         f"{getattr(hello, 'device_id', '?')} runs graph {prefix}: a different model architecture "
                         "needs new firmware")
    if info.size > int(getattr(hello, "slot_size", 0)):
        raise UsageError(f"model image is {info.size} bytes, the device's slots take {hello.slot_size}")
    return info
