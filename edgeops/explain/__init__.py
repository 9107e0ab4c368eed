"""Black-box explanations of a model, and of how a conversion changed what the model looks at.

    import edgeops
    e = edgeops.explain("model.onnx", "test.npz", labels="labels.npy", method="permutation")
    c = edgeops.explain.compare("model.onnx", "model_int8.onnx", "test.npz", method="occlusion")
    d = edgeops.explain.drift("device.npz", "model.profile.json", model="model.onnx")

Methods (:mod:`.methods`, :mod:`._shap`): ``permutation`` importance per feature or input,
``occlusion`` sensitivity maps of images, ``shap`` Shapley values (the ``shap`` package),
``surrogate`` a LIME-style local linear fit around one sample. Every one runs the model through
:func:`edgeops.load` and :meth:`edgeops.Model.run` only, so any format and backend works.
:mod:`.agreement` measures how far two explanations moved; :mod:`.render` draws the maps and the
HTML report; :mod:`.drift` ranks the inputs that moved between a reference and device data.
Nothing here is imported by ``import edgeops``.
"""

import sys
import types
from typing import Any

from .core import METHODS, Comparison, ExplainOptions, Explanation, compare, explain
from .drift import drift

__all__ = ["explain", "compare", "drift", "ExplainOptions", "Explanation", "Comparison", "METHODS"]


class _CallableModule(types.ModuleType):
    """Lets ``edgeops.explain(...)`` call :func:`explain` while the module's names stay reachable."""

    def __call__(self, *args: Any, **kwargs: Any) -> Explanation:
        return explain(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
