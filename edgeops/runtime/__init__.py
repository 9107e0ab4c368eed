"""The on-device runtime: ``load`` a model, ``run`` it, read its statistics.

See :class:`Model` for the contract, :mod:`.spec` for input checks,
:mod:`.stats` for the always-on statistics and :mod:`.guardrails` for range control.
"""

from .backends import FunctionBackend
from .guardrails import Guardrails, RangeCheck
from .model import Model, load
from .spec import TensorSpec
from .stats import RunStats

__all__ = ["load", "Model", "TensorSpec", "Guardrails", "RangeCheck", "RunStats", "FunctionBackend"]
