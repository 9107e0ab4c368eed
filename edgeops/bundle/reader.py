"""Reading a bundle: :func:`read_manifest` (parse only), :func:`verify` and :func:`extract`.

The order of the checks is the order of trust. First the archive's structure, from its
headers alone (see :mod:`._tar`): regular files with plain names, nothing oversize,
``manifest.json`` first, nothing truncated. Then the manifest itself, and the member list
against it (names and sizes). Then the signature, over the manifest's exact bytes, so the
hashes are trusted only once the manifest is. Last the data: every member's SHA-256, and the
model member's first bytes, which must not be a bundle (:func:`.manifest.check_model_head`):
so whatever verifies or extracts (``edgeops store install``, ``flash``, the agent's OTA, ``load``)
refuses a bundle inside a bundle, whatever the member is called.

:func:`extract` never calls ``tarfile.extractall``: it writes each member by name into a
fresh folder (``O_EXCL``, ``O_NOFOLLOW``) while hashing it, fsyncs the files and the folder,
and removes everything it wrote if any check fails, so a failed extract leaves nothing behind.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, BinaryIO

from .._io import fsync_dir
from . import _tar
from .manifest import (
    MANIFEST,
    MAX_MANIFEST_BYTES,
    MAX_MEMBER_BYTES,
    SIGNATURE,
    SIGNATURE_BYTES,
    BundleError,
    Manifest,
    check_model_head,
    parse_manifest,
)

__all__ = ["Extracted", "read_manifest", "verify", "extract"]

KeyPaths = Sequence["str | os.PathLike[str]"]


@dataclass
class Extracted:
    """A bundle written out by :func:`extract`: the folder, the manifest and the paths of its parts."""

    dir: str
    manifest: Manifest
    model_path: str
    profile_path: str | None
    sample_path: str | None


@dataclass
class _Bundle:
    manifest: Manifest
    signature: bytes | None
    members: list[_tar.Member]  # every member, manifest.json first


@contextmanager
def _open(path: str | os.PathLike[str]) -> Iterator[tuple[BinaryIO, int]]:
    name = os.fspath(path)
    try:
        fh = open(name, "rb")
    except FileNotFoundError:
        raise BundleError(f"bundle {name} not found; check the path") from None
    except IsADirectoryError:
        raise BundleError(f"{name} is a directory, not a bundle; pass the .eob file") from None
    except OSError as exc:
        raise BundleError(f"cannot read bundle {name}: {exc.strerror or exc}; check its permissions") from exc
    with fh:
        yield fh, os.fstat(fh.fileno()).st_size


def _scan(f: BinaryIO, size: int, max_member_bytes: int | None) -> _Bundle:
    members = _tar.scan_headers(f, size, max_member_bytes)
    first = members[0]
    if first.name != MANIFEST:
        raise BundleError(f"the first member is {first.name!r}, not {MANIFEST}; not an edgeops bundle "
                          "(or one packed by hand): rebuild it with edgeops bundle create")
    names = [m.name for m in members]
    folded = [n.casefold() for n in names]
    for name, key in zip(names, folded):
        if folded.count(key) > 1:
            raise BundleError(f"member {name!r} appears more than once; refusing the bundle (which copy "
                              "is meant is ambiguous): rebuild it with edgeops bundle create")
    if first.size > MAX_MANIFEST_BYTES:
        raise BundleError(f"{MANIFEST} is {first.size} bytes, over the {MAX_MANIFEST_BYTES} a manifest may be")
    sig = next((m for m in members if m.name == SIGNATURE), None)
    signature = None
    if sig is not None:
        if sig.size != SIGNATURE_BYTES:
            raise BundleError(f"{SIGNATURE} is {sig.size} bytes, not the {SIGNATURE_BYTES} of an Ed25519 "
                              "signature; the bundle is corrupt: copy it again or re-sign it")
        signature = _tar.read_all(f, sig)
    manifest = parse_manifest(_tar.read_all(f, first), signed=sig is not None)
    return _Bundle(manifest, signature, members)


def _check_members(bundle: _Bundle) -> None:
    """The archive holds exactly the files the manifest lists, each of the size it says."""
    files = bundle.manifest.files
    present = {m.name: m for m in bundle.members if m.name not in (MANIFEST, SIGNATURE)}
    for name, member in present.items():
        if name not in files:
            raise BundleError(f"member {name!r} is not listed in the manifest; refusing the bundle "
                              "(extra content): rebuild it with edgeops bundle create")
        if member.size != files[name]["size"]:
            raise BundleError(f"member {name} is {member.size} bytes but the manifest says {files[name]['size']}; "
                              "the bundle is corrupt or was altered: copy it again")
    missing = sorted(set(files) - set(present))
    if missing:
        raise BundleError(f"member(s) {', '.join(missing)} listed in the manifest are missing; the bundle is "
                          "incomplete: copy it again or rebuild it")


def _check_signature(bundle: _Bundle, trusted_keys: KeyPaths | None, require_signature: bool) -> None:
    manifest = bundle.manifest
    block = manifest.data.get("signature")
    if bundle.signature is None:
        if block is not None:
            raise BundleError(f"the manifest says the bundle is signed (key {manifest.key_id}) but {SIGNATURE} is "
                              "missing; the signature was stripped or lost: get the bundle again")
        if trusted_keys is not None or require_signature:
            raise BundleError("the bundle is not signed, but a signature is required; sign it with "
                              "edgeops bundle create --key PREFIX.key")
        return
    if block is None:
        raise BundleError(f"the bundle has {SIGNATURE} but the manifest names no signing key; the bundle is "
                          "corrupt or was altered: rebuild it")
    from . import keys

    embedded = keys.public_key_from_b64(block["public_key"])
    if keys.key_id(embedded) != manifest.key_id:
        raise BundleError(f"the manifest's public key does not match its key_id {manifest.key_id}; the bundle "
                          "is corrupt or forged")
    public = embedded if trusted_keys is None else _trusted_key(manifest.key_id, trusted_keys)
    if not keys.signature_ok(public, bundle.signature, manifest.raw):
        raise BundleError(f"the signature (key {manifest.key_id}) does not match manifest.json; the manifest or "
                          "the signature was modified: do not install this bundle, get it again from its source")


def _trusted_key(kid: str | None, trusted_keys: KeyPaths) -> Any:
    from . import keys

    loaded = [keys.load_public_key(p) for p in trusted_keys]
    for key in loaded:
        if keys.key_id(key) == kid:
            return key
    known = ", ".join(keys.key_id(k) for k in loaded) or "none given"
    raise BundleError(f"the bundle is signed by key {kid}, which is not a trusted key ({known}); pass the "
                      "signer's .pub with --pubkey, or do not install this bundle")


def _check_hashes(f: BinaryIO, bundle: _Bundle) -> None:
    for member in bundle.members:
        if member.name in (MANIFEST, SIGNATURE):
            continue
        for _ in _checked(_tar.read_chunks(f, member), member.name, bundle.manifest):
            pass


def _checked(chunks: Iterable[bytes], name: str, manifest: Manifest) -> Iterator[bytes]:
    """Pass a member's chunks through, then check its sha256 and, for the model, that it is not a bundle."""
    from ..formats import SNIFF_BYTES

    h = hashlib.sha256()
    head, model = b"", name == manifest.model_file
    for chunk in chunks:
        if model and len(head) < SNIFF_BYTES:
            head += chunk[:SNIFF_BYTES - len(head)]
        h.update(chunk)
        yield chunk
    _compare(name, h.hexdigest(), manifest)
    if model:
        check_model_head(head, name)


def _compare(name: str, digest: str, manifest: Manifest) -> None:
    if digest != manifest.files[name]["sha256"]:
        raise BundleError(f"member {name} does not match its sha256 in the manifest; the bundle is corrupt "
                          "or was altered: do not install it, copy it again from its source")


def _structure(f: BinaryIO, size: int, trusted_keys: KeyPaths | None, require_signature: bool,
               max_member_bytes: int | None) -> _Bundle:
    bundle = _scan(f, size, max_member_bytes)
    _check_members(bundle)
    _check_signature(bundle, trusted_keys, require_signature)
    return bundle


def read_manifest(path: str | os.PathLike[str]) -> Manifest:
    """The bundle's manifest, parsed and checked, without hash or signature checks.

    The archive's structure is still checked (member types and names, ``manifest.json``
    first), so whatever the manifest names is safe to show. Use :func:`verify` before trusting it.
    """
    with _open(path) as (f, size):
        return _scan(f, size, None).manifest


def verify(path: str | os.PathLike[str], *, trusted_keys: KeyPaths | None = None, require_signature: bool = False,
           max_member_bytes: int = MAX_MEMBER_BYTES) -> Manifest:
    """Check a bundle completely and return its manifest; any problem raises :class:`BundleError`.

    A signed bundle's signature is always checked: against the public key it carries when
    ``trusted_keys`` is None (integrity only: anyone can sign), else against the trusted key
    whose key id matches (authenticity). With ``trusted_keys`` or ``require_signature``, an
    unsigned bundle fails.
    """
    with _open(path) as (f, size):
        bundle = _structure(f, size, trusted_keys, require_signature, max_member_bytes)
        _check_hashes(f, bundle)
    return bundle.manifest


def extract(path: str | os.PathLike[str], dest: str | os.PathLike[str], *, trusted_keys: KeyPaths | None = None,
            require_signature: bool = False, max_member_bytes: int = MAX_MEMBER_BYTES) -> Extracted:
    """Verify the bundle and write its members into ``dest`` (created; must be absent or empty).

    Every member, ``manifest.json`` and ``manifest.sig`` included, becomes ``dest/<name>``.
    Each is hashed as it is written; on any failure everything written is removed (and
    ``dest`` and its parents too where this call created them) before the error propagates.
    """
    folder = os.fspath(dest)
    created = _prepare_dest(folder)
    written: list[str] = []
    try:
        with _open(path) as (f, size):
            bundle = _structure(f, size, trusted_keys, require_signature, max_member_bytes)
            for member in bundle.members:
                _write_member(f, member, folder, bundle, written)
        fsync_dir(folder)
    except BaseException:
        _remove(written, created)
        raise
    m = bundle.manifest
    join = os.path.join
    return Extracted(dir=folder, manifest=m, model_path=join(folder, m.model_file),
                     profile_path=join(folder, m.data["profile"]) if m.data.get("profile") else None,
                     sample_path=join(folder, m.data["sample"]) if m.data.get("sample") else None)


def _prepare_dest(folder: str) -> list[str]:
    """Check or create ``folder``; returns the folders this made (outermost first) for cleanup."""
    if os.path.lexists(folder):
        if not os.path.isdir(folder):
            raise BundleError(f"cannot extract into {folder}: it exists and is not a folder")
        if os.listdir(folder):
            raise BundleError(f"cannot extract into {folder}: the folder is not empty; pass a new or empty folder")
        return []
    missing: list[str] = []
    here = os.path.abspath(folder)
    while not os.path.lexists(here):
        missing.insert(0, here)
        here = os.path.dirname(here)
    try:
        os.makedirs(folder)
    except OSError as exc:
        raise BundleError(f"cannot create {folder}: {exc.strerror or exc}; check the path and permissions") from exc
    return missing


def _write_member(f: BinaryIO, member: _tar.Member, folder: str, bundle: _Bundle, written: list[str]) -> None:
    """Write one member, checking it on the way (:func:`_checked`); the manifest and signature come
    from memory (as checked)."""
    chunks: Iterable[bytes]
    if member.name == MANIFEST:
        chunks = [bundle.manifest.raw]
    elif member.name == SIGNATURE:
        chunks = [bundle.signature or b""]
    else:
        chunks = _checked(_tar.read_chunks(f, member), member.name, bundle.manifest)
    target = os.path.join(folder, member.name)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    try:
        fd = os.open(target, flags, 0o644)
    except OSError as exc:
        raise BundleError(f"cannot write {target}: {exc.strerror or exc}") from exc
    written.append(target)
    with os.fdopen(fd, "wb") as out:
        for chunk in chunks:
            out.write(chunk)
        out.flush()
        os.fsync(out.fileno())


def _remove(written: list[str], created: list[str]) -> None:
    for path in [*written, *reversed(created)]:
        try:
            if os.path.isdir(path):
                os.rmdir(path)
            else:
                os.unlink(path)
        except OSError:
            pass
