"""Validate a converted model: parity with its reference, accuracy on labels, latency, gates, diagnosis.

    from edgeops.validate import Gates, validate
    report = validate("model.onnx", "model_int8.onnx", "test.npz", labels="labels.npy",
                      gates=Gates(max_accuracy_drop=1.0, min_agreement=0.97))
    print(report.passed, report.failures)
    report.write_html("report.html")

Both models run through :func:`edgeops.load` on the same samples (:mod:`.runner`);
:mod:`.metrics` compares each output and scores accuracy with confidence intervals;
:mod:`.gates` turns limits into failure lines; :mod:`.divergence` finds where an
ONNX candidate departs from its reference; :mod:`.profile` writes the reference
data profile that guardrails and monitoring read; :mod:`.tasks` scores detection boxes
and segmentation masks against the reference's (``task="detection"``/``"segmentation"``).
"""

from .._callable import CallablePackage
from .core import validate
from .gates import Gates
from .profile import build_profile, write_profile
from .report import ValidationReport
from .tasks import Detection, Segmentation

__all__ = ["validate", "Gates", "Detection", "Segmentation", "ValidationReport", "build_profile", "write_profile",
           "ValidatePackage"]


class ValidatePackage(CallablePackage):
    """This package, which ``edgeops.validate(...)`` calls as :func:`~edgeops.validate.core.validate`."""

    __call__ = staticmethod(validate)


ValidatePackage.install(__name__)
