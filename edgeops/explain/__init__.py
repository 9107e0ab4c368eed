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

from __future__ import annotations

from .._callable import CallablePackage
from .core import METHODS, Comparison, ExplainOptions, Explanation, compare, explain
from .drift import drift

__all__ = ["explain", "compare", "drift", "ExplainOptions", "Explanation", "Comparison", "METHODS", "ExplainPackage"]


class ExplainPackage(CallablePackage):
    """This package, which ``edgeops.explain(...)`` calls as :func:`~edgeops.explain.core.explain`."""

    __call__ = staticmethod(explain)


ExplainPackage.install(__name__)
