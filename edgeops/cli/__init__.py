"""The ``edgeops`` command line: a click group, one module per command group.

Commands stay thin: parse, call the library, print. Errors are rendered once,
here: an :class:`~edgeops.EdgeOpsError` becomes one line on stderr and its exit
code (2 for bad usage or input, 1 for a failed gate or check); no traceback for a
user error. ``--json`` output goes to stdout and nothing else does.
"""

from __future__ import annotations

from typing import Any

import click

from .._version import __version__
from ..errors import EdgeOpsError


class EdgeOpsGroup(click.Group):
    """A click group that turns edgeops errors into one line and an exit code."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except EdgeOpsError as exc:
            raise _UserError(exc) from exc


class _UserError(click.ClickException):
    def __init__(self, exc: EdgeOpsError):
        super().__init__(str(exc))
        self.exit_code = exc.exit_code  # type: ignore[misc]  # click types it a ClassVar; main() reads the instance's

    def show(self, file: Any = None) -> None:
        click.echo(f"error: {self.format_message()}", err=True)


@click.group(cls=EdgeOpsGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", "-V", prog_name="edgeops")
def cli() -> None:
    """edgeops: convert, validate, benchmark, ship and watch ML models on edge devices."""


def _register() -> None:
    from . import (
        agent,
        bench,
        bridge,
        bundle,
        convert,
        explain,
        flash,
        fleet,
        info,
        quickstart,
        rollout,
        store,
        validate,
    )

    cli.add_command(agent.agent)
    cli.add_command(bench.bench)
    cli.add_command(bridge.bridge)
    cli.add_command(bundle.bundle)
    cli.add_command(bundle.keygen)
    cli.add_command(convert.convert)
    cli.add_command(explain.explain)
    cli.add_command(fleet.fleet)
    cli.add_command(flash.flash)
    cli.add_command(info.info)
    cli.add_command(quickstart.quickstart)
    cli.add_command(rollout.rollout)
    cli.add_command(store.store)
    cli.add_command(validate.validate)


_register()


def main(argv: list[str] | None = None) -> None:
    cli.main(args=argv, prog_name="edgeops")


if __name__ == "__main__":  # pragma: no cover
    main()  # click's main exits with the command's code
