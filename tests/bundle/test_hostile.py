"""Hostile and broken bundles: each is refused with the reason, by verify, extract and the CLI, and writes nothing.

Every archive here is made by hand with tarfile from a good unsigned bundle, changed in one way.
"""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
from click.testing import CliRunner

from edgeops import bundle
from edgeops.bundle import BundleError
from edgeops.cli import cli
from tests.bundle.crafting import Items, entry, members, nested, replace, write_tar

DEEP = b"[" * 5000  # a raw RecursionError in json.loads, before edgeops bounded the nesting


def _manifest(items: Items, **changes) -> Items:
    data = json.loads(items[0][1])
    data.update(changes)
    return replace(items, "manifest.json", json.dumps(data, sort_keys=True).encode())


def _moved_manifest(items: Items) -> Items:
    return [items[1], items[0], *items[2:]]


def _without(items: Items, name: str) -> Items:
    return [(i, d) for i, d in items if i.name != name]


def _model_as(kind: bytes, link: str) -> callable:
    return lambda items, tmp: [entry("model.onnx", kind=kind, link=link) if i.name == "model.onnx" else (i, d)
                               for i, d in items]


# name -> (make(items, tmp) -> Items, expected message, verify options)
CASES = {
    "traversal": (lambda items, tmp: [*items, entry("../evil", b"pwned")], "path traversal", {}),
    "nested-traversal": (lambda items, tmp: [*items, entry("a/../../evil", b"pwned")], "path traversal", {}),
    "absolute-path": (lambda items, tmp: [*items, entry(f"{tmp}/evil", b"pwned")], "absolute path", {}),
    "symlink": (lambda items, tmp: [*items, entry("link", kind=tarfile.SYMTYPE, link="/etc/passwd")],
                "'link' is a symbolic link", {}),
    "model-is-a-symlink": (_model_as(tarfile.SYMTYPE, "/etc/passwd"), "'model.onnx' is a symbolic link", {}),
    "hardlink": (lambda items, tmp: [*items, entry("hard", kind=tarfile.LNKTYPE, link="model.onnx")],
                 "'hard' is a hard link", {}),
    "directory": (lambda items, tmp: [*items, entry("folder", kind=tarfile.DIRTYPE)], "is a directory", {}),
    "device": (lambda items, tmp: [*items, entry("dev", kind=tarfile.CHRTYPE)], "is a character device", {}),
    "fifo": (lambda items, tmp: [*items, entry("pipe", kind=tarfile.FIFOTYPE)], "is a FIFO", {}),
    "duplicate-name": (lambda items, tmp: [*items, entry("model.onnx", b"second copy")],
                       "'model.onnx' appears more than once", {}),
    "duplicate-name-other-case": (lambda items, tmp: [*items, entry("MODEL.onnx", b"second copy")],
                                  "appears more than once", {}),
    "extra-member": (lambda items, tmp: [*items, entry("extra.sh", b"rm -rf /")],
                     "'extra.sh' is not listed in the manifest", {}),
    "missing-member": (lambda items, tmp: _without(items, "profile.json"), "profile.json listed in the manifest are "
                       "missing", {}),
    "member-over-the-limit": (lambda items, tmp: items, "model.onnx is 19708 bytes, over the limit of 5000", {
        "max_member_bytes": 5000}),
    "member-larger-than-the-manifest-says": (lambda items, tmp: replace(items, "model.onnx", b"x" * 30000),
                                             "model.onnx is 30000 bytes but the manifest says 19708", {}),
    "manifest-version-99": (lambda items, tmp: _manifest(items, manifest_version=99),
                            "manifest_version 99 is not supported", {}),
    "manifest-not-first": (lambda items, tmp: _moved_manifest(items), "first member is 'model.onnx', not manifest.json",
                           {}),
    "manifest-not-json": (lambda items, tmp: replace(items, "manifest.json", b"\xff{not json"), "manifest.json is not "
                          "UTF-8", {}),
    "manifest-nested-5000-deep": (lambda items, tmp: replace(items, "manifest.json", DEEP), "manifest.json nests "
                                  "arrays or objects 5000 deep, over the limit of 64", {}),
    "manifest-nested-objects": (lambda items, tmp: replace(items, "manifest.json", b'{"a":' * 3000 + b"1" + b"}" * 3000),
                                "nests arrays or objects 3000 deep", {}),
    "manifest-name-with-a-path": (lambda items, tmp: _manifest(items, name="../../etc"), "is not a plain word", {}),
    "manifest-lists-a-traversal": (lambda items, tmp: _manifest(items, profile="../x", files={
        **json.loads(items[0][1])["files"], "../x": {"sha256": "0" * 64, "size": 1}}), "path traversal", {}),
    "manifest-repeats-a-key": (lambda items, tmp: replace(items, "manifest.json", items[0][1][:-2] + b', "name": "x"}\n'),
                               "repeats the key", {}),
}


CASES.update({
    "gnu-long-name": (lambda items, tmp: [*items, entry("x" * 150, b"long")], "a GNU long-name entry", {}),
    "global-pax-header": (lambda items, tmp: [entry("pax_global_header", kind=tarfile.XGLTYPE), *items],
                          "a global pax header", {}),
})
FORMATS = {"absolute-path": tarfile.PAX_FORMAT, "gnu-long-name": tarfile.GNU_FORMAT}


def _build(tmp_path: Path, base: Path, case: str) -> Path:
    make = CASES[case][0]
    fmt = FORMATS.get(case, tarfile.USTAR_FORMAT)
    return write_tar(tmp_path / "bad.eob", make(members(base), tmp_path), fmt)


def _assert_refused(tmp_path: Path, bad: Path, words: str, options: dict) -> None:
    with pytest.raises(BundleError, match=words):
        bundle.verify(bad, **options)
    with pytest.raises(BundleError, match=words):
        bundle.extract(bad, tmp_path / "dest", **options)
    assert sorted(os.listdir(tmp_path)) == [bad.name]  # no dest left, nothing beside it
    # an escape from dest lands in tmp_path or one level up; other tests' files live beside it, so look there only
    escaped = [n for _, _, files in os.walk(tmp_path) for n in files] + os.listdir(tmp_path.parent)
    assert not any(name == "evil" for name in escaped)


@pytest.mark.parametrize("case", list(CASES))
def test_hostile_archive_is_refused(tmp_path, unsigned_mlp, case):
    _, words, options = CASES[case]
    bad = _build(tmp_path, unsigned_mlp, case)
    _assert_refused(tmp_path, bad, words, options)


CLI_CASES = ["traversal", "symlink", "duplicate-name", "manifest-version-99", "extra-member", "manifest-nested-5000-deep"]


@pytest.mark.parametrize("case, command", [
    *((case, "verify") for case in CLI_CASES),
    *((case, "inspect") for case in CLI_CASES if case != "extra-member"),  # inspect reads, it does not verify
])
def test_hostile_archive_is_exit_1_and_one_line_in_the_cli(tmp_path, unsigned_mlp, case, command):
    bad = _build(tmp_path, unsigned_mlp, case)
    result = CliRunner().invoke(cli, ["bundle", command, str(bad)])
    assert result.exit_code == 1, result.output
    assert result.stdout == ""
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1
    assert CASES[case][1] in result.stderr
    assert "Traceback" not in result.output and isinstance(result.exception, SystemExit)


@pytest.mark.parametrize("command", ["verify", "inspect"])
def test_a_manifest_nested_5000_deep_is_one_line_in_a_real_process(tmp_path, unsigned_mlp, command):
    """Regression: ``[`` * 5000 as manifest.json was a RecursionError traceback, not a bundle error."""
    bad = _build(tmp_path, unsigned_mlp, "manifest-nested-5000-deep")
    proc = subprocess.run([sys.executable, "-m", "edgeops", "bundle", command, str(bad)], capture_output=True,
                          text=True)
    assert proc.returncode == 1, proc.stderr
    assert proc.stderr.startswith("error: ") and proc.stderr.count("\n") == 1 and "5000 deep" in proc.stderr
    assert "Traceback" not in proc.stderr and "RecursionError" not in proc.stderr


def test_a_manifest_nested_5000_deep_is_a_bundle_error_for_load(tmp_path, unsigned_mlp):
    import edgeops

    bad = _build(tmp_path, unsigned_mlp, "manifest-nested-5000-deep")
    with pytest.raises(BundleError, match="5000 deep"):
        edgeops.load(bad)
    with pytest.raises(BundleError, match="5000 deep"):
        bundle.read_manifest(bad)


def _offsets(path: Path) -> dict[str, int]:
    with tarfile.open(path) as tar:
        infos = tar.getmembers()
    model = next(i for i in infos if i.name == "model.onnx")
    last = infos[-1]
    return {"inside-the-first-header": 100, "inside-the-manifest": 600, "inside-the-model": model.offset_data + 5000,
            "inside-a-later-header": model.offset + 200, "at-a-member-boundary": model.offset,
            "before-the-end-block": last.offset_data + -(-last.size // 512) * 512}


@pytest.mark.parametrize("where", ["inside-the-first-header", "inside-the-manifest", "inside-the-model",
                                   "inside-a-later-header", "at-a-member-boundary", "before-the-end-block"])
def test_truncated_bundle_is_refused(tmp_path, unsigned_mlp, where):
    data = unsigned_mlp.read_bytes()
    bad = tmp_path / "cut.eob"
    bad.write_bytes(data[:_offsets(unsigned_mlp)[where]])
    words = "not an edgeops bundle" if where == "inside-the-first-header" else "truncated"
    _assert_refused(tmp_path, bad, words, {})


def _gzipped(base: Path) -> bytes:
    return gzip.compress(base.read_bytes())


NOT_BUNDLES = {
    "empty-file": (lambda base, ex: b"", "the file is empty"),
    "random-bytes": (lambda base, ex: bytes(range(256)) * 8, "not a POSIX tar archive"),
    "an-onnx-model": (lambda base, ex: (ex / "digits_mlp.onnx").read_bytes(), "not a POSIX tar archive"),
    "gzipped-bundle": (lambda base, ex: _gzipped(base), "not a POSIX tar archive"),
    "zeros": (lambda base, ex: bytes(10240), "empty"),
    "corrupt-later-header": (lambda base, ex: _corrupt_header(base), "corrupt tar header"),
    "data-after-the-end": (lambda base, ex: base.read_bytes() + base.read_bytes(), "unexpected data after the end"),
}


def _corrupt_header(base: Path) -> bytes:
    data = bytearray(base.read_bytes())
    with tarfile.open(base) as tar:
        at = tar.getmember("model.onnx").offset
    data[at + 3] ^= 0x01  # the name changes, the checksum no longer matches
    return bytes(data)


@pytest.mark.parametrize("case", list(NOT_BUNDLES))
def test_a_file_that_is_not_a_bundle_is_refused(tmp_path, unsigned_mlp, examples, case):
    make, words = NOT_BUNDLES[case]
    bad = tmp_path / "x.eob"
    bad.write_bytes(make(unsigned_mlp, examples))
    _assert_refused(tmp_path, bad, words, {})
    with pytest.raises(BundleError, match=words):
        bundle.read_manifest(bad)


def test_extract_refuses_a_folder_that_is_not_empty(tmp_path, unsigned_mlp):
    dest = tmp_path / "dest"
    dest.mkdir()
    (dest / "keep.txt").write_text("mine")
    with pytest.raises(BundleError, match="not empty"):
        bundle.extract(unsigned_mlp, dest)
    assert os.listdir(dest) == ["keep.txt"]


def test_read_manifest_does_not_check_hashes(tmp_path, unsigned_mlp):
    bad = tmp_path / "bad.eob"
    data = bytearray(unsigned_mlp.read_bytes())
    data[data.index(b"Gemm")] ^= 0x01
    bad.write_bytes(bytes(data))
    assert bundle.read_manifest(bad).name == "digits"
    with pytest.raises(BundleError, match="sha256"):
        bundle.verify(bad)


def test_a_bundle_repacked_with_pax_headers_still_verifies(tmp_path, signed_mlp, keys):
    items = members(signed_mlp)
    for info, _ in items:
        info.mtime = 1234567890.5  # a float mtime makes tarfile write a pax header before each member
        info.uname = "ü"
    repacked = write_tar(tmp_path / "pax.eob", items, tarfile.PAX_FORMAT)
    assert repacked.read_bytes().count(b"ustar\x0000") > len(items)  # pax headers were written
    assert bundle.verify(repacked, trusted_keys=[keys[1]]).signed


def test_a_failed_extract_removes_the_folders_it_made(tmp_path, unsigned_mlp):
    bad = _build(tmp_path, unsigned_mlp, "extra-member")
    with pytest.raises(BundleError, match="'extra.sh' is not listed in the manifest"):
        bundle.extract(bad, tmp_path / "a" / "b" / "dest")
    assert sorted(os.listdir(tmp_path)) == ["bad.eob"]


@pytest.mark.parametrize("signed", [False, True], ids=["unsigned", "signed"])
def test_a_bundle_inside_a_bundle_is_refused_by_verify_extract_and_load(tmp_path, unsigned_mlp, keys, signed):
    """The model member holds another bundle's bytes under the name model.onnx, with every hash right
    (and a good signature): each reader refuses it, whatever the member's name (regression: verify and
    extract accepted it, so `edgeops store install` and OTA installed a bundle that edgeops.load refuses)."""
    import edgeops

    bad = nested(unsigned_mlp, unsigned_mlp, tmp_path / "nested.eob", key=str(keys[0]) if signed else None)
    words = "model.onnx is itself an edgeops bundle"
    trusted = {"trusted_keys": [keys[1]]} if signed else {}
    _assert_refused(tmp_path, bad, words, trusted)
    with pytest.raises(BundleError, match=words):
        edgeops.load(bad)
    assert sorted(os.listdir(tmp_path)) == [bad.name]
    result = CliRunner().invoke(cli, ["bundle", "verify", str(bad)])
    assert result.exit_code == 1 and words in result.stderr and result.stderr.count("\n") == 1


def test_create_refuses_a_bundle_as_the_model(tmp_path, unsigned_mlp):
    from edgeops.errors import ModelFormatError

    renamed = tmp_path / "model.onnx"
    renamed.write_bytes(unsigned_mlp.read_bytes())
    for model in (unsigned_mlp, renamed):
        with pytest.raises(ModelFormatError, match="an edgeops bundle"):
            bundle.create(model, tmp_path / "outer.eob", name="outer", version="1")
    assert sorted(os.listdir(tmp_path)) == ["model.onnx"]
