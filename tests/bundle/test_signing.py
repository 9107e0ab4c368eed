"""Signatures: a signed bundle verifies with its key, and any tampering, wrong key or missing signature fails."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from edgeops import bundle
from edgeops.bundle import BundleError
from tests.bundle.crafting import members, replace, write_tar


def flip(src: Path, dst: Path, where: bytes, offset: int = 0) -> Path:
    """Copy ``src`` to ``dst`` with one byte flipped: at ``offset`` into the first occurrence of ``where``."""
    data = bytearray(src.read_bytes())
    at = data.index(where) + offset
    data[at] ^= 0x20 if data[at:at + 1].isalpha() else 0x01
    dst.write_bytes(bytes(data))
    return dst


def signature_offset(path: Path) -> int:
    import tarfile

    with tarfile.open(path) as tar:
        return tar.getmember("manifest.sig").offset_data


def test_signed_bundle_verifies_with_its_public_key(signed_mlp, keys):
    m = bundle.verify(signed_mlp, trusted_keys=[keys[1]], require_signature=True)
    assert m.signed and m.key_id == bundle.key_id(keys[1])
    assert bundle.verify(signed_mlp).signed  # without trusted keys: the signature is still checked for integrity


@pytest.mark.parametrize("target, offset, words", [
    pytest.param(b"Gemm", 1, "model.onnx does not match its sha256", id="model-byte"),
    pytest.param(b'"name": "digits"', 10, "signature .* does not match manifest.json", id="manifest-byte"),
    pytest.param(None, 5, "signature .* does not match manifest.json", id="signature-byte"),
])
@pytest.mark.parametrize("trusted", [False, True], ids=["no-trusted-keys", "trusted-key"])
def test_one_flipped_byte_fails_verification(tmp_path, signed_mlp, keys, target, offset, words, trusted):
    bad = tmp_path / "bad.eob"
    if target is None:
        data = bytearray(signed_mlp.read_bytes())
        data[signature_offset(signed_mlp) + offset] ^= 0x01
        bad.write_bytes(bytes(data))
    else:
        flip(signed_mlp, bad, target, offset)
    with pytest.raises(BundleError, match=words):
        bundle.verify(bad, trusted_keys=[keys[1]] if trusted else None)
    with pytest.raises(BundleError, match=words):
        bundle.extract(bad, tmp_path / "dest", trusted_keys=[keys[1]] if trusted else None)
    assert sorted(os.listdir(tmp_path)) == ["bad.eob"]


def test_a_key_that_is_not_trusted_fails(tmp_path, signed_mlp):
    _, other = bundle.keygen(tmp_path / "other")
    with pytest.raises(BundleError, match="not a trusted key"):
        bundle.verify(signed_mlp, trusted_keys=[other])


def test_a_bundle_resigned_by_someone_else_fails_against_the_real_key(tmp_path, examples, keys):
    evil_key, _ = bundle.keygen(tmp_path / "evil")
    forged = tmp_path / "forged.eob"
    bundle.create(examples / "digits_mlp.onnx", forged, name="digits", version="9.9.9", key=evil_key)
    bundle.verify(forged)  # intact, but signed by anyone
    with pytest.raises(BundleError, match="not a trusted key"):
        bundle.verify(forged, trusted_keys=[keys[1]])


@pytest.mark.parametrize("how", [
    pytest.param({"trusted_keys": "pub"}, id="trusted-keys-given"),
    pytest.param({"require_signature": True}, id="signature-required"),
])
def test_unsigned_bundle_fails_when_a_signature_is_required(unsigned_mlp, keys, how):
    kwargs = {k: [keys[1]] if v == "pub" else v for k, v in how.items()}
    with pytest.raises(BundleError, match="not signed, but a signature is required"):
        bundle.verify(unsigned_mlp, **kwargs)
    assert not bundle.verify(unsigned_mlp).signed


def test_a_stripped_signature_is_noticed(tmp_path, signed_mlp):
    items = [(i, d) for i, d in members(signed_mlp) if i.name != "manifest.sig"]
    stripped = write_tar(tmp_path / "stripped.eob", items)
    with pytest.raises(BundleError, match="signature was stripped"):
        bundle.verify(stripped)


def test_a_signature_of_the_wrong_size_fails(tmp_path, signed_mlp):
    bad = write_tar(tmp_path / "short.eob", replace(members(signed_mlp), "manifest.sig", b"x" * 63))
    with pytest.raises(BundleError, match="63 bytes, not the 64 of an Ed25519 signature"):
        bundle.verify(bad)


def test_a_bad_public_key_file_is_a_usage_error(tmp_path, signed_mlp, examples):
    from edgeops.errors import UsageError

    with pytest.raises(UsageError, match="not a PEM public key"):
        bundle.verify(signed_mlp, trusted_keys=[examples / "digits_mlp.profile.json"])
    with pytest.raises(UsageError, match="not found"):
        bundle.verify(signed_mlp, trusted_keys=[tmp_path / "nope.pub"])
