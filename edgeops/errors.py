"""The one exception tree of edgeops.

Every error edgeops raises on purpose is an :class:`EdgeOpsError`. A dependency's
exception is caught where edgeops calls it and re-raised as one of these, ``from``
the original, with a message that says what to do next. The CLI renders them once,
at the top, as one line and an exit code (``exit_code``)::

    EdgeOpsError                      exit 2 unless noted
    ├── UsageError                    bad arguments, impossible option combinations
    ├── UnsupportedOpsError           nodes a converter cannot express (all listed together)
    ├── ModelLoadError                a model file cannot be opened
    │   ├── ModelNotFoundError        missing or unreadable path
    │   └── ModelFormatError          empty, truncated, corrupt or not a model at all
    ├── BackendError                  the runtime backend itself
    │   ├── BackendUnavailableError   backend package not installed / not usable here
    │   ├── ProviderUnavailableError  requested execution provider or delegate missing
    │   └── InferenceError            the backend failed while running a valid input
    ├── InputError                    what the caller passed to Model.run
    │   ├── InputNameError            unknown or missing input names
    │   ├── InputShapeError           wrong rank or dimension
    │   └── InputDtypeError           dtype that cannot be converted losslessly
    ├── GuardrailError                a guardrail with the "reject" policy fired
    ├── DataError                     a data, labels or profile file is unusable
    └── CheckFailed                   a gate or check failed (exit 1)
"""

from __future__ import annotations

__all__ = [
    "EdgeOpsError",
    "UsageError",
    "UnsupportedOpsError",
    "ModelLoadError",
    "ModelNotFoundError",
    "ModelFormatError",
    "BackendError",
    "BackendUnavailableError",
    "ProviderUnavailableError",
    "InferenceError",
    "InputError",
    "InputNameError",
    "InputShapeError",
    "InputDtypeError",
    "GuardrailError",
    "DataError",
    "CheckFailed",
]


class EdgeOpsError(Exception):
    """Base of every error edgeops raises on purpose."""

    exit_code = 2


class UsageError(EdgeOpsError):
    """Bad arguments or an impossible combination of options."""


class UnsupportedOpsError(EdgeOpsError):
    """A model has nodes the converter cannot express; ``problems`` lists every one of them
    as ``(node name, op type, reason)``, not just the first."""

    def __init__(self, message: str, problems: list[tuple[str, str, str]] | None = None):
        super().__init__(message)
        self.problems = list(problems or [])


class ModelLoadError(EdgeOpsError):
    """A model file cannot be opened."""


class ModelNotFoundError(ModelLoadError, FileNotFoundError):
    """The model path does not exist or cannot be read."""


class ModelFormatError(ModelLoadError, ValueError):
    """The file is empty, truncated, corrupt, or not a model edgeops knows."""


class BackendError(EdgeOpsError):
    """Something went wrong inside a runtime backend."""


class BackendUnavailableError(BackendError, ImportError):
    """The backend package is not installed or cannot be used on this machine."""


class ProviderUnavailableError(BackendError):
    """A requested execution provider or delegate is not available."""


class InferenceError(BackendError):
    """The backend failed while running an input that passed the checks."""


class InputError(EdgeOpsError, ValueError):
    """The inputs given to ``Model.run`` do not match the model."""


class InputNameError(InputError, KeyError):
    """Unknown input names, or a required input is missing."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class InputShapeError(InputError):
    """An input has the wrong rank or a wrong fixed dimension."""


class InputDtypeError(InputError, TypeError):
    """An input's dtype cannot be converted to the model's without loss."""


class GuardrailError(EdgeOpsError):
    """A guardrail whose policy is ``reject`` saw a value outside the reference range."""


class DataError(EdgeOpsError):
    """A data, labels or profile file is missing, malformed or does not fit the model."""


class CheckFailed(EdgeOpsError):
    """A gate or check failed: validation, benchmark thresholds, bundle verification."""

    exit_code = 1
