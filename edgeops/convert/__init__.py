"""Convert (adapt) models for device targets: ``edgeops.convert(...)`` and ``edgeops convert``.

``edgeops.convert`` is both this package and a function you can call (see :mod:`edgeops._callable`)::

    import edgeops
    report = edgeops.convert("model.onnx", "model_int8.onnx", quantize="int8", calibration="calib.npz")
    edgeops.convert.from_torch(module, example_inputs, "model.onnx")
"""

from __future__ import annotations

from .._callable import CallablePackage
from .api import MODES, ConvertReport, choose_mode, convert
from .importers import from_sklearn, from_torch

__all__ = ["convert", "ConvertReport", "MODES", "choose_mode", "from_torch", "from_sklearn", "ConvertPackage"]


class ConvertPackage(CallablePackage):
    """This package, which ``edgeops.convert(...)`` calls as :func:`~edgeops.convert.api.convert`."""

    __call__ = staticmethod(convert)


ConvertPackage.install(__name__)
