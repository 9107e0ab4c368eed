"""Bundles: one signed file that carries a model from the build host to a device.

A bundle (``NAME.eob``) is an uncompressed POSIX tar of regular files::

    manifest.json    first member: name, version, id, created, model sha256/format/signature,
                     files (sha256 and size of every other member), target, preprocessing,
                     quantization, profile, validation summary, sample, tolerances, signature
    manifest.sig     raw 64-byte Ed25519 signature over the exact manifest.json bytes (if signed);
                     the manifest's "signature" block is {"algorithm": "ed25519", "key_id": first 16
                     hex of sha256(raw public key), "public_key": base64 of the raw 32-byte key}
    model.onnx | model.tflite
    profile.json     reference data profile (optional)
    report.json | report.html   validation report (optional)
    sample.npz       health-check inputs (optional)

Nothing in a bundle is executed or unpickled; readers refuse links, absolute paths, ``..``,
oversize and unlisted members, a manifest that is not strict, bounded JSON, and a model that is
itself a bundle (:func:`check_model_head`, applied by ``verify`` and ``extract``, so by every
install path). Typical use::

    from edgeops import bundle
    bundle.keygen("release")                                   # release.key, release.pub
    bundle.create("model.onnx", "model.eob", name="digits", version="1.2.0", key="release.key")
    bundle.verify("model.eob", trusted_keys=["release.pub"])   # raises BundleError on any problem
    bundle.extract("model.eob", "/var/lib/edgeops/slot-b", trusted_keys=["release.pub"])

Without ``trusted_keys`` a signature is checked against the key the manifest carries: that
proves the bundle is intact, not who made it; pass ``trusted_keys`` (``--pubkey``) for that.
``edgeops.load("model.eob")`` opens the model inside directly (verified, see :mod:`.opening`).
Every failed check raises :class:`BundleError` (a :class:`~edgeops.errors.CheckFailed`, exit 1).
"""

from __future__ import annotations

from .keys import key_id, keygen, load_public_key
from .manifest import MANIFEST_VERSION, MAX_MEMBER_BYTES, BundleError, Manifest, check_model_head
from .reader import Extracted, extract, read_manifest, verify
from .writer import create

__all__ = [
    "BundleError",
    "MANIFEST_VERSION",
    "MAX_MEMBER_BYTES",
    "Manifest",
    "Extracted",
    "keygen",
    "load_public_key",
    "key_id",
    "create",
    "read_manifest",
    "verify",
    "extract",
    "check_model_head",
]
