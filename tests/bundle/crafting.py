"""Hand-made tar archives for the hostile-bundle tests: exact names, types, order and duplicates."""

from __future__ import annotations

import hashlib
import io
import json
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


def nested(base: Path, inner: Path, out: Path, key: str | None = None) -> Path:
    """``base`` with its model member's bytes replaced by the whole bundle ``inner``, every hash right.

    The member keeps its name (``model.onnx``): only its bytes say it is a bundle. Signed with
    ``key`` (a PREFIX.key) when given, so it passes every signature check; unsigned otherwise.
    """
    from edgeops.bundle.manifest import SIGNATURE, dump_manifest

    data = inner.read_bytes()
    items = [(i, d) for i, d in members(base) if i.name != SIGNATURE]
    manifest = json.loads(items[0][1])
    digest, model = hashlib.sha256(data).hexdigest(), manifest["model"]["file"]
    manifest["model"].update(sha256=digest, size=len(data))
    manifest["files"][model] = {"sha256": digest, "size": len(data)}
    manifest["signature"] = None
    private = None
    if key is not None:
        from edgeops.bundle.keys import key_id, load_private_key, public_key_b64

        private = load_private_key(key)
        public = private.public_key()
        manifest["signature"] = {"algorithm": "ed25519", "key_id": key_id(public), "public_key": public_key_b64(public)}
    raw = dump_manifest(manifest)
    items = replace(replace(items, model, data), "manifest.json", raw)
    if private is not None:
        from edgeops.bundle.keys import sign

        items.insert(1, entry(SIGNATURE, sign(private, raw)))
    return write_tar(out, items)
