"""Bundle fixtures: a release key pair and bundles of the example models (see crafting.py for hostile tars)."""

from __future__ import annotations

from pathlib import Path

import pytest

from edgeops import bundle

pytest.importorskip("cryptography")


@pytest.fixture(scope="session")
def keys(tmp_path_factory) -> tuple[Path, Path]:
    """A release key pair: (release.key, release.pub)."""
    key, pub = bundle.keygen(tmp_path_factory.mktemp("keys") / "release")
    return Path(key), Path(pub)


@pytest.fixture(scope="session")
def signed_mlp(tmp_path_factory, examples, keys) -> Path:
    """digits_mlp.onnx signed with the release key, with its profile and a health-check sample."""
    out = tmp_path_factory.mktemp("signed") / "digits.eob"
    bundle.create(examples / "digits_mlp.onnx", out, name="digits", version="1.0.0", key=str(keys[0]),
                  sample=str(examples / "digits_mlp_test.npz"), tolerances={"max_abs": 1e-3})
    return out


@pytest.fixture(scope="session")
def unsigned_mlp(tmp_path_factory, examples) -> Path:
    out = tmp_path_factory.mktemp("unsigned") / "digits.eob"
    bundle.create(examples / "digits_mlp.onnx", out, name="digits", version="1.0.0")
    return out
