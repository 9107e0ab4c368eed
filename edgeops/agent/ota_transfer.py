"""One OTA deployment's chunks on the device's disk, until they make the bundle (see :mod:`.ota`).

Under ``<store>/ota/<deployment>/``: ``offer.json`` (written before the state names the
deployment, so a resumed ``receiving`` always finds it), ``chunks/<index>`` (each checked against
the offer's sha256 before it is kept; a bad one is dropped) and at last ``bundle.eob``, whose
sha256 and size must match the offer. After a crash :meth:`Transfer.open` reads the offer and
every chunk still intact; the machine asks the host for the rest.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import time
from typing import Literal

from .. import _json
from .._io import atomic_write
from .ota_wire import MAX_CHUNK_SIZE, Offer, OfferError, parse_offer

__all__ = ["Put", "Transfer"]

Put = Literal["new", "dup", "bad", "range"]


class Transfer:
    """One deployment's files: ``offer.json``, ``chunks/<index>`` (each checked), then ``bundle.eob``."""

    BUNDLE = "bundle.eob"

    def __init__(self, folder: str, offer: Offer):
        self.folder, self.offer = folder, offer
        self.deployment, self.chunks = offer["deployment"], offer["chunks"]
        self.have: set[int] = set()
        self.asked: set[int] = set()
        self.bytes_have = 0
        self.last_progress = time.monotonic()
        self.last_ask = self.last_report = self.last_bad = 0.0

    @classmethod
    def open(cls, folder: str) -> Transfer | None:
        """The transfer a crash interrupted: the offer and every chunk still intact."""
        try:
            with open(os.path.join(folder, "offer.json"), "rb") as fh:
                t = cls(folder, parse_offer(fh.read(), MAX_CHUNK_SIZE))
        except (OSError, OfferError):
            return None
        for name in os.listdir(t._chunk_dir()) if os.path.isdir(t._chunk_dir()) else []:
            if name.isdigit() and int(name) < t.chunks:
                with open(os.path.join(t._chunk_dir(), name), "rb") as fh:
                    t.put(int(name), fh.read(), write=False)
        return t

    def save_offer(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)
        os.makedirs(self._chunk_dir())
        atomic_write(os.path.join(self.folder, "offer.json"), _json.dumps(self.offer))

    def _chunk_dir(self) -> str:
        return os.path.join(self.folder, "chunks")

    def put(self, index: int, data: bytes, *, write: bool = True) -> Put:
        """Keep a chunk: ``new``, ``dup`` (already here), ``bad`` (sha256 mismatch, dropped) or ``range``."""
        if not 0 <= index < self.chunks:
            return "range"
        if index in self.have:
            return "dup"
        if len(data) > self.offer["chunk_size"] or hashlib.sha256(data).hexdigest() != self.offer["chunk_sha256"][index]:
            return "bad"
        if write:
            path = os.path.join(self._chunk_dir(), str(index))
            with open(path + ".tmp", "wb") as fh:  # no fsync: a resumed transfer checks every chunk again
                fh.write(data)
            os.replace(path + ".tmp", path)
        self.have.add(index)
        self.bytes_have += len(data)
        self.last_progress = time.monotonic()
        return "new"

    @property
    def complete(self) -> bool:
        return len(self.have) == self.chunks

    def missing(self, limit: int) -> list[int]:
        out = []
        for i in range(self.chunks):
            if i not in self.have:
                out.append(i)
                if len(out) >= limit:
                    break
        return out

    def assemble(self) -> str | None:
        """Concatenate the chunks into ``bundle.eob``; an error message when sha256 or size disagree."""
        h, size = hashlib.sha256(), 0
        path = os.path.join(self.folder, self.BUNDLE)
        with open(path + ".tmp", "wb") as out:
            for i in range(self.chunks):
                with open(os.path.join(self._chunk_dir(), str(i)), "rb") as fh:
                    data = fh.read()
                h.update(data)
                size += len(data)
                out.write(data)
            out.flush()
            os.fsync(out.fileno())
        if h.hexdigest() != self.offer["bundle_sha256"] or size != self.offer["size"]:
            os.unlink(path + ".tmp")
            return (f"the assembled bundle does not match the offer (sha256 {h.hexdigest()[:12]}..., {size} bytes; "
                    f"offered {self.offer['bundle_sha256'][:12]}..., {self.offer['size']} bytes)")
        os.replace(path + ".tmp", path)
        return None

    def drop_chunks(self) -> None:
        shutil.rmtree(self._chunk_dir(), ignore_errors=True)
