"""``edgeops.load``: open whatever holds a model (a model file, a bundle, a device's model store).

This is the one place that knows all three: it sits above the runtime (which opens a model
file, :func:`edgeops.runtime.model.open_model`), the bundle package (which verifies and unpacks
a ``.eob`` and opens the model inside, :func:`edgeops.bundle.opening.open_bundle`) and the
deploy package (whose :class:`~edgeops.deploy.store.ModelStore` opens its active slot). None of
those imports this module, so the layers point one way.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from .runtime.guardrails import Guardrails
    from .runtime.model import Model
    from .targets import Target

__all__ = ["load"]


def load(path: str | os.PathLike[str], *, backend: str | None = None, threads: int | None = None,
         providers: list[Any] | None = None, target: str | Target | None = None,
         guardrails: Guardrails | dict[str, Any] | str | os.PathLike[str] | None = None) -> Model:
    """Open a ``.onnx`` or ``.tflite`` model, or a bundle (``.eob``), and return a :class:`Model`.

    A bundle is verified first (structure, hashes, and its signature if it is signed, checked
    against the key it carries: loading does not require a trusted key, so check a bundle
    from elsewhere with ``edgeops.bundle.verify(path, trusted_keys=[...])``), then unpacked
    into a private temporary folder that lives as long as the Model; ``model.bundle`` is its
    manifest; a bundle that fails a check raises ``edgeops.bundle.BundleError``.
    ``cryptography`` is imported only for a signed bundle. A folder holding a model store
    (``active.json``) opens the store's active model.

    ``backend`` forces onnxruntime, litert or tflite-runtime; ``threads`` sets the
    intra-op thread count; ``providers`` lists onnxruntime execution providers
    (``"cuda"``, ``"tensorrt"``, ``("CUDAExecutionProvider", {...})``) or TFLite
    delegates (``"xnnpack"``, ``"cpu"``, a delegate library path) to use, best
    first; unset, they follow ``target`` (default: the machine this runs on).
    ``guardrails`` enables range checks from a reference profile.
    """
    from .runtime.model import check_providers, detect_format, open_model

    p = os.fspath(path)
    options: dict[str, Any] = dict(backend=backend, threads=threads, providers=providers, target=target,
                                   guardrails=guardrails)
    if os.path.isdir(p) and os.path.isfile(os.path.join(p, "active.json")):  # a device's model store
        from .deploy.store import ModelStore

        return ModelStore(p).load_active(**options)
    from .formats import check_model_path

    check_model_path(p)  # missing, a folder, unreadable: the same words in every command
    check_providers(providers)
    fmt = detect_format(p)
    if fmt == "bundle":
        from .bundle.opening import open_bundle

        return open_bundle(p, **options)
    return open_model(p, fmt=fmt, **options)
