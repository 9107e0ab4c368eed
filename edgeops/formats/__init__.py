"""Model files without their frameworks: read and validate .onnx and .tflite with the stdlib alone.

``edgeops info MODEL`` and the runtime's pre-load check use these, so they must work on a
device that has only numpy and click: the ONNX reader walks the protobuf wire format
itself (no ``onnx``) and the TFLite reader is a bounds-checked flatbuffer walker (no
``flatbuffers`` / ``ai_edge_litert``) that also rejects what could crash the interpreter.

    >>> summary = read_summary("model.tflite")          # doctest: +SKIP
    >>> summary.inputs[0].shape, summary.ops             # doctest: +SKIP
    ((None, 4), {'FULLY_CONNECTED': 1, 'SOFTMAX': 1})

Every failure is a :class:`~edgeops.errors.ModelNotFoundError` (path missing or
unreadable) or a :class:`~edgeops.errors.ModelFormatError` (anything wrong with the bytes);
no other exception escapes for any input bytes.
"""

from __future__ import annotations

import errno
import mmap
import os
import stat

from edgeops.errors import ModelFormatError, ModelLoadError, ModelNotFoundError

from ._summary import ModelSummary, TensorInfo, format_error
from .onnx_file import looks_like_onnx, onnx_external_files, read_onnx
from .tflite_file import read_tflite, tflite_io_map

__all__ = [
    "ModelSummary",
    "TensorInfo",
    "sniff_format",
    "read_onnx",
    "read_tflite",
    "read_summary",
    "check_model_path",
    "path_error",
    "load_error",
    "format_error",
    "tflite_io_map",
    "onnx_external_files",
]

SNIFF_BYTES = 512  # how much of a file sniff_format needs (a tar header, for bundles)
MMAP_BYTES = 64 << 20  # larger files are mapped, not read into memory


def sniff_format(head: bytes) -> str | None:
    """Guess a model format from the first bytes of a file (``SNIFF_BYTES`` are plenty).

    ``"tflite"`` (file identifier ``TFL3`` at byte 4), ``"bundle"`` (a tar whose first member is
    ``manifest.json``: an edgeops bundle), ``"zip"`` (an archive, not a model), ``"onnx"`` (starts like a protobuf ModelProto), else ``None``.
    """
    head = bytes(head[:SNIFF_BYTES])
    if head[4:8] == b"TFL3":
        return "tflite"
    if head.startswith(b"PK\x03\x04"):
        return "zip"
    if head.startswith(b"manifest.json\0") and head[257:262] == b"ustar":
        return "bundle"
    if looks_like_onnx(head):
        return "onnx"
    return None


def read_summary(path: str | os.PathLike) -> ModelSummary:
    """Read a .onnx or .tflite file and summarize it; the content decides, then the extension."""
    name = os.fspath(path)
    try:
        with open(name, "rb") as f:
            info = os.fstat(f.fileno())
            if not stat.S_ISREG(info.st_mode):
                raise _not_regular(name)
            if info.st_size < MMAP_BYTES:
                return _summarize(f.read(), name)
            with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as data:
                return _summarize(data, name)
    except ModelNotFoundError:
        raise
    except OSError as exc:
        raise path_error(name, exc) from exc


def path_error(name: str, exc: OSError) -> ModelNotFoundError:
    """The one message for a model path that cannot be opened (missing, a folder, unreadable),
    whichever command or library call opens it."""
    if isinstance(exc, FileNotFoundError):
        return ModelNotFoundError(f"{name}: not found (no such file); check the path")
    if isinstance(exc, IsADirectoryError):
        return ModelNotFoundError(f"{name}: is a directory, not a model file; pass the .onnx or "
                                  ".tflite file inside it")
    return ModelNotFoundError(f"{name}: not readable ({exc.strerror or exc}); check the path and its permissions")


def _not_regular(name: str) -> ModelNotFoundError:
    return ModelNotFoundError(f"{name}: not a regular file; pass a .onnx or .tflite file")


def check_model_path(path: str | os.PathLike) -> str:
    """``path`` as a string when it names a readable regular file, else the :func:`path_error`
    for it. Nothing is opened (opening a FIFO would block)."""
    name = os.fspath(path)
    try:
        info = os.stat(name)
    except OSError as exc:
        raise path_error(name, exc) from exc
    if stat.S_ISDIR(info.st_mode):
        raise path_error(name, IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), name))
    if not stat.S_ISREG(info.st_mode):
        raise _not_regular(name)
    if not os.access(name, os.R_OK):
        raise path_error(name, PermissionError(errno.EACCES, os.strerror(errno.EACCES), name))
    return name


def load_error(path: str | os.PathLike, exc: BaseException, *, reader: str) -> ModelLoadError:
    """The one error for a model file that ``reader`` (onnx, onnxruntime, the TFLite interpreter)
    could not open: the precise error of the stdlib readers (missing, empty, truncated at byte N,
    not a model) when they find the fault, else a :class:`ModelFormatError` quoting ``reader``."""
    name = os.fspath(path)
    try:
        read_summary(name)
    except ModelLoadError as precise:
        return precise
    text = str(exc).strip()
    msg = text.splitlines()[0][:300] if text else type(exc).__name__
    return ModelFormatError(f"{name}: {reader} cannot load the model ({msg}); re-export it or check the copy")


def _summarize(data, name: str) -> ModelSummary:
    kind = sniff_format(data)
    ext = os.path.splitext(name)[1].lower()
    if kind == "tflite" or (kind is None and ext == ".tflite"):
        return read_tflite(data, source=name)
    if kind == "onnx" or (kind is None and ext == ".onnx"):
        return read_onnx(data, source=name)
    if kind == "bundle":
        raise ModelFormatError(f"{name}: an edgeops bundle; `edgeops bundle inspect` shows it and "
                               "edgeops.load opens it")
    if kind == "zip":
        raise ModelFormatError(f"{name}: a zip archive, not a .onnx or .tflite file; extract the model "
                               "first (edgeops bundles are .eob files, which edgeops.load opens)")
    if not data:
        raise ModelFormatError(f"{name}: the file is empty; re-export the model or check the copy")
    raise ModelFormatError(f"{name}: neither an ONNX nor a TFLite model (starts with {bytes(data[:8])!r}); "
                           "pass a .onnx or .tflite file")
