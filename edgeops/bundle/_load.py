"""``edgeops.load("model.eob")``: verify a bundle, unpack it privately, open the model inside.

The bundle is verified (structure, hashes, and the signature if it is signed, against the
key it carries: loading needs no trusted key; use :func:`edgeops.bundle.verify` with
``trusted_keys`` before installing a bundle from elsewhere) and extracted into a fresh
private temporary folder that lives as long as the returned :class:`~edgeops.Model`.
The profile is also placed as ``model.profile.json`` next to the model, where the agent
and the drift monitor look for it.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import weakref
from collections.abc import Callable
from typing import Any

from ..runtime.model import detect_format
from .manifest import BundleError
from .reader import extract

__all__ = ["load_bundle"]


def load_bundle(path: str, load: Callable[..., Any], **options: Any) -> Any:
    """Verify and unpack ``path``, then ``load(model path, **options)``; the folder goes with the Model."""
    folder = tempfile.mkdtemp(prefix="edgeops-bundle-")
    try:
        unpacked = extract(path, folder)
        if unpacked.profile_path is not None:
            _alias(unpacked.profile_path, os.path.splitext(unpacked.model_path)[0] + ".profile.json")
        if detect_format(unpacked.model_path) == "bundle":
            raise BundleError(f"{path}: the model inside is itself a bundle; refusing to unpack bundles in bundles")
        model = load(unpacked.model_path, **options)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    model.bundle = unpacked.manifest
    model._sha256 = unpacked.manifest.model_sha256  # verified just now; saves hashing the model again
    weakref.finalize(model, shutil.rmtree, folder, True)
    return model


def _alias(source: str, target: str) -> None:
    try:
        os.link(source, target)
    except OSError:
        shutil.copyfile(source, target)
