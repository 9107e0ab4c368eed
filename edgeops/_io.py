"""Small file and JSON helpers shared by every stage.

:func:`atomic_write` is the one way edgeops writes a file a reader may see at any
moment (models, profiles, reports): a temporary file in the same folder, fsync,
rename, then fsync of the folder, so a crash leaves the old file or the new one,
never half of either. :func:`jsonable` turns numpy values and non-finite floats
into plain JSON.
"""

from __future__ import annotations

import contextlib
import math
import os
import shutil
import tempfile
from collections.abc import Iterator
from typing import Any, BinaryIO


def atomic_write(path: str | os.PathLike[str], data: bytes | str | None = None, *,
                 copy_from: str | os.PathLike[str] | None = None) -> None:
    """Write ``data`` (or the content of the file ``copy_from``) to ``path`` atomically."""
    if (data is None) == (copy_from is None):
        raise TypeError("give exactly one of data or copy_from")
    with atomic_stream(path) as out:
        if copy_from is not None:
            with open(copy_from, "rb") as src:
                shutil.copyfileobj(src, out, 1 << 20)
        elif data is not None:  # always, by the check above
            out.write(data.encode("utf-8") if isinstance(data, str) else data)


@contextlib.contextmanager
def atomic_stream(path: str | os.PathLike[str]) -> Iterator[BinaryIO]:
    """A binary file to write ``path`` through, atomically: what the block writes appears at ``path``
    only when the block ends without an exception (temp file, fsync, rename, fsync of the folder)."""
    target = os.fspath(path)
    folder = output_folder(target)
    fd, tmp = tempfile.mkstemp(prefix=".edgeops-", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "wb") as out:
            yield out
            out.flush()
            os.fsync(out.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes files private; these are shared like any other
        os.replace(tmp, target)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    _fsync_dir(folder)


def output_folder(path: str | os.PathLike[str]) -> str:
    """The one rule for where edgeops writes an output file: missing folders above ``path`` are
    created; a path that runs through a regular file (``FILE/out.onnx``) or names a folder is a
    :class:`~edgeops.errors.UsageError` that says so. Returns the folder (absolute)."""
    from .errors import UsageError

    target = os.path.abspath(os.fspath(path))
    if os.path.isdir(target):
        raise UsageError(f"cannot write {os.fspath(path)}: it is a folder; give a file name")
    folder = os.path.dirname(target)
    probe = folder
    while probe and not os.path.exists(probe):
        probe = os.path.dirname(probe)
    if probe and not os.path.isdir(probe):
        raise UsageError(f"cannot write {os.fspath(path)}: {probe} is a file, not a folder")
    try:
        os.makedirs(folder, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"cannot create the folder {folder} for {os.fspath(path)}: {exc.strerror}") from exc
    return folder


def _fsync_dir(folder: str) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def jsonable(value: Any) -> Any:
    """Plain JSON types: numpy scalars to numbers, tuples to lists, NaN and inf to None."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if hasattr(value, "item") and callable(value.item) and not isinstance(value, (str, bytes)):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
