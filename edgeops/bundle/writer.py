"""Making a bundle: :func:`create` packs a model and what travels with it into one ``.eob`` file.

The model's signature (inputs, outputs) and quantization are read from the file itself
with :func:`edgeops.formats.read_summary`, so no runtime is needed on the build host. The
reference profile defaults to ``NAME.profile.json`` next to the model; it and a JSON report are
parsed with :func:`edgeops._json.loads` (bounded size and nesting, strict). Each part is hashed
once when the manifest is built and again while it is copied into the archive; a file that
changed in between fails the build instead of producing a bundle that never verifies.
The archive is written to a temporary file beside ``output``, fsynced, then renamed.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import os
import tarfile
import time
import uuid
import zipfile
from dataclasses import dataclass
from typing import Any

import numpy as np

from .. import _json
from .._io import atomic_stream, hash_file, jsonable, profile_path
from .._version import __version__
from ..errors import DataError, UsageError
from .manifest import _WORD, FORMAT, MANIFEST, MANIFEST_VERSION, MAX_MEMBER_BYTES, SIGNATURE, Manifest, dump_manifest

__all__ = ["create"]

_QUANT_OPS = {"QuantizeLinear", "DequantizeLinear", "DynamicQuantizeLinear", "MatMulInteger", "ConvInteger",
              "QUANTIZE", "DEQUANTIZE"}


@dataclass
class _Part:
    """One member to pack: from a file (``path``) or from memory (``data``)."""

    name: str
    sha256: str
    size: int
    path: str | None = None
    data: bytes | None = None


def _from_file(name: str, path: str) -> _Part:
    sha256, size = hash_file(path)
    return _Part(name, sha256, size, path=path)


def _from_bytes(name: str, data: bytes) -> _Part:
    return _Part(name, hashlib.sha256(data).hexdigest(), len(data), data=data)


def create(model: str | os.PathLike[str], output: str | os.PathLike[str], *, name: str, version: str,
           key: str | None = None, profile: str | None = None, report: str | None = None, sample: str | None = None,
           target: str | None = None, preprocessing: dict | None = None, tolerances: dict | None = None) -> Manifest:
    """Pack ``model`` into the bundle ``output`` and return its manifest; signed when ``key`` (a PREFIX.key) is given.

    ``profile`` defaults to ``NAME.profile.json`` next to the model when that exists;
    ``report`` is a validate report (``.json``: its summary goes into the manifest, or
    ``.html``); ``sample`` a data file (``.npz``, or ``.npy`` for a single-input model; stored
    as ``.npz`` keyed by input name) the device can run as a health check, compared within ``tolerances`` (e.g. ``{"max_abs": 1e-3}``).
    """
    from ..formats import read_summary

    for label, value in (("name", name), ("version", version)):
        if not isinstance(value, str) or not _WORD.fullmatch(value):
            raise UsageError(f"bundle {label} {value!r} must be a plain word: letters, digits, '.', '_', '+', '-' "
                             "(at most 128, starting with a letter or digit)")
    if target is not None and not isinstance(target, str):
        raise UsageError(f"target must be a string such as 'rpi4', not {type(target).__name__}")
    model_path = os.fspath(model)
    summary = read_summary(model_path)
    if summary.size_bytes > MAX_MEMBER_BYTES:
        raise UsageError(f"{model_path} is {summary.size_bytes} bytes, over the {MAX_MEMBER_BYTES} a bundle member "
                         "may be by default")
    signer = None
    if key is not None:
        from .keys import load_private_key

        signer = load_private_key(key)
    parts = [_from_file(f"model.{summary.format}", model_path)]
    profile_part = _profile(model_path, profile)
    report_part, validation = _report(report)
    sample_part = _sample(sample, [t.name for t in summary.inputs])
    parts += [p for p in (profile_part, report_part, sample_part) if p is not None]
    data: dict[str, Any] = {
        "format": FORMAT, "manifest_version": MANIFEST_VERSION, "name": name, "version": version,
        "id": uuid.uuid4().hex, "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "edgeops": __version__,
        "model": {"file": parts[0].name, "format": summary.format, "sha256": parts[0].sha256,
                  "size": parts[0].size, "inputs": [t.to_dict() for t in summary.inputs],
                  "outputs": [t.to_dict() for t in summary.outputs]},
        "files": {p.name: {"sha256": p.sha256, "size": p.size} for p in parts},
        "target": target, "preprocessing": _plain_dict("preprocessing", preprocessing),
        "quantization": _quantization(summary), "profile": profile_part and profile_part.name,
        "validation": validation, "sample": sample_part and sample_part.name,
        "tolerances": _tolerances(tolerances), "signature": _signature_block(signer),
    }
    raw = dump_manifest(data)
    signature = None
    if signer is not None:
        from .keys import sign

        signature = sign(signer, raw)
    _write_archive(os.fspath(output), raw, signature, parts)
    return Manifest(raw=raw, data=data, signed=signature is not None,
                    key_id=data["signature"]["key_id"] if signer is not None else None)


def _signature_block(signer: Any) -> dict[str, str] | None:
    if signer is None:
        return None
    from .keys import key_id, public_key_b64

    public = signer.public_key()
    return {"algorithm": "ed25519", "key_id": key_id(public), "public_key": public_key_b64(public)}


def _readable(path: str, what: str) -> str:
    if not os.path.isfile(path):
        raise DataError(f"{what} {path} not found (or not a file); check the path")
    return path


def _profile(model_path: str, profile: str | None) -> _Part | None:
    if profile is None:
        guess = profile_path(model_path)
        if not os.path.isfile(guess):
            return None
        profile = guess
    path = _readable(os.fspath(profile), "profile")
    loaded = _json_file(path, "profile")
    if not isinstance(loaded, dict) or not ("inputs" in loaded or "outputs" in loaded):
        raise DataError(f"{path} is not a reference profile (a JSON object with 'inputs'/'outputs'); "
                        "write one with edgeops validate --profile")
    return _from_file("profile.json", path)


def _json_file(path: str, what: str) -> Any:
    """The file's JSON, strictly and boundedly parsed (:func:`edgeops._json.loads`), or a DataError."""
    try:
        with open(path, "rb") as fh:
            size = os.fstat(fh.fileno()).st_size
            if size > _json.MAX_BYTES:
                raise DataError(f"{what} {path} is {size} bytes, over the {_json.MAX_BYTES}-byte limit for JSON; "
                                "is it the right file?")
            raw = fh.read()
    except OSError as exc:
        raise DataError(f"{what} {path} is not readable ({exc.strerror or exc}); check the file") from exc
    try:
        return _json.loads(raw, what="the file", error=DataError)
    except DataError as exc:
        raise DataError(f"{what} {path} is not readable JSON: {exc}") from exc


def _report(report: str | None) -> tuple[_Part | None, dict | None]:
    """The report member and, for a JSON validate report, the summary that goes into the manifest."""
    if report is None:
        return None, None
    path = _readable(os.fspath(report), "report")
    ext = os.path.splitext(path)[1].lower()
    if ext in (".html", ".htm"):
        return _from_file("report.html", path), None
    if ext != ".json":
        raise UsageError(f"report {path} must be the .json or .html written by edgeops validate")
    loaded = _json_file(path, "report")
    if not isinstance(loaded, dict) or "passed" not in loaded:
        raise DataError(f"{path} is not an edgeops validate report (no 'passed'); write one with "
                        "edgeops validate --json > report.json")
    keys = ("passed", "samples", "gates", "failures", "accuracy", "reference", "candidate")
    return _from_file("report.json", path), {k: loaded[k] for k in keys if k in loaded}


def _sample(sample: str | None, input_names: list[str]) -> _Part | None:
    """The health-check sample, stored as an uncompressed ``.npz`` keyed by the model's input names."""
    if sample is None:
        return None
    from ..datafiles import load_inputs

    arrays = load_inputs(_readable(os.fspath(sample), "sample"), input_names)  # no pickle; checks the keys
    return _from_bytes("sample.npz", _npz(arrays))


def _npz(arrays: dict[str, np.ndarray]) -> bytes:
    """What ``np.savez`` writes (an uncompressed zip of ``NAME.npy``), for any input name: ``savez(**arrays)``
    would take an input called ``file`` or ``allow_pickle`` for its own parameter."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED, allowZip64=True) as zf:
        for name, array in arrays.items():
            with zf.open(name + ".npy", "w", force_zip64=True) as fh:
                np.lib.format.write_array(fh, np.asanyarray(array), allow_pickle=False)
    return buf.getvalue()


def _plain_dict(what: str, value: dict | None) -> dict | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise UsageError(f"{what} must be a dict, not {type(value).__name__}")
    try:
        return json.loads(json.dumps(jsonable(value), allow_nan=False))
    except (TypeError, ValueError, RecursionError) as exc:
        raise UsageError(f"{what} must hold plain JSON values (strings, numbers, lists, dicts): {exc}") from exc


def _tolerances(value: dict | None) -> dict | None:
    plain = _plain_dict("tolerances", value)
    for k, v in (plain or {}).items():
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
            raise UsageError(f"tolerance {k}={v!r} must be a non-negative number, e.g. {{'max_abs': 1e-3}}")
    return plain


def _quantization(summary: Any) -> dict:
    """What the model file shows of its quantization: quantize ops and integer inputs/outputs."""
    ops = {op: n for op, n in summary.ops.items() if op in _QUANT_OPS or op.startswith("QLinear")}
    io_dtypes = sorted({t.dtype for t in (*summary.inputs, *summary.outputs)})
    integer_io = [d for d in io_dtypes if d in ("int8", "uint8", "int16")]
    return {"quantized": bool(ops or integer_io), "ops": ops, "io_dtypes": io_dtypes}


def _write_archive(output: str, raw: bytes, signature: bytes | None, parts: list[_Part]) -> None:
    with atomic_stream(output) as out:
        with tarfile.open(fileobj=out, mode="w", format=tarfile.USTAR_FORMAT) as tar:
            _add(tar, _from_bytes(MANIFEST, raw))
            if signature is not None:
                _add(tar, _from_bytes(SIGNATURE, signature))
            for part in parts:
                _add(tar, part)


class _HashingReader:
    def __init__(self, fh: Any):
        self._fh = fh
        self.sha256 = hashlib.sha256()

    def read(self, n: int = -1) -> bytes:
        data = self._fh.read(n)
        self.sha256.update(data)
        return data


def _add(tar: tarfile.TarFile, part: _Part) -> None:
    info = tarfile.TarInfo(part.name)
    info.size, info.mode, info.mtime = part.size, 0o644, int(time.time())
    if part.data is not None:
        tar.addfile(info, io.BytesIO(part.data))
        return
    assert part.path is not None
    with open(part.path, "rb") as fh:
        reader = _HashingReader(fh)
        try:
            tar.addfile(info, reader)
        except OSError as exc:  # tarfile: "unexpected end of data"
            raise DataError(f"{part.path} shrank while the bundle was written; try again") from exc
    if reader.sha256.hexdigest() != part.sha256:
        raise DataError(f"{part.path} changed while the bundle was written; try again once it is stable")
