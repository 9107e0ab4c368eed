"""The on-device runtime: open a model file, ``run`` it, read its statistics.

``edgeops.load`` (:mod:`edgeops.loading`) opens model files through :func:`.model.open_model`, and
bundles and model stores above it. See :class:`Model` for the contract, :mod:`.spec` for input checks,
:mod:`.stats` for the always-on statistics and :mod:`.guardrails` for range control.
"""

from .backends import FunctionBackend
from .guardrails import Guardrails, RangeCheck
from .model import Model, open_model
from .spec import TensorSpec
from .stats import RunStats

__all__ = ["open_model", "Model", "TensorSpec", "Guardrails", "RangeCheck", "RunStats", "FunctionBackend"]
