"""Convert (adapt) models for device targets: ``edgeops.convert(...)`` and ``edgeops convert``.

``edgeops.convert`` is both this package and a function you can call::

    import edgeops
    report = edgeops.convert("model.onnx", "model_int8.onnx", quantize="int8", calibration="calib.npz")
    edgeops.convert.from_torch(module, example_inputs, "model.onnx")
"""

from __future__ import annotations

import sys
import types
from typing import Any

from .api import MODES, ConvertReport, choose_mode, convert
from .importers import from_sklearn, from_torch

__all__ = ["convert", "ConvertReport", "MODES", "choose_mode", "from_torch", "from_sklearn"]


class _CallableModule(types.ModuleType):
    """Lets ``edgeops.convert(...)`` call :func:`convert` while ``edgeops.convert.from_torch`` stays a module attribute."""

    def __call__(self, *args: Any, **kwargs: Any) -> ConvertReport:
        return convert(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
