"""How a stage function takes its options object: ``fn(..., options=Options(...))``, keywords, or both.

``edgeops.convert`` and ``edgeops.validate`` each have one frozen dataclass of options
(:class:`edgeops.convert.options.ConvertOptions`, :class:`edgeops.validate.options.ValidateOptions`) and
take its fields as keywords too, as they always have; keywords given with ``options`` replace those fields.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any, TypeVar

from .errors import UsageError

if TYPE_CHECKING:  # pragma: no cover
    from _typeshed import DataclassInstance

T = TypeVar("T", bound="DataclassInstance")


def merged(cls: type[T], options: T | None, keywords: dict[str, Any]) -> T:
    """``options`` (a ``cls``, or None for the defaults) with ``keywords`` replacing its fields; an unknown
    keyword is a TypeError, as for any function, and ``options`` of another type a UsageError."""
    if options is None:
        return cls(**keywords)
    if not isinstance(options, cls):
        raise UsageError(f"options must be an {cls.__module__}.{cls.__name__}, not a {type(options).__name__}")
    return dataclasses.replace(options, **keywords) if keywords else options
