"""Ed25519 keys for signing bundles: make a pair, load them, name them, sign and check.

``cryptography`` is imported here only inside the functions, when a key is made or used,
so ``import edgeops`` (and loading an unsigned bundle) never pulls it in. A key is named by
its ``key_id``: the first 16 hex digits of the SHA-256 of the raw 32-byte public key.

Key files are PEM: ``PREFIX.key`` is the private key (PKCS#8, unencrypted, mode 0600),
``PREFIX.pub`` the public key (SubjectPublicKeyInfo). Keep the ``.key`` on the build host;
copy the ``.pub`` to whoever verifies.
"""

from __future__ import annotations

import base64
import hashlib
import os
from typing import Any

from .._io import fsync_dir
from ..errors import EdgeOpsError, UsageError
from .manifest import BundleError

__all__ = ["keygen", "load_public_key", "load_private_key", "key_id", "public_key_b64", "public_key_from_b64",
           "sign", "signature_ok"]


def _crypto(error: type[EdgeOpsError] = UsageError) -> Any:
    try:
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import ed25519
    except ImportError as exc:
        raise error("signing and checking bundle signatures needs the cryptography package: "
                    "pip install 'edgeops[sign]'") from exc
    return serialization, ed25519


def keygen(prefix: str | os.PathLike[str]) -> tuple[str, str]:
    """Write a new Ed25519 pair to ``PREFIX.key`` (PEM PKCS#8, mode 0600) and ``PREFIX.pub`` (PEM).

    Refuses to overwrite either file. Returns ``(key path, pub path)``.
    """
    serialization, ed25519 = _crypto()
    base = os.fspath(prefix)
    key_path, pub_path = base + ".key", base + ".pub"
    for path in (key_path, pub_path):
        if os.path.lexists(path):
            raise UsageError(f"{path} already exists; keygen never overwrites a key: pick another --out "
                             "or move the old pair away first")
    private = ed25519.Ed25519PrivateKey.generate()
    pem = private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    pub = private.public_key().public_bytes(serialization.Encoding.PEM,
                                            serialization.PublicFormat.SubjectPublicKeyInfo)
    _write_new(key_path, pem, 0o600)
    try:
        umask = os.umask(0)
        os.umask(umask)
        _write_new(pub_path, pub, 0o644 & ~umask)
    except BaseException:
        os.unlink(key_path)
        raise
    return key_path, pub_path


def _write_new(path: str, data: bytes, mode: int) -> None:
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o600)
    except FileExistsError:
        raise UsageError(f"{path} already exists; keygen never overwrites a key") from None
    except OSError as exc:
        raise UsageError(f"cannot write {path}: {exc.strerror or exc}; check the folder and its permissions") from exc
    try:
        with os.fdopen(fd, "wb") as out:
            os.fchmod(out.fileno(), mode)
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
    except BaseException:
        os.unlink(path)
        raise
    fsync_dir(folder)


def _read_key_file(path: str | os.PathLike[str], what: str) -> bytes:
    name = os.fspath(path)
    try:
        with open(name, "rb") as fh:
            return fh.read(64 * 1024)
    except FileNotFoundError:
        raise UsageError(f"{what} {name} not found; make a pair with edgeops keygen --out PREFIX") from None
    except OSError as exc:
        raise UsageError(f"cannot read {what} {name}: {exc.strerror or exc}") from exc


def load_private_key(path: str | os.PathLike[str]) -> Any:
    """The Ed25519 private key in the PEM file ``path`` (as written by :func:`keygen`)."""
    serialization, ed25519 = _crypto()
    data = _read_key_file(path, "private key")
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except TypeError as exc:
        raise UsageError(f"{os.fspath(path)} is an encrypted private key; edgeops signs with unencrypted "
                         "keys (keep the file mode 0600) made by edgeops keygen") from exc
    except ValueError as exc:
        raise UsageError(f"{os.fspath(path)} is not a PEM private key; pass the PREFIX.key written by "
                         "edgeops keygen") from exc
    if not isinstance(key, ed25519.Ed25519PrivateKey):
        raise UsageError(f"{os.fspath(path)} is not an Ed25519 key; make one with edgeops keygen")
    return key


def load_public_key(path: str | os.PathLike[str]) -> Any:
    """The Ed25519 public key in the PEM file ``path`` (a ``.pub``; a ``.key`` gives its public half)."""
    serialization, ed25519 = _crypto()
    data = _read_key_file(path, "public key")
    if b"PRIVATE KEY" in data:
        return load_private_key(path).public_key()
    try:
        key = serialization.load_pem_public_key(data)
    except ValueError as exc:
        raise UsageError(f"{os.fspath(path)} is not a PEM public key; pass the PREFIX.pub written by "
                         "edgeops keygen") from exc
    if not isinstance(key, ed25519.Ed25519PublicKey):
        raise UsageError(f"{os.fspath(path)} is not an Ed25519 public key; make a pair with edgeops keygen")
    return key


def _raw(public_key: Any) -> bytes:
    serialization, _ = _crypto()
    return public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def key_id(public_key_or_path: Any) -> str:
    """First 16 hex digits of SHA-256 of the raw public key; takes a key object, raw bytes or a key file."""
    key = public_key_or_path
    if isinstance(key, (str, os.PathLike)):
        key = load_public_key(key)
    if isinstance(key, (bytes, bytearray)):
        raw = bytes(key)
    else:
        if hasattr(key, "public_key"):  # a private key
            key = key.public_key()
        raw = _raw(key)
    return hashlib.sha256(raw).hexdigest()[:16]


def public_key_b64(public_key: Any) -> str:
    return base64.b64encode(_raw(public_key)).decode("ascii")


def public_key_from_b64(text: str) -> Any:
    """The public key a manifest carries (base64 of the raw 32 bytes); checks it, not who owns it."""
    _, ed25519 = _crypto(BundleError)
    try:
        raw = base64.b64decode(text, validate=True)
        return ed25519.Ed25519PublicKey.from_public_bytes(raw)
    except ValueError as exc:
        raise BundleError("the manifest's public key is not a base64 Ed25519 key; the bundle is corrupt") from exc


def sign(private_key: Any, data: bytes) -> bytes:
    return private_key.sign(data)


def signature_ok(public_key: Any, signature: bytes, data: bytes) -> bool:
    from cryptography.exceptions import InvalidSignature

    try:
        public_key.verify(signature, data)
    except InvalidSignature:
        return False
    return True
