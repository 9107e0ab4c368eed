"""Strict, bounded JSON: the one way edgeops reads JSON that came from outside and writes JSON
that leaves the process.

:func:`loads` refuses a document larger than ``max_bytes`` or nested deeper than ``max_depth``
before the parser sees it (a ``[`` repeated 5000 times would otherwise end in a raw
``RecursionError``), refuses ``NaN``/``Infinity`` (not JSON) and duplicate keys, and raises the
caller's error class with a one-line reason. :func:`dumps` never writes ``NaN`` or ``Infinity``:
non-finite floats become ``null`` and numpy values plain numbers, so every receiver can parse it.
"""

from __future__ import annotations

import json
import re
from typing import Any

from ._io import jsonable
from .errors import DataError, EdgeOpsError

__all__ = ["loads", "dumps", "MAX_BYTES", "MAX_DEPTH"]

MAX_BYTES = 16 << 20
MAX_DEPTH = 64

# a JSON string (escapes included); what is inside one never counts as nesting
_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)
_BRACKETS = re.compile(rb"[\[\]{}]")


def depth(raw: bytes) -> int:
    """The deepest nesting of arrays and objects in ``raw`` (strings skipped)."""
    deepest = level = 0
    for m in _BRACKETS.finditer(_STRING.sub(b'""', raw)):
        if m.group() in (b"[", b"{"):
            level += 1
            deepest = max(deepest, level)
        else:
            level -= 1
    return deepest


def loads(raw: bytes | str, *, what: str, error: type[EdgeOpsError] = DataError,
          max_bytes: int = MAX_BYTES, max_depth: int = MAX_DEPTH, duplicates: bool = False) -> Any:
    """Parse ``raw`` as strict JSON, or raise ``error`` naming ``what`` (e.g. ``"manifest.json"``).

    ``duplicates=False`` refuses an object that repeats a key (a forged document can hide a second
    value behind the first)."""
    data = raw.encode("utf-8") if isinstance(raw, str) else bytes(raw)
    if len(data) > max_bytes:
        raise error(f"{what} is {len(data)} bytes, over the {max_bytes}-byte limit for JSON; "
                    "it is corrupt or not what edgeops wrote")
    deepest = depth(data)
    if deepest > max_depth:
        raise error(f"{what} nests arrays or objects {deepest} deep, over the limit of {max_depth}; "
                    "it is corrupt or hostile")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise error(f"{what} is not UTF-8 ({exc.reason} at byte {exc.start}); it is corrupt") from exc
    try:
        return json.loads(text, parse_constant=_no_constant,
                          object_pairs_hook=None if duplicates else _no_duplicates)
    except _Refused as exc:
        raise error(f"{what} {exc}; it is corrupt or not what edgeops wrote") from None
    except (ValueError, RecursionError) as exc:
        raise error(f"{what} is not valid JSON ({exc}); it is corrupt or truncated") from exc


def dumps(value: Any, **kwargs: Any) -> str:
    """``json.dumps`` that never writes NaN or Infinity (they become ``null``) and takes numpy values."""
    return json.dumps(jsonable(value), allow_nan=False, **kwargs)


class _Refused(ValueError):
    pass


def _no_constant(name: str) -> Any:
    raise _Refused(f"holds {name}, which is not JSON")


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict:
    out = dict(pairs)
    if len(out) != len(pairs):
        keys = [k for k, _ in pairs]
        dup = sorted({k for k in keys if keys.count(k) > 1})
        raise _Refused(f"repeats the key(s) {', '.join(dup)}")
    return out
