"""Hand-made tar archives for the hostile-bundle tests: exact names, types, order and duplicates."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

Items = list[tuple[tarfile.TarInfo, bytes]]


def members(path: Path) -> Items:
    """The members of a (well-formed) bundle, header and data, in order."""
    with tarfile.open(path, "r:") as tar:
        return [(m, tar.extractfile(m).read() if m.isreg() else b"") for m in tar.getmembers()]


def entry(name: str, data: bytes = b"", kind: bytes = tarfile.REGTYPE, link: str = "") -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.type, info.linkname, info.size, info.mode = kind, link, len(data) if kind == tarfile.REGTYPE else 0, 0o644
    return info, data


def write_tar(path: Path, items: Items, fmt: int = tarfile.USTAR_FORMAT) -> Path:
    """Write ``items`` by hand with tarfile, exactly as given (names, types, order, duplicates)."""
    with tarfile.open(path, "w", format=fmt) as tar:
        for info, data in items:
            tar.addfile(info, io.BytesIO(data) if info.isreg() else None)
    return path


def replace(items: Items, name: str, data: bytes) -> Items:
    """``items`` with member ``name``'s data swapped for ``data`` (size updated)."""
    out = []
    for info, old in items:
        if info.name == name:
            info = entry(name, data)[0]
            old = data
        out.append((info, old))
    return out
