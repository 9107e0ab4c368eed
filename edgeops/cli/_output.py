"""Shared output helpers for CLI commands: JSON to stdout, tables and messages to stderr."""

from __future__ import annotations

import json
from typing import Any

import click

from .._io import jsonable


def emit_json(data: Any) -> None:
    """Print ``data`` as JSON on stdout (NaN/inf become null, numpy scalars plain numbers)."""
    click.echo(json.dumps(jsonable(data), indent=2))


def console(stderr: bool = False) -> Any:
    """A rich console; when the output is not a terminal (a pipe, a file, CI logs) tables get 200 columns,
    unless $COLUMNS says how many."""
    import os
    import sys

    from rich.console import Console

    stream = sys.stderr if stderr else sys.stdout
    width = None if stream.isatty() or os.environ.get("COLUMNS", "").isdigit() else 200
    return Console(stderr=stderr, highlight=False, width=width)
