"""If: TFLite has no kernel for it; graph preparation replaces an ``If`` whose condition is constant
(a shape, or an input fixed with ``--fix-input NAME=VALUE``) by the branch it takes
(``edgeops.convert.fix_inputs``), so one that reaches the converters is refused with what to do."""

from __future__ import annotations

from typing import Any

from ..context import Context
from ..registry import Unsupported, converter

_REASON = ("If on a condition computed at run time (TFLite has no If; fix the inputs it depends on with "
           "--fix-input NAME=VALUE so the branch is chosen at conversion)")


def _check_if(node: Any, ctx: Context) -> str:
    return _REASON


@converter("If", check=_check_if, notes="inlined when its condition is constant (shapes, or --fix-input NAME=VALUE)")
def convert_if(node: Any, ctx: Context) -> None:
    raise Unsupported(_REASON)
