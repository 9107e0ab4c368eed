"""``edgeops info MODEL``: what a model file holds, read without loading a runtime.

With ``--json`` or ``-v`` the model is also opened as ``edgeops.load`` would open it, and the
backend, its version and the execution providers (ONNX) or delegates (TFLite) it got are shown
under ``runtime``; where no runtime is installed, ``runtime`` says why instead.
"""

from __future__ import annotations

from typing import Any

import click

from ._output import console, emit_json


@click.command()
@click.argument("model", type=click.Path(dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON on stdout.")
@click.option("-v", "--verbose", is_flag=True, help="Also open the model and show its backend and delegates.")
def info(model: str, as_json: bool, verbose: bool) -> None:
    """Show a model's format, inputs, outputs, size, op histogram and versions."""
    from ..formats import read_summary

    summary = read_summary(model)
    data = {"path": model, **summary.to_dict()}
    if as_json or verbose:
        data["runtime"] = _runtime(model)
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
    rt = data.get("runtime")
    if rt:
        used = rt.get("delegates", rt.get("providers"))
        out.print(f"runtime: {rt['backend']} {rt['version']}, {'delegates' if 'delegates' in rt else 'providers'} "
                  f"{', '.join(used)}" if "backend" in rt else f"runtime: {rt['error']}", markup=False)


def _runtime(model: str) -> dict[str, Any]:
    """How ``edgeops.load`` runs the model here: backend, version, providers or delegates."""
    from ..errors import BackendError, ModelLoadError
    from ..loading import load

    try:
        m = load(model)
    except (BackendError, ModelLoadError) as exc:  # no runtime here, or it refuses what the reader accepted
        return {"error": str(exc)}
    described = m.describe()
    key = "delegates" if described["format"] == "tflite" else "providers"
    return {"backend": described["backend"], "version": described["backend_version"], key: described["providers"]}
