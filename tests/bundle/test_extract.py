"""extract: trust options honoured, what it writes (paths, modes, the signature), and where it refuses to write.

Each test guards a change the rest of the suite let through (found by
``python tools/mutation.py reader``).
"""

from __future__ import annotations

import os
import re
import stat

import pytest

from edgeops import bundle
from edgeops.bundle import BundleError, reader


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_extract_refuses_a_bundle_signed_by_a_key_that_is_not_trusted(tmp_path, signed_mlp):
    _, other = bundle.keygen(tmp_path / "other")
    with pytest.raises(BundleError, match="which is not a trusted key"):
        bundle.extract(signed_mlp, tmp_path / "dest", trusted_keys=[other])
    assert not (tmp_path / "dest").exists()


def test_extract_refuses_an_unsigned_bundle_when_a_signature_is_required(tmp_path, unsigned_mlp):
    with pytest.raises(BundleError, match="not signed, but a signature is required"):
        bundle.extract(unsigned_mlp, tmp_path / "dest", require_signature=True)
    assert not (tmp_path / "dest").exists()


def test_extract_writes_the_signature_and_returns_the_paths_of_every_part(tmp_path, signed_mlp, keys):
    got = bundle.extract(signed_mlp, tmp_path / "dest", trusted_keys=[keys[1]])
    dest = str(tmp_path / "dest")
    manifest = got.manifest.data
    assert got.dir == dest and got.model_path == os.path.join(dest, manifest["model"]["file"])
    assert got.profile_path == os.path.join(dest, manifest["profile"])
    assert got.sample_path == os.path.join(dest, manifest["sample"])
    signature = (tmp_path / "dest" / "manifest.sig").read_bytes()
    assert len(signature) == 64
    assert signature == _member(signed_mlp, "manifest.sig")


def _member(path, name: str) -> bytes:
    import tarfile

    with tarfile.open(path, "r:") as tar:
        return tar.extractfile(name).read()


def test_a_bundle_without_a_profile_or_sample_has_no_paths_for_them(tmp_path, examples):
    out = tmp_path / "bare.eob"
    (tmp_path / "model").mkdir()
    model = tmp_path / "model" / "digits_mlp.onnx"  # no profile next to it
    model.write_bytes((examples / "digits_mlp.onnx").read_bytes())
    bundle.create(model, out, name="digits", version="1.0.0")
    got = bundle.extract(out, tmp_path / "dest")
    assert got.profile_path is None and got.sample_path is None


def test_extracted_files_are_plain_readable_files_not_executable(tmp_path, unsigned_mlp):
    bundle.extract(unsigned_mlp, tmp_path / "dest")
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in (tmp_path / "dest").iterdir()}
    assert modes and set(modes.values()) == {0o644 & ~_umask()}, modes


def test_extract_never_writes_through_a_link_planted_after_its_checks(tmp_path, unsigned_mlp, monkeypatch):
    """A symlink that appears in the folder between the emptiness check and the writes is not followed."""
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    prepare = reader._prepare_dest

    def prepare_then_plant(folder):
        made = prepare(folder)
        os.symlink(victim, os.path.join(folder, "manifest.json"))
        return made

    monkeypatch.setattr(reader, "_prepare_dest", prepare_then_plant)
    target = os.path.join(str(tmp_path / "dest"), "manifest.json")
    with pytest.raises(BundleError, match=f"^cannot write {re.escape(target)}: File exists$"):
        bundle.extract(unsigned_mlp, tmp_path / "dest")
    assert victim.read_text() == "keep me"


def test_extract_into_a_file_says_it_is_not_a_folder(tmp_path, unsigned_mlp):
    dest = tmp_path / "dest"
    dest.write_text("a file")
    with pytest.raises(BundleError, match=f"^cannot extract into {re.escape(str(dest))}: it exists and is not a "
                                          "folder$"):
        bundle.extract(unsigned_mlp, dest)


def test_extract_under_a_file_says_why_the_folder_cannot_be_made(tmp_path, unsigned_mlp):
    (tmp_path / "file").write_text("a file")
    dest = tmp_path / "file" / "dest"
    with pytest.raises(BundleError, match=f"^cannot create {re.escape(str(dest))}: Not a directory; check the path "
                                          "and permissions$"):
        bundle.extract(unsigned_mlp, dest)
