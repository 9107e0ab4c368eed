"""The bundle manifest: what a bundle says about itself, and the checks every reader applies to it.

``manifest.json`` is the first member of every bundle: a JSON object, sorted keys, UTF-8.
:func:`parse_manifest` turns its exact bytes into a :class:`Manifest` or raises a
:class:`BundleError` that names the field that is wrong; the bytes are parsed by
:func:`edgeops._json.loads` (bounded size and nesting, no NaN, no repeated keys). The checks
make the fields safe to use as they are: ``name`` and ``version`` are plain words (usable as
directory names), ``id`` is 32 hex digits, every file name is a plain member name (no ``/``,
no ``..``). :func:`check_model_head` refuses a model member that is itself a bundle.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from .. import _json
from ..errors import CheckFailed

__all__ = ["BundleError", "Manifest", "MANIFEST_VERSION", "MAX_MEMBER_BYTES", "FORMAT", "MANIFEST", "SIGNATURE",
           "check_member_name", "check_model_head", "parse_manifest", "dump_manifest"]

FORMAT = "edgeops-bundle"
MANIFEST_VERSION = 1
MAX_MEMBER_BYTES = 2 * 1024**3  # default per-member limit
MAX_MANIFEST_BYTES = 1 << 20
MANIFEST = "manifest.json"
SIGNATURE = "manifest.sig"
SIGNATURE_BYTES = 64

_PLAIN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
_WORD = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,127}")  # bundle name and version
_HEX64 = re.compile(r"[0-9a-f]{64}")
_HEX32 = re.compile(r"[0-9a-f]{32}")
_HEX16 = re.compile(r"[0-9a-f]{16}")


class BundleError(CheckFailed):
    """A bundle failed verification or cannot be read as a bundle (exit code 1)."""


@dataclass(eq=False)
class Manifest(Mapping[str, Any]):
    """A parsed ``manifest.json``: its exact bytes (what the signature covers) and their meaning.

    ``signed`` says the bundle carries ``manifest.sig``; whether the signature was checked, and
    against which keys, depends on how the manifest was obtained (:func:`~edgeops.bundle.verify`
    checks it, :func:`~edgeops.bundle.read_manifest` does not). A manifest reads like its JSON
    (``manifest["profile"]``, ``manifest.get("tolerances")``, equal to its ``data`` dict), and the
    fields every reader needs are properties. It is the one form of a manifest: a bundle's, a
    store slot's (:class:`~edgeops.deploy.store.SlotInfo`) and a model's (``model.bundle``).
    """

    raw: bytes
    data: dict[str, Any]
    signed: bool
    key_id: str | None

    def __getitem__(self, key: str) -> Any:
        return self.data[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.data)

    def __len__(self) -> int:
        return len(self.data)

    @property
    def name(self) -> str:
        return self.data["name"]

    @property
    def version(self) -> str:
        return self.data["version"]

    @property
    def id(self) -> str:
        return self.data["id"]

    @property
    def created(self) -> str:
        return self.data["created"]

    @property
    def model_file(self) -> str:
        return self.data["model"]["file"]

    @property
    def model_format(self) -> str:
        return self.data["model"]["format"]

    @property
    def model_sha256(self) -> str:
        return self.data["model"]["sha256"]

    @property
    def files(self) -> dict[str, dict[str, Any]]:
        return self.data["files"]


def check_member_name(name: str) -> None:
    """Refuse absolute paths, ``..``, nested paths and odd characters: members are plain file names."""
    if not name:
        raise BundleError("a member has an empty name; the bundle is corrupt: rebuild it with edgeops bundle create")
    if name.startswith(("/", "\\")) or re.match(r"[A-Za-z]:", name):
        raise BundleError(f"member {name!r} has an absolute path; refusing the bundle (never extract it by hand)")
    if ".." in re.split(r"[/\\]", name):
        raise BundleError(f"member {name!r} points outside the bundle ('..' path traversal); refusing the bundle "
                          "(never extract it by hand)")
    if not _PLAIN_NAME.fullmatch(name):
        raise BundleError(f"member {name!r} is not a plain file name (bundles hold no folders or odd characters); "
                          "rebuild the bundle with edgeops bundle create")


def check_model_head(head: bytes, name: str) -> None:
    """Refuse a model member whose first bytes (``edgeops.formats.SNIFF_BYTES`` are plenty) are a bundle.

    A bundle is never a model, whatever the member is called: :func:`~edgeops.bundle.verify` and
    :func:`~edgeops.bundle.extract` call this on the model member, so ``edgeops store install``,
    ``flash`` and the agent's OTA (all of which verify or extract) refuse a bundle in a bundle."""
    from ..formats import sniff_format

    if sniff_format(head) == "bundle":
        raise BundleError(f"the bundle's model {name} is itself an edgeops bundle; refusing bundles in bundles "
                          "(pack the .onnx or .tflite model itself with edgeops bundle create)")


def dump_manifest(data: dict) -> bytes:
    """The canonical bytes of a manifest: sorted keys, UTF-8, two-space indent, final newline."""
    return (json.dumps(data, sort_keys=True, indent=2, ensure_ascii=False, allow_nan=False) + "\n").encode("utf-8")


def parse_manifest(raw: bytes, *, signed: bool) -> Manifest:
    """Parse and check ``manifest.json`` bytes; any problem is a :class:`BundleError` naming the field."""
    data = _load_json(raw)
    _check_header(data)
    _check_identity(data)
    _check_files(data)
    _check_model(data)
    _check_optional(data)
    sig = _check_signature_block(data.get("signature"))
    return Manifest(raw=raw, data=data, signed=signed, key_id=sig)


def _load_json(raw: bytes) -> dict:
    data = _json.loads(raw, what=MANIFEST, error=BundleError, max_bytes=MAX_MANIFEST_BYTES)
    if not isinstance(data, dict):
        raise BundleError("manifest.json is not a JSON object; the bundle is corrupt: copy it again or rebuild it")
    return data


def _field(data: dict, key: str, kind: type | tuple[type, ...], where: str = "manifest") -> Any:
    if key not in data:
        raise BundleError(f"{where} has no {key!r}; the bundle is incomplete: rebuild it with edgeops bundle create")
    value = data[key]
    if not isinstance(value, kind) or isinstance(value, bool) and kind is not bool:
        raise BundleError(f"{where} field {key!r} has the wrong type ({type(value).__name__}); "
                          "the bundle is corrupt: rebuild it")
    return value


def _check_header(data: dict) -> None:
    if data.get("format") != FORMAT:
        raise BundleError(f"manifest.json is not an edgeops bundle manifest (format {data.get('format')!r}, "
                          f"expected {FORMAT!r})")
    version = data.get("manifest_version")
    if version != MANIFEST_VERSION or isinstance(version, bool):
        raise BundleError(f"bundle manifest_version {version!r} is not supported: this edgeops reads version "
                          f"{MANIFEST_VERSION}; upgrade edgeops (or rebuild the bundle with this one)")


def _check_identity(data: dict) -> None:
    for key in ("name", "version"):
        if not _WORD.fullmatch(_field(data, key, str)):
            raise BundleError(f"bundle {key} {data[key]!r} is not a plain word (letters, digits, '.', '_', '+', '-'; "
                              "at most 128); rebuild the bundle with a plain --" + key)
    if not _HEX32.fullmatch(_field(data, "id", str)):
        raise BundleError(f"bundle id {data['id']!r} is not 32 lowercase hex digits; the bundle is corrupt")
    _field(data, "created", str)
    _field(data, "edgeops", str)


def _check_files(data: dict) -> None:
    files = _field(data, "files", dict)
    for name, entry in files.items():
        check_member_name(name)
        if name in (MANIFEST, SIGNATURE):
            raise BundleError(f"manifest files list {name}, which cannot be hashed in itself; the bundle is corrupt")
        where = f"manifest files[{name!r}]"
        if not isinstance(entry, dict):
            raise BundleError(f"{where} is not an object; the bundle is corrupt")
        if not _HEX64.fullmatch(_field(entry, "sha256", str, where)):
            raise BundleError(f"{where} sha256 is not 64 lowercase hex digits; the bundle is corrupt")
        if _field(entry, "size", int, where) < 0:
            raise BundleError(f"{where} has a negative size; the bundle is corrupt")


def _check_model(data: dict) -> None:
    model = _field(data, "model", dict)
    file = _field(model, "file", str, "manifest model")
    fmt = _field(model, "format", str, "manifest model")
    if fmt not in ("onnx", "tflite"):
        raise BundleError(f"bundle model format {fmt!r} is not onnx or tflite; upgrade edgeops or rebuild the bundle")
    entry = data["files"].get(file)
    if entry is None:
        raise BundleError(f"bundle model file {file!r} is not among the manifest's files; the bundle is corrupt")
    if model.get("sha256") != entry["sha256"] or model.get("size") != entry["size"]:
        raise BundleError(f"bundle model sha256/size disagree with files[{file!r}]; the bundle is corrupt or forged")
    for key in ("inputs", "outputs"):
        _field(model, key, list, "manifest model")


def _check_optional(data: dict) -> None:
    for key in ("profile", "sample"):
        member = data.get(key)
        if member is not None and (not isinstance(member, str) or member not in data["files"]):
            raise BundleError(f"bundle {key} {member!r} is not among the manifest's files; the bundle is corrupt")
    for key in ("preprocessing", "quantization", "validation", "tolerances"):
        if data.get(key) is not None and not isinstance(data[key], dict):
            raise BundleError(f"bundle {key} is not an object; the bundle is corrupt")
    if data.get("target") is not None and not isinstance(data["target"], str):
        raise BundleError("bundle target is not a string; the bundle is corrupt")


def _check_signature_block(sig: Any) -> str | None:
    if sig is None:
        return None
    if not isinstance(sig, dict) or sig.get("algorithm") != "ed25519":
        raise BundleError(f"bundle signature block {sig!r} is not an ed25519 signature; upgrade edgeops or re-sign")
    key_id = sig.get("key_id")
    if not isinstance(key_id, str) or not _HEX16.fullmatch(key_id):
        raise BundleError(f"bundle signature key_id {key_id!r} is not 16 hex digits; the bundle is corrupt")
    if not isinstance(sig.get("public_key"), str):
        raise BundleError("bundle signature block has no public_key; the bundle is corrupt: re-sign it")
    return key_id
