"""The A/B model store: install into the inactive slot, switch, rollback, refuse bad bundles, load."""

from __future__ import annotations

import json
import os

import pytest

import edgeops
from edgeops.bundle import BundleError
from edgeops.deploy import ModelStore
from edgeops.errors import DataError, UsageError
from tests.conftest import needs_ort, needs_tflite
from tests.deploy.conftest import run_sample

pytestmark = [needs_ort, needs_tflite]


def installed(store: ModelStore, bundle, **kw):
    info = store.install(bundle, **kw)
    store.switch(info.slot)
    return info


def test_empty_store_has_no_active_model(tmp_path):
    store = ModelStore(tmp_path / "store")
    assert store.active() is None and store.previous() is None
    assert store.inactive_slot() == "a"
    with pytest.raises(DataError, match="no active model"):
        store.load_active()


def test_install_switch_and_load_active_runs(tmp_path, bundles):
    store = ModelStore(tmp_path / "store")
    info = store.install(bundles.v1, trusted_keys=[bundles.pub], require_signature=True)
    assert info.slot == "a" and info.version == "1.0.0" and info.name == "digits"
    assert store.active() is None, "install alone activates nothing"
    store.switch("a")
    active = store.active(verify=True)
    assert active.slot == "a" and active.bundle_id == info.bundle_id and active.installed
    assert os.path.isfile(active.model_path) and active.manifest["version"] == "1.0.0"
    run_sample(store.load_active())
    pointer = json.loads((tmp_path / "store" / "active.json").read_text())
    assert pointer["active"] == "a" and pointer["previous"] is None and pointer["switched"]


def test_second_install_goes_to_the_other_slot_and_the_first_stays(tmp_path, bundles):
    store = ModelStore(tmp_path / "store")
    first = installed(store, bundles.v1)
    before = sorted(os.listdir(first.dir))
    second = store.install(bundles.v2)
    assert second.slot == "b" and store.active().slot == "a", "the active slot is untouched by an install"
    assert sorted(os.listdir(first.dir)) == before
    store.switch("b")
    assert store.active().version == "2.0.0" and store.previous().version == "1.0.0"
    assert store.load_active().format == "tflite"
    third = store.install(bundles.v3)
    assert third.slot == "a" and store.active().slot == "b"
    assert store.previous() is None, "the previous slot was overwritten, so rollback must not land on it"


def test_rollback_returns_to_the_previous_version(tmp_path, bundles):
    store = ModelStore(tmp_path / "store")
    installed(store, bundles.v1)
    installed(store, bundles.v2)
    back = store.rollback()
    assert back.version == "1.0.0" and store.active().slot == "a" and store.previous().slot == "b"
    run_sample(store.load_active())
    assert store.rollback().version == "2.0.0", "rolling back twice returns to where we were"


def test_rollback_with_nothing_to_return_to_is_a_usage_error(tmp_path, bundles):
    store = ModelStore(tmp_path / "store")
    installed(store, bundles.v1)
    with pytest.raises(UsageError, match="nothing to roll back to"):
        store.rollback()


def test_tampered_bundle_is_refused_and_the_active_slot_is_unchanged(tmp_path, bundles, tampered):
    store = ModelStore(tmp_path / "store")
    installed(store, bundles.v1)
    installed(store, bundles.v2)
    before = store.status()
    with pytest.raises(BundleError, match="model.onnx does not match its sha256"):
        store.install(tampered(bundles.v3))
    assert store.status() == before, "a refused bundle changes nothing, not even the inactive slot"
    assert sorted(os.listdir(tmp_path / "store" / "slots")) == ["a", "b"]
    run_sample(store.load_active())


@pytest.mark.parametrize("which, keys, words", [
    pytest.param("v1", "other_pub", "signed by key .* which is not a trusted key", id="signed-by-an-untrusted-key"),
    pytest.param("unsigned", "pub", "not signed, but a signature is required", id="unsigned-when-a-key-is-required"),
])
def test_untrusted_bundle_is_refused(tmp_path, bundles, which, keys, words):
    store = ModelStore(tmp_path / "store")
    with pytest.raises(BundleError, match=words):
        store.install(getattr(bundles, which), trusted_keys=[getattr(bundles, keys)], require_signature=True)
    assert store.active() is None and store.slot("a") is None


@pytest.mark.parametrize("content", [
    pytest.param(b"", id="empty"),
    pytest.param(b'{"active": "a", "prev', id="truncated"),
    pytest.param(b'{"active": "c"}', id="unknown-slot"),
    pytest.param(b"\xff\xfe", id="binary"),
])
def test_corrupt_pointer_is_a_clear_error_and_rollback_repairs_it(tmp_path, bundles, content):
    store = ModelStore(tmp_path / "store")
    installed(store, bundles.v1)
    installed(store, bundles.v2)
    (tmp_path / "store" / "active.json").write_bytes(content)
    for call in (store.active, store.load_active, store.status, lambda: store.install(bundles.v3)):
        with pytest.raises(DataError, match="edgeops store rollback") as err:
            call()
        assert "active.json" in str(err.value) and "reinstall" in str(err.value)
    repaired = store.rollback()
    assert repaired.version == "2.0.0", "repair points at the newest complete slot"
    run_sample(store.load_active())


@pytest.mark.parametrize("which, words", [
    pytest.param("deep", "manifest.json nests arrays or objects 5000 deep", id="manifest-nested-5000-deep"),
    pytest.param("nested", "model.onnx is itself an edgeops bundle", id="bundle-inside-a-bundle"),
])
def test_hostile_bundle_is_refused_by_install_and_changes_nothing(tmp_path, bundles, hostile, which, words):
    """Regression: a bundle whose model is a bundle was installed (and activated) though load refuses it;
    a manifest nested 5000 deep was a raw RecursionError."""
    store = ModelStore(tmp_path / "store")
    installed(store, bundles.v1)
    before = store.status()
    with pytest.raises(BundleError, match=words):
        store.install(getattr(hostile, which), trusted_keys=[bundles.pub] if which == "nested" else None)
    assert store.status() == before and sorted(os.listdir(tmp_path / "store" / "slots")) == ["a"]


@pytest.mark.parametrize("where", ["active.json", "slots/a/slot.json"])
def test_store_file_nested_5000_deep_is_a_data_error(tmp_path, bundles, where):
    """Regression: ``[`` * 5000 in the pointer or a slot's metadata was a raw RecursionError everywhere."""
    from tests.deploy.conftest import DEEP

    store = ModelStore(tmp_path / "store")
    installed(store, bundles.v1)
    (tmp_path / "store" / where).write_bytes(DEEP)
    for call in (store.active, store.load_active, store.status, lambda: edgeops.load(tmp_path / "store")):
        with pytest.raises(DataError, match="nests arrays or objects 5000 deep") as err:
            call()
        assert "edgeops store rollback" in str(err.value)
    if where == "active.json":
        assert store.rollback().version == "1.0.0", "rollback repairs the pointer"
    else:
        assert store.slot("a") is None, "a slot whose slot.json does not parse is not complete"


def test_damaged_active_model_is_caught(tmp_path, bundles):
    store = ModelStore(tmp_path / "store")
    info = installed(store, bundles.v1)
    data = bytearray(open(info.model_path, "rb").read())
    data[100] ^= 0xFF
    open(info.model_path, "wb").write(bytes(data))
    assert store.active().slot == "a", "same size: the cheap check passes"
    with pytest.raises(DataError, match="sha256"):
        store.active(verify=True)
    with open(info.model_path, "ab") as fh:
        fh.write(b"x")
    with pytest.raises(DataError, match="bytes"):
        store.active()


def test_switch_refuses_an_incomplete_slot(tmp_path, bundles):
    store = ModelStore(tmp_path / "store")
    installed(store, bundles.v1)
    with pytest.raises(DataError, match="slot b"):
        store.switch("b")
    with pytest.raises(UsageError, match='slot must be "a" or "b", not \'c\''):
        store.switch("c")
    assert store.active().slot == "a"


def test_edgeops_load_of_a_store_folder_loads_the_active_model(tmp_path, bundles):
    store = ModelStore(tmp_path / "store")
    installed(store, bundles.v1)
    installed(store, bundles.v2)
    model = edgeops.load(tmp_path / "store", threads=1)
    assert model.format == "tflite" and model.path == store.active().model_path
    run_sample(model)


def test_status_is_json_ready(tmp_path, bundles):
    store = ModelStore(tmp_path / "store")
    installed(store, bundles.v1)
    installed(store, bundles.v2)
    status = json.loads(json.dumps(store.status()))
    assert status["active"]["slot"] == "b" and status["active"]["version"] == "2.0.0"
    assert status["previous"]["version"] == "1.0.0" and status["switched"]
    assert set(status["slots"]) == {"a", "b"}
    assert status["active"]["bundle_id"] != status["previous"]["bundle_id"]


def test_the_device_side_stays_light(tmp_path, bundles):
    """Loading from a store needs no cryptography, rich, click or paho (the signature was checked at install)."""
    import subprocess
    import sys

    store = ModelStore(tmp_path / "store")
    installed(store, bundles.v1)
    code = (f"import sys, edgeops.deploy, edgeops; m = edgeops.load({str(tmp_path / 'store')!r}); "
            "print(m.bundle.version, *sorted({n.split('.')[0] for n in sys.modules}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out[0] == "1.0.0"
    assert not {"cryptography", "rich", "click", "paho"} & set(out[1:])
