"""One form of a bundle manifest everywhere, and the model's hash handed over instead of written into it."""

from __future__ import annotations

import io
import os

import numpy as np
import pytest

import edgeops
from edgeops.bundle import Manifest, read_manifest
from edgeops.bundle.writer import _npz
from edgeops.deploy.store import ModelStore, store_model
from edgeops.runtime import FunctionBackend, Model, TensorSpec, open_model


def test_a_store_slot_holds_the_bundle_manifest_itself(tmp_path, bundles):
    store = ModelStore(tmp_path / "store")
    info = store.install(bundles.v1)
    store.switch(info.slot)
    assert isinstance(info.manifest, Manifest)
    assert info.manifest == read_manifest(bundles.v1) == read_manifest(bundles.v1).data
    assert info.manifest["version"] == info.manifest.version == info.version == "1.0.0"
    assert info.profile_path == os.path.join(info.dir, info.manifest["profile"])
    model = store.load_active()
    assert model.bundle is not None and model.bundle.raw == read_manifest(bundles.v1).raw
    assert model.sha256 == info.manifest.model_sha256  # given by the store, equal to the file's


def test_the_agent_finds_its_store_model_in_deploy(tmp_path, bundles):
    assert store_model(str(tmp_path)) is None
    store = ModelStore(tmp_path / "models")
    store.switch(store.install(bundles.v1).slot)
    found = store_model(str(tmp_path))
    assert found is not None and found["version"] == "1.0.0" and os.path.isfile(found["path"])
    assert found["profile"] is not None and os.path.isfile(found["profile"])


def test_a_model_takes_its_hash_and_manifest_as_arguments(tmp_path):
    spec = TensorSpec("x", (1,), np.dtype(np.float32))
    backend = FunctionBackend(lambda x: {"y": x}, [spec], [TensorSpec("y", (1,), np.dtype(np.float32))])
    assert Model(backend).sha256 is None and Model(backend).bundle is None
    assert Model(backend, path=str(tmp_path / "never-read"), sha256="ab" * 32).sha256 == "ab" * 32


def test_the_runtime_alone_does_not_open_a_bundle(bundles, examples):
    with pytest.raises(edgeops.ModelFormatError, match="edgeops.load"):
        open_model(bundles.v1)
    model = edgeops.load(bundles.v1)
    assert model.bundle.version == "1.0.0" and model.sha256 == model.bundle.model_sha256
    assert open_model(examples / "digits_mlp.onnx").bundle is None


def test_sample_npz_is_what_savez_writes_whatever_the_input_names():
    pixels = np.arange(12, dtype=np.float32).reshape(3, 4)
    buf = io.BytesIO()
    np.savez(buf, pixels=pixels)
    assert _npz({"pixels": pixels}) == buf.getvalue()
    loaded = np.load(io.BytesIO(_npz({"file": pixels, "allow_pickle": pixels[:, :1]})), allow_pickle=False)
    assert np.array_equal(loaded["file"], pixels) and loaded["allow_pickle"].shape == (3, 1)
