"""``edgeops.load("model.eob")``: verify a bundle, unpack it privately, open the model inside.

The bundle is verified (structure, hashes, and the signature if it is signed, against the
key it carries: loading needs no trusted key; use :func:`edgeops.bundle.verify` with
``trusted_keys`` before installing a bundle from elsewhere) and extracted into a fresh
private temporary folder that lives as long as the returned :class:`~edgeops.Model`.
The profile is also placed as ``model.profile.json`` next to the model, where the agent
and the drift monitor look for it. :func:`edgeops.load` (:mod:`edgeops.loading`) calls this
for a bundle; the model file inside is opened by the runtime.
"""

from __future__ import annotations

import shutil
import tempfile
import weakref
from typing import TYPE_CHECKING, Any

from .._io import link_or_copy, profile_path
from ..runtime.model import detect_format, open_model
from .manifest import BundleError
from .reader import extract

if TYPE_CHECKING:  # pragma: no cover
    from ..runtime.model import Model

__all__ = ["open_bundle"]


def open_bundle(path: str, **options: Any) -> Model:
    """Verify and unpack ``path``, then open the model inside (``options`` as for :func:`edgeops.load`);
    the folder goes with the Model."""
    folder = tempfile.mkdtemp(prefix="edgeops-bundle-")
    try:
        unpacked = extract(path, folder)
        if unpacked.profile_path is not None:
            link_or_copy(unpacked.profile_path, profile_path(unpacked.model_path))
        if detect_format(unpacked.model_path) == "bundle":
            raise BundleError(f"{path}: the model inside is itself a bundle; refusing to unpack bundles in bundles")
        # the sha256 was verified just now: the Model need not hash the file again
        model = open_model(unpacked.model_path, sha256=unpacked.manifest.model_sha256, manifest=unpacked.manifest,
                           **options)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    weakref.finalize(model, shutil.rmtree, folder, True)
    return model
