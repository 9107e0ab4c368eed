"""Shared output helpers for CLI commands: JSON to stdout, tables and messages to stderr."""

from __future__ import annotations

import json
import math
from typing import Any

import click


def _clean(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if hasattr(value, "item") and callable(value.item):  # numpy scalars
        return _clean(value.item())
    return value


def emit_json(data: Any) -> None:
    """Print ``data`` as JSON on stdout (NaN/inf become null, numpy scalars plain numbers)."""
    click.echo(json.dumps(_clean(data), indent=2))


def console(stderr: bool = False) -> Any:
    """A rich console; when the output is not a terminal (a pipe, a file, CI logs) tables get 200 columns."""
    import sys

    from rich.console import Console

    stream = sys.stderr if stderr else sys.stdout
    width = None if stream.isatty() else 200
    return Console(stderr=stderr, highlight=False, width=width)
