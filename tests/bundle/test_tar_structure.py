"""The strict tar reader on archives made by hand: limits, truncation, pax records, hidden data, messages.

Each test guards a change the rest of the suite let through (found by
``python tools/mutation.py tar``): a limit off by one, a truncated archive reported with the
wrong offsets, a pax header the reader looped on, data hidden after the end-of-archive block.
"""

from __future__ import annotations

import io
import re

import pytest

from edgeops.bundle import _tar
from edgeops.bundle.manifest import BundleError
from tests.bundle.test_tar_headers import archive, header, padded, scan


def refused(f: io.BytesIO, message: str, limit: int | None = None) -> None:
    """``scan`` refuses ``f`` with exactly ``message``."""
    with pytest.raises(BundleError, match=f"^{re.escape(message)}$"):
        scan(f, limit)


def pax(record: bytes) -> bytes:
    """A pax extended header holding ``record`` (padded to whole blocks)."""
    return header(name=b"pax", kind=b"x", data_len=len(record)) + padded(record)


# -- limits ---------------------------------------------------------------------------------

def test_a_member_of_exactly_the_size_limit_is_accepted_and_one_byte_more_is_refused():
    f = archive(header(data_len=10), padded(b"0123456789"))
    assert [m.size for m in scan(f, limit=10)] == [10]
    refused(f, "member model.onnx is 10 bytes, over the limit of 9 bytes; refusing the bundle (raise "
               "max_member_bytes only if you expect a model this large)", limit=9)


def _members(n: int) -> io.BytesIO:
    return archive(*(header(name=b"m%02d.bin" % i) for i in range(n)))


def test_an_archive_of_exactly_the_member_limit_is_accepted():
    assert len(scan(_members(_tar.MAX_MEMBERS))) == _tar.MAX_MEMBERS


def test_one_member_over_the_member_limit_is_refused():
    refused(_members(_tar.MAX_MEMBERS + 1),
            f"the bundle has more than {_tar.MAX_MEMBERS} members; it is not an edgeops bundle")


# -- member types ---------------------------------------------------------------------------

def test_an_old_style_regular_file_with_a_nul_type_flag_is_accepted():
    assert [m.name for m in scan(archive(header(kind=b"\0", data_len=3), padded(b"abc")))] == ["model.onnx"]


def test_an_unknown_type_flag_is_refused_and_named():
    refused(archive(header(kind=b"Z")), "member 'model.onnx' is of unsupported tar type b'Z'; bundles hold only "
                                        "regular files: refusing the bundle")


# -- truncation -----------------------------------------------------------------------------

def test_a_member_that_runs_past_the_end_says_where_it_ends_and_how_long_the_file_is():
    f = io.BytesIO(header(data_len=1000) + b"x" * 300)
    refused(f, "truncated bundle: member model.onnx ends at byte 1512 but the file has only 812 bytes; the copy "
               "is incomplete: download or copy it again")


def test_an_archive_cut_right_after_a_member_is_missing_its_end_block():
    f = io.BytesIO(header(data_len=512) + b"x" * 512)
    refused(f, "truncated bundle: it ends at byte 1024, inside a tar header or before the end-of-archive block; "
               "the copy is incomplete: download or copy it again")


def test_a_pax_header_cut_short_is_reported_as_truncated():
    f = io.BytesIO(header(name=b"pax", kind=b"x", data_len=100) + b"30 path=weights.bin\n")
    refused(f, "truncated bundle: a pax header ends at byte 612 but the file has only 532 bytes; the copy is "
               "incomplete: download or copy it again")


def test_read_all_joins_every_chunk_of_a_member(monkeypatch):
    monkeypatch.setattr(_tar, "CHUNK", 4)
    data = b"0123456789"
    f = archive(header(data_len=len(data)), padded(data))
    [member] = scan(f)
    assert _tar.read_all(f, member) == data


# -- data after the end ---------------------------------------------------------------------

@pytest.mark.parametrize("hidden", [pytest.param(b"\x01", id="one-byte"), pytest.param(b"XX", id="text")])
def test_data_after_the_end_of_archive_is_refused(hidden):
    f = io.BytesIO(header() + bytes(1024) + hidden)
    refused(f, f"unexpected data after the end of the tar archive (byte 1024 of {1536 + len(hidden)}); refusing the "
               "bundle: rebuild it with edgeops bundle create")


def test_data_hidden_far_after_the_end_is_found_and_its_block_named(monkeypatch):
    monkeypatch.setattr(_tar, "CHUNK", 512)
    f = io.BytesIO(header() + bytes(512 * 5) + b"hidden".ljust(512, b"\0"))
    refused(f, "unexpected data after the end of the tar archive (byte 3072 of 3584); refusing the bundle: rebuild "
               "it with edgeops bundle create")


# -- pax headers ----------------------------------------------------------------------------

@pytest.mark.parametrize("record", [
    pytest.param(b"\n", id="just-a-newline"),
    pytest.param(b"2\n", id="no-length-field"),
    pytest.param(b"6 a=b\nzz", id="second-record-without-a-length"),
])
def test_pax_records_without_a_length_are_refused(record):
    """Regression: a record with no space after a good one left the reader looping forever (a hung install)."""
    refused(archive(pax(record), header()), "corrupt pax header at byte 0; the bundle is damaged: copy it again")


def test_a_pax_value_holding_an_equals_sign_is_read_whole():
    refused(archive(pax(b"21 path=w=1.bin.onnx\n"), header()),
            "member 'w=1.bin.onnx' is not a plain file name (bundles hold no folders or odd characters); "
            "rebuild the bundle with edgeops bundle create")


@pytest.mark.parametrize("size", [pytest.param(0, id="empty"), pytest.param(_tar.MAX_PAX_BYTES, id="at-the-limit")])
def test_pax_headers_from_empty_up_to_the_limit_are_read(size):
    record = b"" if size == 0 else b"%d comment=" % size
    record = record + b"c" * (size - len(record) - 1) + b"\n" if size else record
    assert len(record) == size
    assert [m.name for m in scan(archive(pax(record), header()))] == ["model.onnx"]


def test_a_pax_header_over_the_size_limit_is_refused():
    f = archive(header(name=b"pax", kind=b"x", data_len=_tar.MAX_PAX_BYTES + 1), bytes(_tar.MAX_PAX_BYTES + 1),
                header())
    refused(f, "unexpected pax header at byte 0; the bundle is corrupt")


def test_two_pax_headers_in_a_row_are_refused():
    f = archive(pax(b"12 path=a.b\n"), pax(b"12 path=c.d\n"), header())
    refused(f, "unexpected pax header at byte 1024; the bundle is corrupt")
