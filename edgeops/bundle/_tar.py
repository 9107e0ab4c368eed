"""A strict reader for the one tar layout a bundle uses: POSIX ustar, regular files only.

Python's :mod:`tarfile` is lenient where a bundle reader must not be: it stops silently at a
corrupt header in the middle of an archive, reads pax headers of any size into memory, and
follows long names and links. :func:`scan_headers` walks the 512-byte headers itself and
refuses, with a :class:`BundleError` that says why, anything but plain regular members:
links, devices, folders, GNU long names, global pax headers, bad checksums, members that run
past the end of the file, a missing end-of-archive block, or data after it. Member data is
never read here; :func:`read_chunks` streams it from the recorded offsets.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

from .manifest import BundleError, check_member_name

BLOCK = 512
MAX_MEMBERS = 64
MAX_PAX_BYTES = 64 * 1024
CHUNK = 1 << 20
_ZERO = bytes(BLOCK)
_TYPES = {b"1": "a hard link", b"2": "a symbolic link", b"3": "a character device", b"4": "a block device",
          b"5": "a directory", b"6": "a FIFO", b"7": "a contiguous file", b"g": "a global pax header",
          b"L": "a GNU long-name entry", b"K": "a GNU long-link entry", b"S": "a GNU sparse file"}


@dataclass(frozen=True)
class Member:
    """One regular member: its name, where its data starts in the file, and its size."""

    name: str
    offset: int
    size: int


def _octal(field: bytes, what: str, at: int) -> int:
    if field[:1] and field[0] & 0x80:  # base-256, as GNU tar writes large numbers: every bit after the marker
        if field[0] & 0x40:  # negative, in two's complement (never a valid size)
            return int.from_bytes(field, "big", signed=True)
        return int.from_bytes(field, "big") - (0x80 << 8 * (len(field) - 1))
    text = field.split(b"\0", 1)[0].strip(b" ")
    try:
        return int(text, 8) if text else 0
    except ValueError:
        raise BundleError(f"corrupt tar header at byte {at}: {what} field {field!r} is not a number; "
                          "the bundle is damaged: copy it again") from None


def _checksum_ok(block: bytes, at: int) -> bool:
    stored = _octal(block[148:156], "checksum", at)
    blanked = block[:148] + b" " * 8 + block[156:]
    unsigned = sum(blanked)
    signed = sum(b - 256 if b > 127 else b for b in blanked)
    return stored in (unsigned, signed)


def _not_a_bundle(block: bytes) -> BundleError:
    if not block.strip(b"\0"):
        return BundleError("not an edgeops bundle: the file is empty (or all zeros); copy it again")
    return BundleError(f"not an edgeops bundle: not a POSIX tar archive (starts with {block[:16]!r}); "
                       "pass a .eob file made by edgeops bundle create")


def _header(block: bytes, at: int) -> tuple[bytes, str, int]:
    """(type flag, name, size) of the header block at byte ``at``."""
    if block[257:262] != b"ustar" or not _checksum_ok(block, at):
        if at == 0:
            raise _not_a_bundle(block)
        raise BundleError(f"corrupt tar header at byte {at} (bad magic or checksum); the bundle is damaged "
                          "or truncated: copy it again")
    raw = block[:100].split(b"\0", 1)[0]
    prefix = block[345:500].split(b"\0", 1)[0]
    if block[257:265] == b"ustar\x0000" and prefix:
        raw = prefix + b"/" + raw
    try:
        name = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise BundleError(f"member name {raw!r} at byte {at} is not UTF-8; the bundle is corrupt") from None
    return block[156:157], name, _octal(block[124:136], "size", at)


def _pax(data: bytes, at: int) -> dict[str, str]:
    """Parse pax records (``"<len> key=value\\n"``); only ``path`` and ``size`` matter to a bundle."""
    records: dict[str, str] = {}
    pos = 0
    while pos < len(data):
        space = data.find(b" ", pos)
        try:
            if space <= pos:  # no length before a space: without this check, pos never moves on
                raise ValueError
            length = int(data[pos:space])
            if length <= space - pos or data[pos + length - 1:pos + length] != b"\n":
                raise ValueError
            key, _, value = data[space + 1:pos + length - 1].partition(b"=")
            records[key.decode("utf-8")] = value.decode("utf-8")
        except (ValueError, UnicodeDecodeError):
            raise BundleError(f"corrupt pax header at byte {at}; the bundle is damaged: copy it again") from None
        pos += length
    if any(k.startswith("GNU.sparse") for k in records):
        raise BundleError(f"the pax header at byte {at} describes a sparse file; bundles hold only regular files")
    return records


def _read(f: BinaryIO, at: int, n: int) -> bytes:
    f.seek(at)
    return f.read(n)


def _end_of_data(member: str, end: int, size: int) -> BundleError:
    return BundleError(f"truncated bundle: {member} ends at byte {end} but the file has only {size} bytes; "
                       "the copy is incomplete: download or copy it again")


def scan_headers(f: BinaryIO, file_size: int, max_member_bytes: int | None) -> list[Member]:
    """Every member of the archive, in order, after the structural checks (no data is read)."""
    members: list[Member] = []
    pos, pax = 0, None
    while True:
        block = _read(f, pos, BLOCK)
        if len(block) < BLOCK:
            if pos == 0:
                raise _not_a_bundle(block)
            raise BundleError(f"truncated bundle: it ends at byte {file_size}, inside a tar header or before the "
                              "end-of-archive block; the copy is incomplete: download or copy it again")
        if block == _ZERO:
            if pos == 0:
                raise _not_a_bundle(block)
            break
        kind, name, size = _header(block, pos)
        data_at = pos + BLOCK
        if kind == b"x":
            if pax is not None or not 0 <= size <= MAX_PAX_BYTES:
                raise BundleError(f"unexpected pax header at byte {pos}; the bundle is corrupt")
            data = _read(f, data_at, size)
            if len(data) < size:
                raise _end_of_data("a pax header", data_at + size, file_size)
            pax = _pax(data, pos)
            pos = data_at + _padded(size)
            continue
        if pax is not None:
            name = pax.get("path", name)
            size = _pax_size(pax, size, name)
            pax = None
        _check_member(kind, name, size, max_member_bytes)
        if data_at + size > file_size:
            raise _end_of_data(f"member {name}", data_at + size, file_size)
        members.append(Member(name, data_at, size))
        if len(members) > MAX_MEMBERS:
            raise BundleError(f"the bundle has more than {MAX_MEMBERS} members; it is not an edgeops bundle")
        pos = data_at + _padded(size)
    _check_trailer(f, pos + BLOCK, file_size)
    return members


def _padded(size: int) -> int:
    return -(-size // BLOCK) * BLOCK


def _pax_size(pax: dict[str, str], size: int, name: str) -> int:
    if "size" not in pax:
        return size
    try:
        return int(pax["size"])
    except ValueError:
        raise BundleError(f"member {name}: the pax size {pax['size']!r} is not a number; the bundle is corrupt") from None


def _check_member(kind: bytes, name: str, size: int, max_member_bytes: int | None) -> None:
    if kind not in (b"0", b"\0"):
        what = _TYPES.get(kind, f"of unsupported tar type {kind!r}")
        raise BundleError(f"member {name!r} is {what}; bundles hold only regular files: refusing the bundle")
    check_member_name(name)
    if size < 0:
        raise BundleError(f"member {name} has a negative size; the bundle is corrupt")
    if max_member_bytes is not None and size > max_member_bytes:
        raise BundleError(f"member {name} is {size} bytes, over the limit of {max_member_bytes} bytes; refusing "
                          "the bundle (raise max_member_bytes only if you expect a model this large)")


def _check_trailer(f: BinaryIO, at: int, file_size: int) -> None:
    """After the first zero block only zeros may follow (padding); anything else is hidden data."""
    f.seek(at)
    while True:
        chunk = f.read(CHUNK)
        if not chunk:
            return
        if chunk.strip(b"\0"):
            raise BundleError(f"unexpected data after the end of the tar archive (byte {at} of {file_size}); "
                              "refusing the bundle: rebuild it with edgeops bundle create")
        at += len(chunk)


def read_chunks(f: BinaryIO, member: Member) -> Iterator[bytes]:
    """The member's data in chunks; a file that shrank since the scan is reported as truncated."""
    f.seek(member.offset)
    left = member.size
    while left:
        chunk = f.read(min(CHUNK, left))
        if not chunk:
            raise _end_of_data(f"member {member.name}", member.offset + member.size, member.offset + member.size - left)
        left -= len(chunk)
        yield chunk


def read_all(f: BinaryIO, member: Member) -> bytes:
    return b"".join(read_chunks(f, member))
