"""The bounds-checked flatbuffer reader under the TFLite validator, on hand-built buffers (stdlib only)."""

from __future__ import annotations

import struct

import pytest

from edgeops.errors import ModelFormatError
from edgeops.formats._flatbuffer import Flat


def flatbuffer(slots: list[int], payload: bytes, obj_size: int | None = None, tail: bytes = b"",
               vt_size: int | None = None) -> bytes:
    """Root offset, a vtable with ``slots``, then the table (soffset + payload), then ``tail``."""
    vtable = struct.pack("<HH", vt_size or 4 + 2 * len(slots), obj_size or 4 + len(payload))
    vtable += struct.pack(f"<{len(slots)}H", *slots)
    vtable += b"\0" * (-len(vtable) % 4)
    table_at = 4 + len(vtable)
    return struct.pack("<I", table_at) + vtable + struct.pack("<i", table_at - 4) + payload + tail


def root(data: bytes):
    fb = Flat(data, "t.tflite")
    return fb, fb.table(fb.deref(0, "root"), "root")


def test_scalars_and_defaults():
    _, t = root(flatbuffer([4, 0], struct.pack("<I", 7)))
    assert t.scalar(0, "I", "a") == 7
    assert t.scalar(1, "I", "b", default=3) == 3  # slot 0: absent
    assert t.scalar(5, "I", "c", default=9) == 9  # past the vtable: absent


def test_vector_string_and_nested_table():
    # payload: uoffset to a vector [1, 2], uoffset to "hi\0"
    payload_at = 4 + 8 + 4  # root + vtable (4 + 2 slots) + soffset
    vector_at, string_at = payload_at + 8, payload_at + 8 + 12
    payload = struct.pack("<II", vector_at - payload_at, string_at - (payload_at + 4))
    tail = struct.pack("<Iii", 2, 1, 2) + struct.pack("<I", 2) + b"hi\0\0"
    _, t = root(flatbuffer([4, 8], payload, tail=tail))
    assert t.ints(0, "v") == [1, 2]
    assert t.text(1, "s") == "hi"


@pytest.mark.parametrize(
    ("data", "says"),
    [
        pytest.param(flatbuffer([40], struct.pack("<I", 7)), "field outside its 8 bytes", id="field-past-table"),
        pytest.param(flatbuffer([2], struct.pack("<I", 7)), "field outside", id="field-inside-soffset"),
        pytest.param(flatbuffer([4], struct.pack("<I", 7), vt_size=5), "vtable at byte 4 has size 5",
                     id="odd-vtable-size"),
        pytest.param(flatbuffer([4], struct.pack("<I", 7), obj_size=400), "runs past the end", id="table-past-end"),
        pytest.param(struct.pack("<I", 4000) + b"\0" * 12, "runs past the end", id="root-past-end"),
        pytest.param(struct.pack("<I", 6) + b"\0" * 12, "not 4-byte aligned", id="misaligned-table"),
        pytest.param(struct.pack("<Ii", 4, 1 << 20) + b"\0" * 8, "runs past the end", id="vtable-past-end"),
    ],
)
def test_damaged_tables(data, says):
    with pytest.raises(ModelFormatError, match=says) as info:
        root(data)
    assert str(info.value).startswith("t.tflite: not a valid TFLite model")


def vector_field(tail: bytes) -> bytes:
    """A root table whose one field is a uoffset to ``tail`` (a vector or string)."""
    return flatbuffer([4], struct.pack("<I", 4), tail=tail)


@pytest.mark.parametrize(
    ("tail", "read", "says"),
    [
        pytest.param(struct.pack("<I", 1000) + b"\0" * 8, "ints", "runs past the end", id="vector-past-end"),
        pytest.param(struct.pack("<I", 3) + b"abc", "text", "terminator", id="string-at-end-without-nul"),
        pytest.param(struct.pack("<I", 2) + b"abc\0", "text", "not NUL-terminated", id="string-without-nul"),
        pytest.param(struct.pack("<I", 2) + b"\xff\xfe\0\0", "text", "not valid UTF-8", id="string-not-utf8"),
    ],
)
def test_damaged_vectors_and_strings(tail, read, says):
    _, t = root(vector_field(tail))
    with pytest.raises(ModelFormatError, match=says):
        getattr(t, read)(0, "field")


def test_offsets_that_revisit_a_table_are_capped():
    """A vector of offsets all pointing at one table would make the walk quadratic."""
    count = 50
    vector_at = 4 + 8 + 4 + 4  # root offset, vtable, soffset, the field
    shared_at = vector_at + 4 + 4 * count  # one table after the vector, reusing the root's vtable
    offsets = [shared_at - (vector_at + 4 + 4 * i) for i in range(count)]
    tail = struct.pack(f"<I{count}I", count, *offsets) + struct.pack("<iI", shared_at - 4, 0)
    fb, t = root(flatbuffer([4], struct.pack("<I", 4), tail=tail))
    assert len(t.tables(0, "tables")) == count
    fb.budget = 10
    with pytest.raises(ModelFormatError, match="far more entries"):
        t.tables(0, "tables")
