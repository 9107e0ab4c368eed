"""``edgeops info MODEL``: what a model file holds, read without loading a runtime."""

from __future__ import annotations

import click

from ._output import console, emit_json


@click.command()
@click.argument("model", type=click.Path(dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON on stdout.")
def info(model: str, as_json: bool) -> None:
    """Show a model's format, inputs, outputs, size, op histogram and versions."""
    from ..formats import read_summary

    summary = read_summary(model)
    data = {"path": model, **summary.to_dict()}
    if as_json:
        emit_json(data)
        return
    from rich.table import Table

    out = console()
    out.print(f"[bold]{model}[/bold]  {data['format']}  {data['size_bytes'] / 1024:.1f} KiB")
    versions = ", ".join(f"{k} {v}" for k, v in data["versions"].items())
    if versions:
        out.print(f"versions: {versions}")
    if data.get("producer"):
        out.print(f"producer: {data['producer']}")
    table = Table("", "name", "shape", "dtype", box=None)
    for kind in ("inputs", "outputs"):
        for t in data[kind]:
            shape = "?" if t["shape"] is None else "[" + ", ".join("?" if d is None else str(d) for d in t["shape"]) + "]"
            table.add_row(kind[:-1], t["name"], shape, t["dtype"])
    out.print(table)
    ops = Table("op", "count", box=None)
    for op, n in data["ops"].items():
        ops.add_row(op, str(n))
    out.print(ops)
