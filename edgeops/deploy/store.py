"""The device model store: two slots and one atomic pointer, so an update can never brick a device.

Layout under the store's root::

    active.json          {"active": "a", "previous": "b", "switched": ISO time}   (the pointer)
    slots/a/             an extracted bundle + slot.json (what was installed, when, the model's size and sha256)
    slots/b/             the other slot
    slots/b.tmp/         an install in progress (removed by the next install)
    .lock                serialises installs and switches (flock)

Crash safety follows from three rules. An install only ever writes the *inactive* slot, and
writes it into ``slots/S.tmp`` first (every file fsynced), then renames it to ``slots/S``. The
pointer is only ever replaced whole, by :func:`~edgeops._io.atomic_write` (temp file, fsync,
rename, fsync of the folder), and only to a slot that is complete. Before the inactive slot is
wiped, a pointer whose ``previous`` names it is rewritten without it, so rollback never lands on
a half-deleted slot. A crash at any moment therefore leaves ``active.json`` naming a complete slot
(the old one or the new one) and at worst a stale ``.tmp`` folder the next install removes.

A slot is *complete* when its ``slot.json`` and ``manifest.json`` read and its model file has the recorded size;
``verify=True`` also compares the model's sha256 (the loader and :meth:`ModelStore.switch` do).
``active.json`` and ``slot.json`` are read with :func:`edgeops._json.loads` (bounded size and
nesting, strict), so a damaged or hostile file is a :class:`~edgeops.errors.DataError` that
says how to repair the store, never a parser's traceback.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from .. import _json
from .._io import atomic_write, fsync_dir, link_or_copy, profile_path, sha256_file
from ..errors import DataError, UsageError

if TYPE_CHECKING:  # pragma: no cover
    from ..bundle.manifest import Manifest
    from ..bundle.reader import Extracted
    from ..runtime.model import Model

SLOTS = ("a", "b")
POINTER = "active.json"
SLOT_META = "slot.json"
AGENT_STORE = "models"  # the agent's model store: this folder under its store_dir


@dataclass
class SlotInfo:
    """One installed slot: ``manifest`` is the bundle's :class:`~edgeops.bundle.Manifest`, ``installed``
    an ISO time (UTC)."""

    slot: str
    dir: str
    manifest: Manifest
    model_path: str
    installed: str

    @property
    def name(self) -> str | None:
        return self.manifest.get("name")

    @property
    def version(self) -> str | None:
        return self.manifest.get("version")

    @property
    def bundle_id(self) -> str | None:
        return self.manifest.get("id")

    @property
    def profile_path(self) -> str | None:
        """The bundle's reference profile in the slot, if it has one."""
        profile = self.manifest.get("profile")
        return os.path.join(self.dir, profile) if profile else None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary (the manifest itself left out: ``slot.json`` holds it)."""
        return {"slot": self.slot, "name": self.name, "version": self.version, "bundle_id": self.bundle_id,
                "installed": self.installed, "dir": self.dir, "model_path": self.model_path}


class ModelStore:
    """The A/B model store on a device (or on a mounted SD card): install, switch, rollback, load."""

    def __init__(self, root: str | os.PathLike[str]):
        self.root = os.path.abspath(os.fspath(root))
        self.slots_dir = os.path.join(self.root, "slots")
        self.pointer_path = os.path.join(self.root, POINTER)

    # -- reading -------------------------------------------------------------------------

    def pointer(self) -> dict[str, Any] | None:
        """The parsed ``active.json``, or None before the first switch; DataError if it is damaged."""
        try:
            with open(self.pointer_path, "rb") as fh:
                raw = fh.read(_json.MAX_BYTES + 1)  # more is refused by its size
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise DataError(f"cannot read {self.pointer_path}: {exc}") from exc
        try:
            data = _json.loads(raw, what="it", error=DataError)
        except DataError as exc:
            raise DataError(self._corrupt(f"is damaged ({exc})")) from exc
        if not isinstance(data, dict) or data.get("active") not in SLOTS \
                or data.get("previous") not in (*SLOTS, None):
            raise DataError(self._corrupt('does not name slot "a" or "b" as active'))
        return data

    def _corrupt(self, what: str) -> str:
        return (f"the store pointer {self.pointer_path} {what}; repair it with "
                f"`edgeops store rollback --store {self.root}` (points it at the newest complete slot), "
                f"or delete it and reinstall with `edgeops store install BUNDLE --store {self.root} --activate`")

    def slot(self, slot: str, *, verify: bool = False) -> SlotInfo | None:
        """The slot's info if it is complete (sizes match; sha256 too with ``verify``), else None."""
        try:
            return self._slot_checked(slot, verify=verify)
        except DataError:
            return None

    def _slot_checked(self, slot: str, *, verify: bool = False) -> SlotInfo:
        """The slot's info, or DataError saying why it is not complete."""
        if slot not in SLOTS:
            raise UsageError(f'slot must be "a" or "b", not {slot!r}')
        folder = os.path.join(self.slots_dir, slot)
        try:
            meta = _read_slot_meta(folder)
            model_path = os.path.join(folder, meta["model_file"])
            size = os.path.getsize(model_path)
            manifest = _slot_manifest(folder, meta)
        except (OSError, DataError, KeyError, TypeError) as exc:
            raise DataError(f"slot {slot} in {self.root} is empty or incomplete ({exc})") from exc
        if size != meta.get("model_size"):
            raise DataError(f"slot {slot}: model {model_path} has {size} bytes, the bundle had {meta.get('model_size')}")
        if verify and sha256_file(model_path) != meta.get("model_sha256"):
            raise DataError(f"slot {slot}: model {model_path} does not match the bundle's sha256 (damaged on disk)")
        return SlotInfo(slot=slot, dir=folder, manifest=manifest, model_path=model_path,
                        installed=meta.get("installed", ""))

    def active(self, *, verify: bool = False) -> SlotInfo | None:
        """The active slot; None before the first switch; DataError if the pointer or the slot is damaged."""
        ptr = self.pointer()
        if ptr is None:
            return None
        try:
            return self._slot_checked(ptr["active"], verify=verify)
        except DataError as exc:
            raise DataError(self._corrupt(f'names slot {ptr["active"]}, which is not usable: {exc}')) from exc

    def previous(self, *, verify: bool = False) -> SlotInfo | None:
        """The slot active before the last switch, if it is still there and complete."""
        ptr = self.pointer()
        if ptr is None or ptr.get("previous") is None:
            return None
        return self.slot(ptr["previous"], verify=verify)

    def inactive_slot(self) -> str:
        """``"a"`` or ``"b"``: the slot that is not active (the next install's target)."""
        ptr = self.pointer()
        if ptr is None:
            return SLOTS[0]
        return SLOTS[1] if ptr["active"] == SLOTS[0] else SLOTS[0]

    # -- writing -------------------------------------------------------------------------

    def install(self, bundle: str | os.PathLike[str], *, trusted_keys: Any = None,
                require_signature: bool = False) -> SlotInfo:
        """Verify and extract ``bundle`` into the inactive slot; the active slot is never touched.

        Raises the bundle's ``BundleError`` (exit 1) when verification refuses it; the slots
        are then unchanged. Call :meth:`switch` to activate the result.
        """
        from ..bundle import extract

        if not os.path.isfile(bundle):
            raise UsageError(f"bundle {os.fspath(bundle)} not found (give the .eob file `edgeops bundle create` wrote)")
        with self._locked():
            slot = self.inactive_slot()
            target = os.path.join(self.slots_dir, slot)
            tmp = target + ".tmp"
            self._sweep()
            try:
                got = extract(os.fspath(bundle), tmp, trusted_keys=trusted_keys, require_signature=require_signature)
                _write_slot_meta(tmp, got)  # extract fsynced the members; this fsyncs the folder once more
            except BaseException:
                shutil.rmtree(tmp, ignore_errors=True)
                raise
            self._forget_previous(slot)
            _remove_tree(target)
            os.rename(tmp, target)
            fsync_dir(self.slots_dir)
            return self._slot_checked(slot)

    def switch(self, slot: str) -> SlotInfo:
        """Make ``slot`` active (it must be complete and match its sha256); the old one becomes previous."""
        with self._locked():
            return self._switch(slot)

    def _switch(self, slot: str, *, repairing: bool = False) -> SlotInfo:
        info = self._slot_checked(slot, verify=True)
        ptr = None if repairing else self.pointer()
        if ptr is not None and ptr["active"] == slot:
            return info
        previous = None if ptr is None else ptr["active"]
        if previous is not None and self.slot(previous) is None:
            previous = None
        self._write_pointer(slot, previous)
        return info

    def rollback(self) -> SlotInfo:
        """Switch back to the previous slot; with a damaged pointer, point it at the newest complete slot."""
        with self._locked():
            try:
                ptr = self.pointer()
                self.active()
            except DataError:
                return self._repair()
            prev = None if ptr is None else ptr.get("previous")
            if prev is None or self.slot(prev) is None:
                raise UsageError(f"nothing to roll back to in {self.root}: no complete previous slot "
                                 "(install a bundle and switch to it first)")
            return self._switch(prev)

    def _repair(self) -> SlotInfo:
        good = [info for s in SLOTS if (info := self.slot(s, verify=True)) is not None]
        if not good:
            raise DataError(f"no complete slot in {self.root} to point at; reinstall with "
                            f"`edgeops store install BUNDLE --store {self.root} --activate`")
        newest = max(good, key=lambda i: i.installed)
        return self._switch(newest.slot, repairing=True)

    def _write_pointer(self, active: str, previous: str | None, switched: str | None = None) -> None:
        data = {"active": active, "previous": previous, "switched": switched or _now()}
        atomic_write(self.pointer_path, _json.dumps(data, indent=2) + "\n")

    def _forget_previous(self, slot: str) -> None:
        """Before ``slot`` is wiped, drop it from the pointer's ``previous`` so rollback cannot land on it."""
        ptr = self.pointer()
        if ptr is not None and ptr.get("previous") == slot:
            self._write_pointer(ptr["active"], None, ptr.get("switched"))

    def _sweep(self) -> None:
        """Remove what crashed installs left behind: ``S.tmp`` and ``S.old`` folders."""
        for s in SLOTS:
            for suffix in (".tmp", ".old"):
                shutil.rmtree(os.path.join(self.slots_dir, s + suffix), ignore_errors=True)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        os.makedirs(self.slots_dir, exist_ok=True)
        with open(os.path.join(self.root, ".lock"), "a+b") as fh:
            try:
                import fcntl
            except ImportError:  # pragma: no cover - Windows host writing an SD card: one writer assumed
                yield
                return
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh.fileno(), fcntl.LOCK_UN)

    # -- using ---------------------------------------------------------------------------

    def load_active(self, *, verify: bool = True, **load_kwargs: Any) -> Model:
        """Open the active slot's model (``load_kwargs`` as for :func:`edgeops.load`); ``model.bundle``
        is the slot's manifest."""
        from ..runtime.model import open_model

        info = self.active(verify=verify)
        if info is None:
            raise DataError(f"no active model in {self.root}; install one with "
                            f"`edgeops store install BUNDLE --store {self.root} --activate`")
        sha256 = info.manifest.model_sha256 if verify else None  # checked just now; saves hashing the model again
        return open_model(info.model_path, sha256=sha256, manifest=info.manifest, **load_kwargs)

    def status(self) -> dict[str, Any]:
        """JSON-ready: the active and previous slots (name, version, bundle id, installed) and the pointer."""
        ptr = self.pointer()
        active = self.active()
        prev = self.previous()
        return {
            "store": self.root,
            "active": None if active is None else active.to_dict(),
            "previous": None if prev is None else prev.to_dict(),
            "switched": None if ptr is None else ptr.get("switched"),
            "slots": {s: (None if (i := self.slot(s)) is None else i.to_dict()) for s in SLOTS},
        }


def store_model(store_dir: str) -> dict[str, Any] | None:
    """The active model of the agent's store (``<store_dir>/models``) as ``{path, name, version, profile}``;
    None if the store has none."""
    root = os.path.join(store_dir, AGENT_STORE)
    if not os.path.isfile(os.path.join(root, POINTER)):
        return None
    slot = ModelStore(root).active()
    if slot is None:
        return None
    return {"path": slot.model_path, "name": slot.name, "version": slot.version, "profile": slot.profile_path}


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def _read_slot_meta(folder: str) -> dict[str, Any]:
    """The folder's ``slot.json`` as a dict; OSError if it cannot be read, DataError if it is damaged."""
    with open(os.path.join(folder, SLOT_META), "rb") as fh:
        meta = _json.loads(fh.read(_json.MAX_BYTES + 1), what=SLOT_META, error=DataError)
    if not isinstance(meta, dict):
        raise DataError(f"{SLOT_META} is not a JSON object")
    return meta


def _slot_manifest(folder: str, meta: dict[str, Any]) -> Manifest:
    """The slot's bundle manifest: its data as ``slot.json`` recorded it, its exact bytes from ``manifest.json``."""
    from ..bundle.manifest import MANIFEST, Manifest

    with open(os.path.join(folder, MANIFEST), "rb") as fh:
        raw = fh.read(_json.MAX_BYTES + 1)
    data = meta.get("manifest") or {}
    if not isinstance(data, dict):
        raise DataError(f"{SLOT_META} has no manifest object")
    return Manifest(raw=raw, data=data, signed=bool(meta.get("signed")), key_id=meta.get("key_id"))


def _write_slot_meta(folder: str, got: Extracted) -> None:
    """``slot.json``: what the slot holds, so completeness is one small read and one stat.

    The reference profile also gets the name the agent looks for next to a model
    (``model.profile.json``), as a hard link (a copy where links are not supported).
    """
    man = got.manifest
    if got.profile_path:
        link_or_copy(got.profile_path, profile_path(got.model_path))
    meta = {
        "installed": _now(),
        "signed": bool(man.signed),
        "key_id": man.key_id,
        "model_file": os.path.relpath(got.model_path, folder),
        "model_size": os.path.getsize(got.model_path),
        "model_sha256": man.data["model"]["sha256"],  # extract checked the file against it
        "manifest": man.data,
    }
    atomic_write(os.path.join(folder, SLOT_META), _json.dumps(meta, indent=2) + "\n")


def _remove_tree(folder: str) -> None:
    """Delete a slot: rename it aside first, so a crash never leaves a half-deleted ``slots/S``."""
    if not os.path.lexists(folder):
        return
    aside = folder + ".old"
    shutil.rmtree(aside, ignore_errors=True)
    os.rename(folder, aside)
    shutil.rmtree(aside)
