"""Fixtures for the deploy tests: real signed bundles of the example models, keys, and a store.

* ``bundles``: ``v1`` (digits_mlp.onnx, 1.0.0), ``v2`` (digits_cnn.tflite, 2.0.0) and ``v3``
  (digits_mlp.onnx, 3.0.0), all signed with ``key``; ``unsigned`` (1.0.0, no signature);
  ``pub`` trusts them, ``other_pub`` does not. Built once per session.
* ``hostile``: bundles every reader must refuse, made from those: ``deep`` (manifest.json is
  ``[`` * 5000), ``nested`` (the model member is itself a bundle, signed with ``key``).
* ``DEEP``: ``[`` * 5000, which json.loads answers with a RecursionError; for store files too.
* ``tampered(bundle)``: a copy of a bundle with one byte flipped in its middle.
* ``run_sample(model)``: one real digit through a loaded model, the probabilities it returns.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from tests.conftest import EXAMPLES


@pytest.fixture(scope="session")
def bundles(tmp_path_factory) -> SimpleNamespace:
    from edgeops.bundle import create, keygen

    d = tmp_path_factory.mktemp("bundles")
    key, pub = keygen(str(d / "release"))
    _, other_pub = keygen(str(d / "other"))
    b = SimpleNamespace(key=key, pub=pub, other_pub=other_pub, dir=d)
    for attr, model, version, signing in [("v1", "digits_mlp.onnx", "1.0.0", key),
                                          ("v2", "digits_cnn.tflite", "2.0.0", key),
                                          ("v3", "digits_mlp.onnx", "3.0.0", key),
                                          ("unsigned", "digits_mlp.onnx", "1.0.0", None)]:
        out = d / f"digits-{attr}.eob"
        create(str(EXAMPLES / model), str(out), name="digits", version=version, key=signing)
        setattr(b, attr, out)
    return b


DEEP = b"[" * 5000


@pytest.fixture(scope="session")
def hostile(tmp_path_factory, bundles) -> SimpleNamespace:
    from tests.bundle.crafting import members, nested, replace, write_tar

    d = tmp_path_factory.mktemp("hostile")
    return SimpleNamespace(
        deep=write_tar(d / "deep.eob", replace(members(bundles.unsigned), "manifest.json", DEEP)),
        nested=nested(bundles.v1, bundles.v3, d / "nested.eob", key=bundles.key),
    )


@pytest.fixture
def tampered(tmp_path):
    def flip(bundle: Path) -> Path:
        out = tmp_path / f"tampered-{bundle.name}"
        shutil.copyfile(bundle, out)
        data = bytearray(out.read_bytes())
        data[len(data) // 2] ^= 0xFF
        out.write_bytes(bytes(data))
        return out

    return flip


SAMPLES = {
    "pixels": np.load(EXAMPLES / "digits_mlp_test.npz")["pixels"][:1],
    "image": np.load(EXAMPLES / "digits_cnn_test.npz")["image"][:1],
}


def run_sample(model) -> np.ndarray:
    (spec,) = model.inputs
    probs = model.run(SAMPLES[spec.name])["probabilities"]
    assert probs.shape == (1, 10) and abs(float(probs.sum()) - 1.0) < 1e-3
    return probs
