"""The OTA wire format, one module for both ends: the device's :mod:`.ota` and the host's
:mod:`edgeops.deploy.mqtt` import it, so the two cannot drift apart.

Topics under ``edgeops/<fleet>/<device>/`` (``base``): the offer on ``cmd/ota``, the chunks as raw
bytes on ``ota/<deployment>/<index>`` (QoS 1), the device's answers as events on ``events``
(:class:`Kind`), the last one ``ota.result`` with an :class:`Outcome`. The offer::

    {"deployment": "d1-ab12", "created": 1700000000000, "bundle_sha256": "...", "size": 20480,
     "chunk_size": 4096, "chunks": 5, "chunk_sha256": ["...", ...]}

is read with :func:`edgeops._json.loads` (bounded size and depth, no NaN, no repeated keys) and
checked by :func:`parse_offer`.
"""

from __future__ import annotations

import re
from typing import Any, TypedDict, cast

from .. import _json
from .._strenum import StrEnum
from ..errors import DataError

__all__ = ["MAX_CHUNKS", "MAX_CHUNK_SIZE", "Kind", "Offer", "OfferError", "Outcome", "chunk_filter", "chunk_topic",
           "deployment_of", "encode_offer", "make_offer", "offer_topic", "parse_chunk_topic", "parse_offer"]

MAX_CHUNKS = 1 << 20
MAX_CHUNK_SIZE = 16 << 20  # what the host sends at most; a saved offer is checked against it

_ID = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
_HEX64 = re.compile(r"^[0-9a-f]{64}$")


class Kind(StrEnum):
    """The ``kind`` of the events the device's OTA publishes."""

    NEED = "ota.need"  # {deployment, missing: [indices], reason, have, chunks}: send these chunks
    PROGRESS = "ota.progress"  # {deployment, have, chunks, bytes}
    STATE = "ota.state"  # {deployment, state, previous, event, reason, version}: one transition
    RESULT = "ota.result"  # {deployment, outcome, reason, version}: the verdict
    ERROR = "ota.error"  # a malformed offer without a deployment, or a bug in the worker


class Outcome(StrEnum):
    """How an update ended (``ota.result``'s ``outcome``): the machine's final states."""

    COMMITTED = "committed"  # the new model runs, and stays
    REFUSED = "refused"  # the bundle did not check out (signature, offer, disk): nothing changed
    ROLLED_BACK = "rolled_back"  # the new model failed its health check: the old one runs again
    FAILED = "failed"  # the transfer stalled, or a rollback had nothing to go back to
    CANCELLED = "cancelled"  # a newer offer took its place


class Offer(TypedDict):
    """A checked offer (:func:`parse_offer` keeps any other keys the payload has, too)."""

    deployment: str
    created: int  # milliseconds: of two offers, the older one is cancelled
    bundle_sha256: str
    size: int
    chunk_size: int
    chunks: int
    chunk_sha256: list[str]


class OfferError(ValueError):
    """A ``cmd/ota`` payload that is not a usable offer."""


def offer_topic(base: str) -> str:
    return f"{base}/cmd/ota"


def chunk_topic(base: str, deployment: str, index: int) -> str:
    return f"{base}/ota/{deployment}/{index}"


def chunk_filter(base: str) -> str:
    """The subscription that receives every chunk of every deployment."""
    return f"{base}/ota/+/+"


def parse_chunk_topic(base: str, topic: str) -> tuple[str, int] | None:
    """``(deployment, index)`` of a chunk topic; None for another topic under ``<base>/ota/``."""
    parts = topic[len(base) + 5:].split("/")
    if len(parts) == 2 and parts[1].isdigit():
        return parts[0], int(parts[1])
    return None


def make_offer(deployment: str, created: int, bundle_sha256: str, size: int, chunk_size: int,
               chunk_sha256: list[str]) -> Offer:
    return {"deployment": deployment, "created": created, "bundle_sha256": bundle_sha256, "size": size,
            "chunk_size": chunk_size, "chunks": len(chunk_sha256), "chunk_sha256": chunk_sha256}


def encode_offer(offer: Offer) -> bytes:
    return _json.dumps(offer).encode()


def parse_offer(payload: bytes, max_chunk: int) -> Offer:
    """Check a ``cmd/ota`` payload (strict, bounded JSON: :func:`edgeops._json.loads`); OfferError says what is wrong."""
    try:
        offer = _json.loads(payload, what="the OTA offer", error=DataError)
    except DataError as exc:
        raise OfferError(str(exc)) from None
    if not isinstance(offer, dict):
        raise OfferError("the OTA offer must be a JSON object")
    dep = offer.get("deployment")
    if not isinstance(dep, str) or not _ID.match(dep):
        raise OfferError(f"deployment id {dep!r} must be 1-64 letters, digits, '_', '-' or '.'")
    ints = {k: offer.get(k) for k in ("size", "chunk_size", "chunks")}
    if any(isinstance(v, bool) or not isinstance(v, int) or v < 1 for v in ints.values()):
        raise OfferError(f"size, chunk_size and chunks must be positive integers, got {ints}")
    size, chunk_size, chunks = offer["size"], offer["chunk_size"], offer["chunks"]
    if chunk_size > max_chunk:
        raise OfferError(f"chunk_size {chunk_size} is over this device's limit of {max_chunk} bytes")
    if chunks != -(-size // chunk_size) or chunks > MAX_CHUNKS:
        raise OfferError(f"{chunks} chunks cannot hold {size} bytes in chunks of {chunk_size}")
    shas = offer.get("chunk_sha256")
    if not isinstance(shas, list) or len(shas) != chunks or not all(
            isinstance(s, str) and _HEX64.match(s) for s in shas) or not _HEX64.match(str(offer.get("bundle_sha256"))):
        raise OfferError("bundle_sha256 and chunk_sha256 (one per chunk) must be sha256 hex digests")
    created = offer.get("created", 0)
    if isinstance(created, bool) or not isinstance(created, (int, float)):
        raise OfferError(f"created must be a time in milliseconds, not {created!r}")
    _check_args(offer.get("args"))
    return cast(Offer, {**offer, "created": int(created)})  # checked above, key by key


def _check_args(args: Any) -> None:
    """An offer's optional ``args``: ``{"mode": "active" | "shadow", "rate": share in (0, 1]}`` (shadow mode)."""
    if args is None:
        return
    if not isinstance(args, dict) or set(args) - {"mode", "rate"}:
        raise OfferError(f'args must be {{"mode": "active" | "shadow", "rate": 0.1}}, not {args!r}'[:300])
    if args.get("mode", "active") not in ("active", "shadow"):
        raise OfferError(f"args.mode must be 'active' or 'shadow', not {args.get('mode')!r}"[:300])
    rate = args.get("rate", 0.1)
    if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0 < rate <= 1:
        raise OfferError(f"args.rate must be a share of the inputs in (0, 1], not {rate!r}"[:300])


def deployment_of(payload: bytes) -> str | None:
    """The deployment id of an offer that is otherwise unusable, if it has a valid one."""
    try:
        dep = _json.loads(payload, what="the OTA offer", error=DataError).get("deployment")
    except (DataError, AttributeError):
        return None
    return dep if isinstance(dep, str) and _ID.match(dep) else None
