"""The strict tar reader on headers made by hand: number fields, checksums, ustar prefixes, pax records.

Each test guards a change the rest of the suite let through (found by
``python tools/mutation.py tar``): the reader must agree with what the header says, byte for byte.
"""

from __future__ import annotations

import io
import re
import tarfile

import pytest

from edgeops.bundle import _tar
from edgeops.bundle.manifest import BundleError


def header(name: bytes = b"model.onnx", size: bytes | None = None, *, data_len: int = 0, kind: bytes = b"0",
           prefix: bytes = b"", magic: bytes = b"ustar\x0000", checksum: str = "unsigned", uname: bytes = b"edgeops\0") -> bytes:
    """One 512-byte ustar header with ``size`` written as given (octal text or base-256 bytes)."""
    block = bytearray(512)
    block[:len(name)] = name
    block[100:108] = b"0000644\0"
    block[124:136] = size if size is not None else b"%011o\0" % data_len
    block[136:148] = b"00000000000\0"
    block[156:157] = kind
    block[257:265] = magic
    block[345:345 + len(prefix)] = prefix
    block[265:273] = uname
    block[148:156] = b" " * 8
    total = sum(block) if checksum == "unsigned" else sum(b - 256 if b > 127 else b for b in block)
    block[148:156] = b"%06o\0 " % total
    return bytes(block)


def archive(*parts: bytes) -> io.BytesIO:
    raw = b"".join(parts)
    raw += bytes(-len(raw) % 512) + bytes(1024)
    return io.BytesIO(raw)


def scan(f: io.BytesIO, limit: int | None = None) -> list[_tar.Member]:
    return _tar.scan_headers(f, len(f.getvalue()), limit)


def padded(data: bytes) -> bytes:
    return data + bytes(-len(data) % 512)


@pytest.mark.parametrize("size_field, size", [
    pytest.param(b"%011o\0" % 700, 700, id="octal-nul-terminated"),
    pytest.param(b" %010o " % 700, 700, id="octal-space-padded"),
    pytest.param(b"\x80" + (700).to_bytes(11, "big"), 700, id="base-256"),
    pytest.param(b"\0" * 12, 0, id="empty-field-is-zero"),
])
def test_size_fields_in_every_encoding_tar_writers_use(size_field, size):
    data = bytes(range(256)) * 3
    f = archive(header(size=size_field), padded(data[:size]))
    [member] = scan(f)
    assert (member.name, member.offset, member.size) == ("model.onnx", 512, size)
    assert _tar.read_all(f, member) == data[:size]


def test_a_negative_base_256_size_is_refused():
    f = archive(header(size=b"\xc0" + (5).to_bytes(11, "big")))
    with pytest.raises(BundleError, match="^member model.onnx has a negative size; the bundle is corrupt$"):
        scan(f)


def test_a_size_that_is_not_octal_names_the_field_and_the_byte():
    f = archive(header(data_len=10), padded(b"x" * 10), header(name=b"b.bin", size=b"12a\0" + bytes(8)))
    message = ("corrupt tar header at byte 1024: size field b'12a\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00' is "
               "not a number; the bundle is damaged: copy it again")
    with pytest.raises(BundleError, match=f"^{re.escape(message)}$"):
        scan(f)


@pytest.mark.parametrize("checksum", ["unsigned", "signed"])
def test_both_checksums_tar_writers_compute_are_accepted(checksum):
    owner = "jürgen".encode()  # bytes above 127: the signed and unsigned sums differ
    f = archive(header(uname=owner.ljust(8, b"\0"), data_len=3, checksum=checksum), padded(b"abc"))
    assert [m.name for m in scan(f)] == ["model.onnx"]


def test_a_wrong_checksum_is_refused_with_the_byte_it_is_at():
    good = header(data_len=3) + padded(b"abc")
    bad = bytearray(header(name=b"b.bin"))
    bad[148:156] = b"0000001\0"
    with pytest.raises(BundleError, match="^corrupt tar header at byte 1024 \\(bad magic or checksum\\); the bundle "
                                          "is damaged or truncated: copy it again$"):
        scan(archive(good, bytes(bad)))


def test_a_ustar_prefix_is_joined_to_the_name():
    f = archive(header(name=b"model.onnx", prefix=b"sub"))
    with pytest.raises(BundleError, match="^member 'sub/model.onnx' is not a plain file name"):
        scan(f)


def test_the_prefix_field_of_an_old_gnu_header_is_not_a_prefix():
    f = archive(header(name=b"model.onnx", prefix=b"junk", magic=b"ustar  \0"))
    assert [m.name for m in scan(f)] == ["model.onnx"]


def test_a_name_that_fills_all_100_bytes_is_read_whole():
    name = b"m" * 95 + b".onnx"
    assert [m.name for m in scan(archive(header(name=name)))] == [name.decode()]


def test_a_file_that_is_not_a_tar_says_what_it_starts_with():
    f = io.BytesIO(b"PK\x03\x04" + b"z" * 600)
    message = ("not an edgeops bundle: not a POSIX tar archive (starts with b'PK\\x03\\x04zzzzzzzzzzzz'); "
               "pass a .eob file made by edgeops bundle create")
    with pytest.raises(BundleError, match=f"^{re.escape(message)}$"):
        scan(f)


def test_an_empty_file_says_so():
    with pytest.raises(BundleError, match=re.escape("not an edgeops bundle: the file is empty (or all zeros); "
                                                    "copy it again")):
        scan(io.BytesIO(bytes(2048)))


def pax_archive(records: dict[str, str], data: bytes = b"abc") -> io.BytesIO:
    out = io.BytesIO()
    info = tarfile.TarInfo("model.onnx")
    info.size = len(data)
    info.pax_headers = records
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        tar.addfile(info, io.BytesIO(data))
    return io.BytesIO(out.getvalue())


def test_pax_path_and_size_override_the_header():
    f = pax_archive({"path": "weights.bin", "comment": "x" * 600}, data=b"0123456789")
    [member] = scan(f)
    assert member.name == "weights.bin" and member.size == 10
    assert _tar.read_all(f, member) == b"0123456789"


@pytest.mark.parametrize("record, message", [
    pytest.param(b"5 a=b\n", "corrupt pax header at byte 0; the bundle is damaged: copy it again", id="bad-length"),
    pytest.param(b"6 a=bc", "corrupt pax header at byte 0; the bundle is damaged: copy it again",
                 id="no-newline-where-its-length-ends"),
    pytest.param(b"11 size=1x\n", "member model.onnx: the pax size '1x' is not a number; the bundle is corrupt",
                 id="size-not-a-number"),
    pytest.param(b"22 GNU.sparse.size=10\n", "the pax header at byte 0 describes a sparse file; bundles hold only "
                                             "regular files", id="sparse"),
])
def test_bad_pax_records_are_refused(record, message):
    f = archive(header(name=b"pax", kind=b"x", data_len=len(record)), padded(record), header(data_len=0))
    with pytest.raises(BundleError, match=f"^{re.escape(message)}$"):
        scan(f)


def test_pax_records_apply_to_the_next_member_only():
    record = b"20 path=weights.bin\n"
    f = archive(header(name=b"pax", kind=b"x", data_len=len(record)), padded(record), header(data_len=0),
                header(name=b"second.bin"))
    assert [m.name for m in scan(f)] == ["weights.bin", "second.bin"]


def test_reading_streams_in_chunks_and_reports_a_file_that_shrank(monkeypatch):
    monkeypatch.setattr(_tar, "CHUNK", 4)
    data = b"0123456789"
    f = archive(header(data_len=len(data)), padded(data))
    [member] = scan(f)
    assert list(_tar.read_chunks(f, member)) == [b"0123", b"4567", b"89"]
    shrunk = io.BytesIO(f.getvalue()[:512 + 6])
    with pytest.raises(BundleError, match=re.escape("member model.onnx ends at byte 522 but the file has only "
                                                    "518 bytes")):
        _tar.read_all(shrunk, member)


def test_a_checksum_that_is_not_a_number_names_the_field_and_the_byte():
    bad = bytearray(header(name=b"b.bin"))
    bad[148:156] = b"zzzzzz\0 "
    message = ("corrupt tar header at byte 1024: checksum field b'zzzzzz\\x00 ' is not a number; the bundle is "
               "damaged: copy it again")
    with pytest.raises(BundleError, match=f"^{re.escape(message)}$"):
        scan(archive(header(data_len=3), padded(b"abc"), bytes(bad)))


def test_a_signed_checksum_counts_byte_127_as_positive_and_128_as_negative():
    f = archive(header(uname=b"\x7f\x80\x80\0", checksum="signed"))
    assert [m.name for m in scan(f)] == ["model.onnx"]


def _heavy(field: bytes) -> bytes:
    """A header (old GNU magic, so the prefix area is ignored) whose byte sum needs six octal digits."""
    block = bytearray(header(prefix=b"\xff" * 155, magic=b"ustar  \0"))
    block[148:156] = b" " * 8
    total = sum(block)
    assert total >= 0o100000
    block[148:156] = (field % total).ljust(8, b"\0")[:8]
    return bytes(block)


@pytest.mark.parametrize("field", [
    pytest.param(b"%06o\0 ", id="six-digits-nul-space"),
    pytest.param(b"%07o\0", id="seven-digits-nul"),
    pytest.param(b"%07o ", id="seven-digits-space"),
    pytest.param(b"%08o", id="eight-digits-unterminated"),
])
def test_checksums_of_six_significant_digits_in_every_layout_are_accepted(field):
    assert [m.name for m in scan(archive(_heavy(field)))] == ["model.onnx"]


@pytest.mark.parametrize("size_field", [
    pytest.param(b"\x80" + (2**80 + 3).to_bytes(11, "big"), id="value-in-the-second-byte"),
    pytest.param(b"\x81" + (3).to_bytes(11, "big"), id="value-in-the-first-byte"),
])
def test_a_base_256_size_too_large_for_any_file_is_read_whole_and_refused(size_field):
    """Regression: the bits of a base-256 number's first byte were dropped, so GNU tar and edgeops
    disagreed about where a member ends (2**88 + 3 bytes read as 3)."""
    f = archive(header(size=size_field), padded(b"abc"))
    with pytest.raises(BundleError, match="^truncated bundle: member model.onnx ends at byte [0-9]{20,} but"):
        scan(f)


def test_a_prefix_that_fills_all_155_bytes_stops_before_the_padding():
    block = bytearray(header(name=b"model.onnx", prefix=b"p" * 155))
    block[500:512] = b"junk" + bytes(8)
    block[148:156] = b" " * 8
    block[148:156] = b"%06o\0 " % sum(block)
    with pytest.raises(BundleError, match=f"^member '{'p' * 155}/model.onnx' is not a plain file name"):
        scan(archive(bytes(block)))


def test_a_name_that_is_not_utf8_is_refused_with_its_bytes_and_byte_offset():
    f = archive(header(data_len=3), padded(b"abc"), header(name=b"m\xffodel.onnx"))
    message = "member name b'm\\xffodel.onnx' at byte 1024 is not UTF-8; the bundle is corrupt"
    with pytest.raises(BundleError, match=f"^{re.escape(message)}$"):
        scan(f)


@pytest.mark.parametrize("content", [pytest.param(bytes(2048), id="all-zeros"), pytest.param(b"", id="empty")])
def test_an_empty_or_all_zero_file_says_exactly_that(content):
    message = "not an edgeops bundle: the file is empty (or all zeros); copy it again"
    with pytest.raises(BundleError, match=f"^{re.escape(message)}$"):
        scan(io.BytesIO(content))


def test_a_file_of_one_repeated_letter_is_not_a_tar_rather_than_empty():
    with pytest.raises(BundleError, match="^not an edgeops bundle: not a POSIX tar archive \\(starts with b'XXXX"):
        scan(io.BytesIO(b"X" * 1024))
