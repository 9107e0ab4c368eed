"""Round trip: create -> verify -> extract -> edgeops.load, and what the manifest records."""

from __future__ import annotations

import json
import os
import tarfile

import numpy as np
import pytest

import edgeops
from edgeops import bundle
from edgeops.errors import DataError, ModelNotFoundError, UsageError
from tests.conftest import needs_ort, needs_tflite

MODELS = [
    pytest.param("digits_mlp.onnx", "digits_mlp_test.npz", "pixels", marks=needs_ort, id="onnx-mlp"),
    pytest.param("digits_cnn.tflite", "digits_cnn_test.npz", "image", marks=needs_tflite, id="tflite-cnn"),
]


def _outputs(model, x):
    return np.concatenate([model.run(x[i:i + 1])["probabilities"] for i in range(len(x))])


@pytest.mark.parametrize("signed", [False, True], ids=["unsigned", "signed"])
@pytest.mark.parametrize("model_name, data_name, input_name", MODELS)
def test_round_trip_gives_the_original_outputs(tmp_path, examples, keys, model_name, data_name, input_name, signed):
    original = examples / model_name
    out = tmp_path / "m.eob"
    made = bundle.create(original, out, name="digits", version="2.1.0", key=str(keys[0]) if signed else None,
                         sample=str(examples / data_name))
    checked = bundle.verify(out, trusted_keys=[keys[1]] if signed else None)
    assert checked.raw == made.raw and checked.signed is signed

    ex = bundle.extract(out, tmp_path / "slot", trusted_keys=[keys[1]] if signed else None)
    assert sorted(os.listdir(ex.dir)) == sorted(["manifest.json", *(["manifest.sig"] if signed else []),
                                                  ex.manifest.model_file, "profile.json", "sample.npz"])
    assert open(ex.model_path, "rb").read() == original.read_bytes()

    x = np.load(examples / data_name)[input_name][:8]
    expected = _outputs(edgeops.load(original), x)
    np.testing.assert_array_equal(_outputs(edgeops.load(ex.model_path), x), expected)
    direct = edgeops.load(out)
    np.testing.assert_array_equal(_outputs(direct, x), expected)
    assert direct.bundle.id == made.id and direct.sha256 == made.model_sha256
    assert np.load(ex.sample_path)[input_name].shape == np.load(examples / data_name)[input_name].shape


@needs_ort
def test_load_sniffs_a_bundle_without_the_eob_name_and_cleans_up(tmp_path, unsigned_mlp):
    renamed = tmp_path / "model.bin"
    renamed.write_bytes(unsigned_mlp.read_bytes())
    model = edgeops.load(renamed)
    folder = os.path.dirname(model.path)
    assert os.path.isfile(os.path.join(folder, "model.profile.json"))  # where the agent looks for it
    del model
    import gc

    gc.collect()
    assert not os.path.exists(folder)


@needs_ort
def test_load_refuses_a_tampered_bundle(tmp_path, unsigned_mlp):
    bad = tmp_path / "bad.eob"
    data = bytearray(unsigned_mlp.read_bytes())
    data[data.index(b"Gemm") + 1] ^= 0x01
    bad.write_bytes(bytes(data))
    with pytest.raises(bundle.BundleError, match="sha256"):
        edgeops.load(bad)


def test_manifest_records_the_model_and_its_companions(examples, signed_mlp, keys):
    m = bundle.read_manifest(signed_mlp)
    d = m.data
    assert m.raw == json.dumps(d, sort_keys=True, indent=2, ensure_ascii=False).encode() + b"\n"
    assert (d["format"], d["manifest_version"], m.name, m.version) == ("edgeops-bundle", 1, "digits", "1.0.0")
    assert len(m.id) == 32 and d["created"].endswith("Z") and d["edgeops"] == edgeops.__version__
    assert d["model"]["inputs"] == [{"name": "pixels", "shape": [None, 64], "dtype": "float32"}]
    assert d["model"]["outputs"] == [{"name": "probabilities", "shape": [None, 10], "dtype": "float32"}]
    assert d["model"]["size"] == (examples / "digits_mlp.onnx").stat().st_size
    assert d["profile"] == "profile.json"  # NAME.profile.json next to the model, picked up by default
    assert d["sample"] == "sample.npz" and d["tolerances"] == {"max_abs": 1e-3}
    assert set(d["files"]) == {"model.onnx", "profile.json", "sample.npz"}
    assert d["quantization"]["quantized"] is False
    assert d["signature"]["key_id"] == m.key_id == bundle.key_id(keys[1]) == bundle.key_id(str(keys[0]))
    with tarfile.open(signed_mlp) as tar:
        assert tar.getnames()[:2] == ["manifest.json", "manifest.sig"]


def test_an_int8_model_is_recorded_as_quantized(tmp_path, examples):
    m = bundle.create(examples / "digits_cnn_int8.tflite", tmp_path / "q.eob", name="cnn", version="1-int8")
    assert m.data["quantization"]["quantized"] is True
    assert m.data["quantization"]["ops"] == {"QUANTIZE": 1, "DEQUANTIZE": 1}
    assert m.data["profile"] is None and m.data["sample"] is None and m.data["signature"] is None


@needs_ort
def test_validation_summary_comes_from_the_report(tmp_path, examples):
    from edgeops.validate import validate

    report = validate(examples / "digits_mlp.onnx", examples / "digits_mlp.tflite", examples / "digits_mlp_test.npz",
                      latency=False)
    path = tmp_path / "report.json"
    path.write_text(json.dumps(report.to_dict()))
    m = bundle.create(examples / "digits_mlp.tflite", tmp_path / "v.eob", name="digits", version="1",
                      report=str(path), target="rpi4", preprocessing={"scale": 1 / 16})
    assert m.data["validation"]["passed"] is True and m.data["validation"]["samples"] == report.samples
    assert "report.json" in m.files and m.data["target"] == "rpi4" and m.data["preprocessing"] == {"scale": 0.0625}
    bundle.verify(tmp_path / "v.eob")


def test_a_npy_sample_is_stored_as_npz_keyed_by_the_input(tmp_path, examples):
    npy = tmp_path / "x.npy"
    np.save(npy, np.load(examples / "digits_mlp_test.npz")["pixels"][:3])
    bundle.create(examples / "digits_mlp.onnx", tmp_path / "s.eob", name="digits", version="1", sample=str(npy))
    ex = bundle.extract(tmp_path / "s.eob", tmp_path / "out")
    assert np.load(ex.sample_path)["pixels"].shape == (3, 64)


@pytest.mark.parametrize("kwargs, error, words", [
    pytest.param({"name": "../etc"}, UsageError, "plain word", id="name-with-a-path"),
    pytest.param({"version": ""}, UsageError, "plain word", id="empty-version"),
    pytest.param({"model": "missing.onnx"}, ModelNotFoundError, "no such file", id="missing-model"),
    pytest.param({"sample": "two_arrays.npz"}, DataError, "no array for input 'pixels'", id="sample-without-the-input"),
    pytest.param({"profile": "digits_test_labels.npy"}, DataError, "not readable JSON: .*not UTF-8",
                 id="profile-not-json"),
    pytest.param({"profile": "deep.profile.json"}, DataError, "not readable JSON: .*nests arrays or objects 5000 deep",
                 id="profile-nested-5000-deep"),
    pytest.param({"report": "deep.json"}, DataError, "not readable JSON: .*nests arrays or objects 5000 deep",
                 id="report-nested-5000-deep"),
    pytest.param({"report": "digits_mlp.onnx"}, UsageError, ".json or .html", id="report-not-a-report"),
    pytest.param({"tolerances": {"max_abs": -1}}, UsageError, "non-negative", id="negative-tolerance"),
])
def test_create_refuses_bad_input_and_writes_nothing(tmp_path, examples, kwargs, error, words):
    args = {"name": "digits", "version": "1", **kwargs}
    model = examples / args.pop("model", "digits_mlp.onnx")
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    np.savez(inputs / "two_arrays.npz", a=np.zeros((2, 64), np.float32), b=np.zeros((2, 64), np.float32))
    for name in ("deep.profile.json", "deep.json"):
        (inputs / name).write_bytes(b"[" * 5000)  # a RecursionError in json.load
    for key in ("sample", "profile", "report"):
        if key in args:
            args[key] = str(examples / args[key] if (examples / args[key]).exists() else inputs / args[key])
    with pytest.raises(error, match=words):
        bundle.create(model, tmp_path / "x.eob", **args)
    assert os.listdir(tmp_path) == ["inputs"]


def test_keygen_makes_a_private_key_and_refuses_to_overwrite(tmp_path):
    key, pub = bundle.keygen(tmp_path / "k")
    assert os.stat(key).st_mode & 0o777 == 0o600
    assert "PRIVATE KEY" in open(key).read() and "PUBLIC KEY" in open(pub).read()
    assert bundle.key_id(pub) == bundle.key_id(bundle.load_public_key(pub)) == bundle.key_id(key)
    before = open(key, "rb").read()
    with pytest.raises(UsageError, match="already exists"):
        bundle.keygen(tmp_path / "k")
    assert open(key, "rb").read() == before
    os.unlink(key)  # only the .pub is left: still refused, and no new .key appears
    with pytest.raises(UsageError, match="already exists"):
        bundle.keygen(tmp_path / "k")
    assert not os.path.exists(key)
