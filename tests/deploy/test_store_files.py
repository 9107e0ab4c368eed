"""The A/B store's files and edges: what active.json and slot.json hold, damaged slots, leftovers, messages.

Each test guards a change the rest of the suite let through (found by
``python tools/mutation.py store``): a switch or repair that trusted a slot without hashing it,
a pointer rewritten with an empty "previous", a lost switch time, leftovers of a crashed install.
"""

from __future__ import annotations

import json
import os
import re
from datetime import datetime, timedelta

import pytest

from edgeops.bundle import BundleError
from edgeops.bundle.keys import key_id, load_public_key
from edgeops.deploy import ModelStore
from edgeops.deploy import store as store_module
from edgeops.errors import DataError, UsageError
from tests.conftest import needs_ort, needs_tflite

pytestmark = [needs_ort, needs_tflite]


def installed(store: ModelStore, bundle, **kw):
    info = store.install(bundle, **kw)
    store.switch(info.slot)
    return info


def flip_a_byte(path: str) -> None:
    """Damage a model on disk without changing its size (only the sha256 check can tell)."""
    data = bytearray(open(path, "rb").read())
    data[100] ^= 0xFF
    open(path, "wb").write(bytes(data))


def pointer_of(store: ModelStore) -> dict:
    return json.loads(open(store.pointer_path, encoding="utf-8").read())


# -- status and what it reports ---------------------------------------------------------------

def test_status_of_an_empty_store_names_nothing(tmp_path):
    store = ModelStore(tmp_path / "store")
    assert store.status() == {"store": store.root, "active": None, "previous": None, "switched": None,
                              "slots": {"a": None, "b": None}}


def test_status_lists_an_installed_slot_before_any_switch(tmp_path, bundles):
    store = ModelStore(tmp_path / "store")
    info = store.install(bundles.v1)
    status = store.status()
    assert status["active"] is None and status["switched"] is None and status["slots"]["b"] is None
    assert status["slots"]["a"] == {"slot": "a", "name": "digits", "version": "1.0.0", "bundle_id": info.bundle_id,
                                    "installed": info.installed, "dir": info.dir, "model_path": info.model_path}


def test_install_and_switch_times_are_utc(tmp_path, bundles):
    store = ModelStore(tmp_path / "store")
    info = installed(store, bundles.v1)
    for stamp in (info.installed, store.status()["switched"]):
        assert datetime.fromisoformat(stamp).utcoffset() == timedelta(0), stamp


def test_the_store_files_are_indented_json_a_person_can_read(tmp_path, bundles):
    store = ModelStore(tmp_path / "store")
    info = installed(store, bundles.v1)
    for path in (store.pointer_path, os.path.join(info.dir, "slot.json")):
        text = open(path, encoding="utf-8").read()
        assert text == json.dumps(json.loads(text), indent=2) + "\n", path


# -- damaged slots: the cheap check, the sha256 check, and who uses which -----------------------

def test_a_same_size_damaged_slot_passes_the_cheap_check_only(tmp_path, bundles):
    store = ModelStore(tmp_path / "store")
    installed(store, bundles.v1)
    installed(store, bundles.v2)
    flip_a_byte(store.slot("a").model_path)
    assert store.slot("a").version == "1.0.0" and store.previous().version == "1.0.0"
    assert store.slot("a", verify=True) is None and store.previous(verify=True) is None


def test_switch_refuses_a_slot_whose_model_was_damaged_on_disk(tmp_path, bundles):
    store = ModelStore(tmp_path / "store")
    installed(store, bundles.v1)
    flip_a_byte(store.install(bundles.v2).model_path)
    with pytest.raises(DataError, match="^slot b: model .* does not match the bundle's sha256"):
        store.switch("b")
    assert store.active().slot == "a"


def test_load_active_checks_the_sha256_by_default(tmp_path, bundles):
    store = ModelStore(tmp_path / "store")
    flip_a_byte(installed(store, bundles.v1).model_path)
    with pytest.raises(DataError, match="does not match the bundle's sha256"):
        store.load_active()


def test_repair_skips_a_newer_slot_whose_model_was_damaged(tmp_path, bundles):
    store = ModelStore(tmp_path / "store")
    installed(store, bundles.v1)
    flip_a_byte(installed(store, bundles.v2).model_path)
    open(store.pointer_path, "wb").write(b"{")
    assert store.rollback().version == "1.0.0"


def test_repair_prefers_a_slot_with_an_install_time_over_one_whose_slot_json_lost_it(tmp_path, bundles):
    store = ModelStore(tmp_path / "store")
    installed(store, bundles.v1)
    newer = installed(store, bundles.v2)
    meta_path = os.path.join(newer.dir, "slot.json")
    meta = json.loads(open(meta_path, encoding="utf-8").read())
    del meta["installed"]
    open(meta_path, "w", encoding="utf-8").write(json.dumps(meta))
    assert store.slot("b").installed == ""
    open(store.pointer_path, "wb").write(b"{")
    assert store.rollback().slot == "a"


def test_repair_with_no_complete_slot_says_to_reinstall(tmp_path):
    store = ModelStore(tmp_path / "store")
    os.makedirs(store.slots_dir)
    open(store.pointer_path, "wb").write(b"{")
    message = (f"no complete slot in {store.root} to point at; reinstall with "
               f"`edgeops store install BUNDLE --store {store.root} --activate`")
    with pytest.raises(DataError, match=f"^{re.escape(message)}$"):
        store.rollback()


def test_switching_away_from_a_broken_active_slot_leaves_nothing_to_roll_back_to(tmp_path, bundles):
    store = ModelStore(tmp_path / "store")
    broken = installed(store, bundles.v1)
    store.install(bundles.v2)
    os.remove(broken.model_path)
    assert store.switch("b").version == "2.0.0"
    assert pointer_of(store)["previous"] is None and store.previous() is None
    with pytest.raises(UsageError, match="nothing to roll back to"):
        store.rollback()


def test_a_model_of_the_wrong_size_says_both_sizes(tmp_path, bundles):
    store = ModelStore(tmp_path / "store")
    info = installed(store, bundles.v1)
    size = os.path.getsize(info.model_path)
    with open(info.model_path, "ab") as fh:
        fh.write(b"x")
    with pytest.raises(DataError, match=f"slot a: model {re.escape(info.model_path)} has {size + 1} bytes, "
                                        f"the bundle had {size};"):
        store.active()


@pytest.mark.parametrize("content, words", [
    pytest.param(b"[1, 2]", "slot.json is not a JSON object", id="a-list"),
    pytest.param(b'{"model_file": ', "slot.json is not valid JSON", id="truncated"),
])
def test_a_damaged_slot_json_makes_the_slot_incomplete_and_says_which_file(tmp_path, bundles, content, words):
    store = ModelStore(tmp_path / "store")
    info = installed(store, bundles.v1)
    open(os.path.join(info.dir, "slot.json"), "wb").write(content)
    assert store.slot("a") is None
    with pytest.raises(DataError, match=f"slot a in {re.escape(store.root)} is empty or incomplete \\({words}"):
        store.active()


# -- the pointer ------------------------------------------------------------------------------

def test_install_into_the_previous_slot_keeps_the_last_switch_time(tmp_path, bundles):
    store = ModelStore(tmp_path / "store")
    installed(store, bundles.v1)
    installed(store, bundles.v2)
    switched = pointer_of(store)["switched"]
    store.install(bundles.v3)
    assert pointer_of(store) == {"active": "b", "previous": None, "switched": switched}


@pytest.mark.parametrize("content", [
    pytest.param(b'{"active": "a", "previous": "c"}', id="unknown-previous-slot"),
    pytest.param(b'{"active": "a", "previous": ""}', id="empty-previous-slot"),
    pytest.param(b'["a", "b"]', id="not-an-object"),
])
def test_a_pointer_naming_no_slot_is_refused_with_how_to_repair_it(tmp_path, content):
    store = ModelStore(tmp_path / "store")
    os.makedirs(store.root)
    open(store.pointer_path, "wb").write(content)
    message = (f'the store pointer {store.pointer_path} does not name slot "a" or "b" as active; repair it with '
               f"`edgeops store rollback --store {store.root}` (points it at the newest complete slot), or delete it "
               f"and reinstall with `edgeops store install BUNDLE --store {store.root} --activate`")
    with pytest.raises(DataError, match=f"^{re.escape(message)}$"):
        store.pointer()


def test_a_pointer_that_is_not_json_says_it_is_damaged(tmp_path):
    store = ModelStore(tmp_path / "store")
    os.makedirs(store.root)
    open(store.pointer_path, "wb").write(b'{"active": ')
    with pytest.raises(DataError, match=f"^the store pointer {re.escape(store.pointer_path)} is damaged \\(it is "
                                        "not valid JSON"):
        store.pointer()


def test_a_pointer_of_exactly_the_json_size_limit_is_read_whole(tmp_path, monkeypatch):
    monkeypatch.setattr(store_module._json, "MAX_BYTES", 64)
    store = ModelStore(tmp_path / "store")
    os.makedirs(store.root)
    open(store.pointer_path, "wb").write(b'{"active": "a", "previous": null'.ljust(63) + b"}")
    assert store.pointer()["active"] == "a"


def test_a_slot_json_of_exactly_the_json_size_limit_is_read_whole(tmp_path, bundles, monkeypatch):
    store = ModelStore(tmp_path / "store")
    info = store.install(bundles.v1)
    meta_path = os.path.join(info.dir, "slot.json")
    compact = json.dumps(json.loads(open(meta_path, encoding="utf-8").read()))
    open(meta_path, "w", encoding="utf-8").write(compact)
    monkeypatch.setattr(store_module._json, "MAX_BYTES", os.path.getsize(meta_path))  # ends with its "}"
    assert store.slot("a").version == "1.0.0"


def test_a_pointer_that_cannot_be_read_names_the_file(tmp_path):
    store = ModelStore(tmp_path / "store")
    os.makedirs(store.pointer_path)
    with pytest.raises(DataError, match=f"^cannot read {re.escape(store.pointer_path)}: "):
        store.pointer()


def test_rollback_of_an_empty_store_has_nothing_to_return_to(tmp_path):
    store = ModelStore(tmp_path / "store")
    message = (f"nothing to roll back to in {store.root}: no complete previous slot (install a bundle and switch "
               "to it first)")
    with pytest.raises(UsageError, match=f"^{re.escape(message)}$"):
        store.rollback()


# -- install ------------------------------------------------------------------------------------

def test_install_of_a_missing_bundle_names_it(tmp_path):
    store = ModelStore(tmp_path / "store")
    missing = tmp_path / "nowhere.eob"
    with pytest.raises(UsageError, match=f"^bundle {re.escape(str(missing))} not found \\(give the .eob file"):
        store.install(missing)


def test_install_takes_an_unsigned_bundle_unless_a_signature_is_required(tmp_path, bundles):
    store = ModelStore(tmp_path / "store")
    with pytest.raises(BundleError, match="not signed, but a signature is required"):
        store.install(bundles.unsigned, require_signature=True)
    assert store.install(bundles.unsigned).version == "1.0.0"


def test_install_removes_what_crashed_installs_left_behind(tmp_path, bundles):
    store = ModelStore(tmp_path / "store")
    for leftover in ("a.tmp", "b.tmp", "a.old", "b.old"):
        os.makedirs(os.path.join(store.slots_dir, leftover, "half-written"))
    store.install(bundles.v1)
    assert sorted(os.listdir(store.slots_dir)) == ["a"]


def test_an_install_that_fails_while_writing_leaves_no_temporary_slot(tmp_path, bundles, monkeypatch):
    store = ModelStore(tmp_path / "store")
    installed(store, bundles.v1)

    def disk_full(path, text):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(store_module, "atomic_write", disk_full)
    with pytest.raises(OSError, match="No space left"):
        store.install(bundles.v2)
    assert sorted(os.listdir(store.slots_dir)) == ["a"] and store.active().slot == "a"


def test_the_profile_is_next_to_the_model_where_the_agent_looks_for_it(tmp_path, bundles):
    store = ModelStore(tmp_path / "store")
    info = store.install(bundles.v1)
    linked = os.path.join(info.dir, "model.profile.json")
    assert os.path.samefile(linked, os.path.join(info.dir, info.manifest["profile"]))


def test_the_profile_is_copied_where_hard_links_are_not_supported(tmp_path, bundles, monkeypatch):
    def no_links(src, dst):
        raise OSError(1, "Operation not permitted")

    monkeypatch.setattr(os, "link", no_links)
    info = ModelStore(tmp_path / "store").install(bundles.v1)
    profile = os.path.join(info.dir, info.manifest["profile"])
    copy = os.path.join(info.dir, "model.profile.json")
    assert not os.path.samefile(copy, profile) and open(copy, "rb").read() == open(profile, "rb").read()


# -- load_active --------------------------------------------------------------------------------

def test_load_active_carries_the_bundle_manifest_and_its_signer(tmp_path, bundles):
    store = ModelStore(tmp_path / "store")
    info = installed(store, bundles.v1)
    bundle = store.load_active().bundle
    assert bundle.version == "1.0.0" and bundle.data == info.manifest
    assert bundle.raw == open(os.path.join(info.dir, "manifest.json"), "rb").read()
    assert bundle.signed is True and bundle.key_id == key_id(load_public_key(bundles.pub))


def test_load_active_of_an_unsigned_bundle_says_it_is_unsigned(tmp_path, bundles):
    store = ModelStore(tmp_path / "store")
    installed(store, bundles.unsigned)
    bundle = store.load_active().bundle
    assert bundle.signed is False and bundle.key_id is None


def test_load_active_passes_load_options_through(tmp_path, bundles):
    store = ModelStore(tmp_path / "store")
    installed(store, bundles.v1)
    with pytest.raises(UsageError, match="threads must be 1 or more, not 0"):
        store.load_active(threads=0)
