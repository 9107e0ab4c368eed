"""Model images for the demo firmware (edgeops.bridge.image): built from an int8 .tflite, read back and
checked, refused with a clear error when damaged or made for another graph or device."""

from __future__ import annotations

import hashlib

import pytest
from hostdevice import ROOT

from edgeops.bridge import image as img
from edgeops.bridge import wire
from edgeops.errors import DataError, UsageError

MODEL = ROOT / "examples" / "models" / "digits_cnn_int8.tflite"
pytest.importorskip("ai_edge_litert")


def hello(**kw) -> wire.Hello:
    graph = img.graph_hash_of(MODEL).hex()[:16]
    base = dict(device_id="mcu-01", firmware_version=f"host-0.1 graph:{graph}", model_format=1, slot_count=2,
                slot_size=16384)
    return wire.Hello(**{**base, **kw})


def test_build_and_read_back():
    data = img.build_image(MODEL, name="digits", version="2.1")
    info = img.read_image(data)
    assert (info.name, info.version, info.format) == ("digits", "2.1", img.IMAGE_FORMAT)
    assert info.graph_hash == img.graph_hash_of(MODEL) and info.size == len(data) == img.HEADER_SIZE + info.blob_size
    assert info.sha256 == hashlib.sha256(data).digest()
    assert img.build_image(MODEL.read_bytes(), name="digits", version="2.1") == data  # bytes or path, deterministic
    assert img.check_fits(data, hello()) == info


@pytest.mark.parametrize("damage, message", [
    (lambda d: d[:50], "shorter than its 96-byte header"),
    (lambda d: b"XXXX" + d[4:], "not a firmware_bridge model image"),
    (lambda d: d + b"\0", "its header says"),
    (lambda d: d[:-1] + bytes([d[-1] ^ 1]), "does not match its CRC-32"),
], ids=["short", "magic", "size", "crc"])
def test_damaged_images_are_refused(damage, message):
    data = img.build_image(MODEL, name="digits", version="1")
    with pytest.raises(DataError, match=message):
        img.read_image(damage(data))


def test_images_that_do_not_fit_the_device_are_refused():
    data = img.build_image(MODEL, name="digits", version="1")
    with pytest.raises(UsageError, match="another|graph"):
        img.check_fits(data, hello(firmware_version="host-0.1 graph:0123456789abcdef"))
    with pytest.raises(UsageError, match="without model update"):
        img.check_fits(data, hello(slot_count=0))
    with pytest.raises(UsageError, match="image format"):
        img.check_fits(data, hello(model_format=0))
    with pytest.raises(UsageError, match="slots take"):
        img.check_fits(data, hello(slot_size=1000))
    assert img.hello_graph_prefix(hello(firmware_version="1.0")) is None


def test_bad_names_and_onnx_are_refused(tmp_path):
    with pytest.raises(UsageError, match="1 to 32 bytes"):
        img.build_image(MODEL, name="x" * 33, version="1")
    with pytest.raises(UsageError, match="1 to 16 bytes"):
        img.build_image(MODEL, name="digits", version="")
    with pytest.raises(UsageError, match="convert it first"):
        img.build_image(ROOT / "examples" / "models" / "digits_cnn.onnx", name="d", version="1")
