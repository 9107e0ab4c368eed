"""``edgeops bench MODEL [MODEL ...]``: latency through the production runtime, side by side, with gates."""

from __future__ import annotations

from typing import Any

import click

from .._gates import bench_failures as gate_failures
from ..errors import CheckFailed, UsageError
from ..runtime.backends import BACKENDS
from ..runtime.input_shapes import parse as parse_input_shapes
from ._output import console, emit_json


@click.command()
@click.argument("models", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("--runs", default=100, show_default=True, help="Minimum steady-state runs.")
@click.option("--warmup", default=10, show_default=True, help="Warmup runs, reported apart.")
@click.option("--duration", type=float, default=None, help="Run for exactly S seconds (sets min and max duration).")
@click.option("--min-duration", type=float, default=None,
              help="Keep running at least S seconds (default: 1, or --max-duration if that is shorter).")
@click.option("--max-duration", type=float, default=150.0, show_default=True, help="Stop after S seconds.")
@click.option("--threads", type=int, default=None, help="Intra-op threads (default: the runtime's).")
@click.option("--backend", type=click.Choice(list(BACKENDS)), default=None)
@click.option("--provider", "providers", multiple=True, help="Execution provider or delegate, best first (repeat).")
@click.option("--batch", type=int, default=None,
              help="Batch size fed to dynamic batch axes (default: the one --input-shape gives, else 1).")
@click.option("--data", type=click.Path(dir_okay=False), default=None, help="Inputs from a .npz/.npy data file.")
@click.option("--input-shape", "input_shapes", multiple=True,
              help="NAME:D1,D2,... for dynamic dims (repeat); a first dim given here is the batch.")
@click.option("--seed", default=0, show_default=True, help="Seed of the random inputs.")
@click.option("--end-to-end", is_flag=True, help="Time preprocessing too (needs --preprocess).")
@click.option("--preprocess", default=None, help="e.g. 'scale=1/255,mean=0.5,std=0.25,layout=nhwc->nchw'.")
@click.option("--cv-warn", type=float, default=0.10, show_default=True, help="Warn above this coefficient of variation.")
@click.option("--max-p95-ms", type=float, default=None, help="Gate: exit 1 if any model's p95 is above.")
@click.option("--max-mean-ms", type=float, default=None, help="Gate: exit 1 if any model's mean is above.")
@click.option("--max-rss-mb", type=float, default=None, help="Gate: exit 1 if any model's peak RSS is above.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per model, as a list, on stdout.")
@click.option("--csv", "as_csv", is_flag=True, help="CSV on stdout.")
@click.option("--markdown", "as_markdown", is_flag=True, help="A markdown table on stdout.")
@click.option("--wide", is_flag=True, help="Every column (init, first run, mean, std, RSS...), however wide.")
@click.option("--plot", type=click.Path(dir_okay=False), default=None, help="Write latency distributions and CDFs to a PNG.")
def bench(models: tuple[str, ...], runs: int, warmup: int, duration: float | None, min_duration: float | None,
          max_duration: float, threads: int | None, backend: str | None, providers: tuple[str, ...], batch: int | None,
          data: str | None, input_shapes: tuple[str, ...], seed: int, end_to_end: bool, preprocess: str | None,
          cv_warn: float, max_p95_ms: float | None, max_mean_ms: float | None, max_rss_mb: float | None,
          as_json: bool, as_csv: bool, as_markdown: bool, wide: bool, plot: str | None) -> None:
    """Benchmark latency of one or more models (.onnx, .tflite) through the edgeops runtime."""
    from .._io import output_folder
    from ..bench import Settings, report, run
    from ..bench.harness import progress_bar
    from ..runtime.preprocess import Preprocess

    if sum((as_json, as_csv, as_markdown)) > 1:
        raise UsageError("choose one of --json, --csv, --markdown")
    if end_to_end != (preprocess is not None):
        raise UsageError("--end-to-end and --preprocess go together: end-to-end times the preprocessing you describe")
    if duration is not None:
        min_duration = max_duration = duration
        runs = 1
    if plot:
        output_folder(plot)  # the one rule for output paths, checked before minutes of benchmarking
    settings = Settings(runs=runs, warmup=warmup, min_duration=min_duration, max_duration=max_duration,
                        threads=threads, backend=backend, providers=list(providers) or None, batch=batch,
                        data=data, input_shapes=parse_input_shapes(input_shapes), seed=seed, cv_warn=cv_warn,
                        preprocess=Preprocess.parse(preprocess) if preprocess else None)
    update, close = progress_bar()
    try:
        results = run(models, settings, progress=update)
    finally:
        close()
    dicts = [r.to_dict(samples=bool(plot)) for r in results]
    if plot:
        report.plot(dicts, plot)
    rows = [{k: v for k, v in d.items() if k != "samples_ms"} for d in dicts]
    if as_json:
        emit_json(rows)
    elif as_csv:
        click.echo(report.to_csv(rows), nl=False)
    elif as_markdown:
        click.echo(report.to_markdown(rows))
    else:
        out = console()
        show_results(out, rows, wide=wide)
        if plot:
            out.print(f"plot written to {plot}")
    failures = gate_failures(rows, max_p95_ms=max_p95_ms, max_mean_ms=max_mean_ms, max_rss_mb=max_rss_mb)
    if failures:
        raise CheckFailed("benchmark gate failed: " + "; ".join(failures))


def show_results(out: Any, rows: list[dict[str, Any]], *, wide: bool = False) -> None:
    """The results table on ``out`` (a rich console), fitted to its width unless ``wide``, then every
    warning the harness attached (unstable timings, too few runs, throttling, drift). ``edgeops bench``
    and the quickstart's bench step both print through this."""
    from rich.markup import escape
    from rich.measure import Measurement

    from ..bench import report

    table = report.to_table(rows, wide=wide, width=out.width)
    need = Measurement.get(out, out.options.update(width=10_000), table).maximum if wide else out.width
    if need > out.width:  # --wide: as wide as it needs, never a cut number
        from rich.console import Console

        Console(file=out.file, width=need, highlight=False, color_system=out.color_system).print(table)
    else:
        out.print(table)
    for name, warning in report.warnings(rows):
        out.print(f"[yellow]warning[/yellow] {escape(name)}: {escape(warning)}")
