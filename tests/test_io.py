"""atomic_write: the old file or the new one, never half; permissions follow the umask; jsonable."""

from __future__ import annotations

import math
import os

import numpy as np
import pytest

from edgeops._io import atomic_write, jsonable


def test_replaces_content_with_umask_permissions(tmp_path):
    target = tmp_path / "sub" / "m.onnx"
    old = os.umask(0o022)
    try:
        atomic_write(target, b"first")
        atomic_write(target, "second")
    finally:
        os.umask(old)
    assert target.read_text() == "second"
    assert target.stat().st_mode & 0o777 == 0o644  # not mkstemp's private 0600
    assert sorted(os.listdir(target.parent)) == ["m.onnx"]


def test_copy_from_and_a_failed_write_keeps_the_old_file(tmp_path):
    src = tmp_path / "src.bin"
    src.write_bytes(bytes(range(256)) * 5000)
    target = tmp_path / "out.bin"
    atomic_write(target, copy_from=src)
    assert target.read_bytes() == src.read_bytes()
    with pytest.raises(IsADirectoryError, match="Is a directory"):
        atomic_write(target, copy_from=tmp_path)  # reading a folder fails mid-write
    assert target.read_bytes() == src.read_bytes()
    assert sorted(os.listdir(tmp_path)) == ["out.bin", "src.bin"]
    with pytest.raises(TypeError, match="give exactly one of data or copy_from"):
        atomic_write(target)


def test_jsonable():
    value = {"a": np.float32(1.5), "b": (np.int64(2), float("nan")), 3: [math.inf, "x"]}
    assert jsonable(value) == {"a": 1.5, "b": [2, None], "3": [None, "x"]}


@pytest.mark.parametrize("where", ["FILE/out.onnx", "FILE/a/b/out.onnx"])
def test_an_output_path_through_a_regular_file_is_one_usage_error(tmp_path, where):
    """The one output-path rule (output_folder): a path that runs through a regular file ended in a raw
    FileExistsError traceback from os.makedirs in convert and validate --report."""
    from edgeops._io import output_folder
    from edgeops.errors import UsageError

    (tmp_path / "FILE").write_text("a regular file")
    with pytest.raises(UsageError, match=f"cannot write .*: {tmp_path / 'FILE'} is a file, not a folder"):
        atomic_write(tmp_path / where, "x")
    with pytest.raises(UsageError, match="is a file, not a folder"):
        output_folder(tmp_path / where)
    assert sorted(os.listdir(tmp_path)) == ["FILE"]


def test_missing_output_folders_are_made_and_a_folder_is_not_a_file_name(tmp_path):
    from edgeops.errors import UsageError

    atomic_write(tmp_path / "a" / "b" / "out.txt", "x")
    assert (tmp_path / "a" / "b" / "out.txt").read_text() == "x"
    with pytest.raises(UsageError, match="it is a folder; give a file name"):
        atomic_write(tmp_path / "a", "x")
