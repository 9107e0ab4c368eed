"""``edgeops quickstart``: the tour of what edgeops does, on the bundled digits example.

It grows with the project. Today: inspect the example model, run the held-out
digits through the runtime one by one (accuracy and always-on latency
statistics), run the same model as TFLite when a TFLite runtime is installed,
show guardrails catching out-of-range input, convert the CNN to int8 behind
validation gates, export it to an int8 .tflite without TensorFlow behind the same
gates, and benchmark the files side by side.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import click
import numpy as np

from ..errors import DataError
from ._output import console, emit_json


def find_examples() -> Path:
    """The example models folder of a source checkout (or $EDGEOPS_EXAMPLES)."""
    candidates = [os.environ.get("EDGEOPS_EXAMPLES"), Path(__file__).resolve().parents[2] / "examples" / "models",
                  Path.cwd() / "examples" / "models"]
    for c in candidates:
        if c and (Path(c) / "digits_mlp.onnx").is_file():
            return Path(c)
    raise DataError(
        "the example models (examples/models/digits_mlp.onnx) were not found; run quickstart from a "
        "source checkout of edgeops or set EDGEOPS_EXAMPLES to the folder"
    )


@click.command()
@click.option("--examples", "examples_dir", type=click.Path(file_okay=False), default=None,
              help="Folder of the example models (default: examples/models of the checkout).")
@click.option("--broker", default=None, help="MQTT broker for the agent step (default: a local mosquitto if installed).")
@click.option("--json", "as_json", is_flag=True, help="Print the results as JSON on stdout.")
def quickstart(examples_dir: str | None, broker: str | None, as_json: bool) -> None:
    """Run the tour on the digits example: inspect, run, statistics, TFLite, guardrails, int8, benchmark, agent."""
    import edgeops

    from ..formats import read_summary

    ex = Path(examples_dir) if examples_dir else find_examples()
    err = console(stderr=True)
    x = np.load(ex / "digits_mlp_test.npz")["pixels"]
    labels = np.load(ex / "digits_test_labels.npy")
    report: dict[str, Any] = {"examples": str(ex), "samples": int(len(x))}

    onnx_path = ex / "digits_mlp.onnx"
    report["info"] = read_summary(onnx_path).to_dict()
    err.print(f"[bold]1. inspect[/bold] {onnx_path.name}: ops {report['info']['ops']}")

    err.print(f"[bold]2. run[/bold] {len(x)} held-out digits one at a time through edgeops.load(...).run")
    model = edgeops.load(onnx_path, threads=1)
    ref = _run_all(model, x)
    report["onnx"] = _summary(model, ref, labels)

    tfl_path = ex / "digits_mlp.tflite"
    try:
        tfl = edgeops.load(tfl_path, threads=1)
    except edgeops.EdgeOpsError as exc:
        report["tflite"] = {"skipped": str(exc)}
        err.print(f"[bold]3. tflite[/bold] skipped: {exc}")
    else:
        err.print(f"[bold]3. tflite[/bold] the same digits through {tfl.backend}")
        got = _run_all(tfl, x)
        report["tflite"] = _summary(tfl, got, labels)
        report["tflite"]["max_abs_diff_vs_onnx"] = float(np.max(np.abs(got - ref)))

    err.print("[bold]4. guardrails[/bold] profile ranges, policy clip; 10 inputs with a broken sensor value")
    guard = model.enable_guardrails(ex / "digits_mlp.profile.json", inputs="clip")
    broken = x[:10].copy()
    broken[:, 0] = 7.5  # far above the 0..1 range the model was trained on
    broken[3, 5] = np.nan
    for row in broken:
        model.run({"pixels": row[None]})
    report["guardrails"] = guard.snapshot()["inputs"]["pixels"]
    model.disable_guardrails()

    report["convert"] = _convert_and_validate(ex, err)
    report["tflite_export"] = _export_tflite(ex, err)
    err.print("[bold]7. bench[/bold] short latency benchmarks, side by side, through the same runtime")
    from ..bench import run as bench_run

    candidates = [onnx_path] + ([tfl_path] if "skipped" not in report["tflite"] else [])
    results = bench_run(candidates, runs=200, warmup=20, min_duration=0.5, threads=1)
    report["bench"] = [r.to_dict() for r in results]
    if "output" in report["convert"]:
        pair = bench_run([ex / "digits_cnn.onnx", Path(report["convert"]["output"])], runs=200, warmup=20,
                         min_duration=0.5, threads=1)
        report["bench"] += [r.to_dict() for r in pair]
    if "output" in report["tflite_export"]:
        report["bench"] += [bench_run([Path(report["tflite_export"]["output"])], runs=200, warmup=20,
                                      min_duration=0.5, threads=1)[0].to_dict()]
    from ._quickstart_agent import agent_step

    report["agent"] = agent_step(ex, err, broker)

    if as_json:
        emit_json(report)
        return
    _print_table(report)


def _convert_and_validate(ex: Path, err: Any) -> dict[str, Any]:
    """Step 5: static int8 of the CNN, written only if validation on the held-out digits passes its gates."""
    return _gated_convert(ex, err, "digits_cnn_int8.onnx",
                          "[bold]5. convert + validate[/bold] digits_cnn.onnx to static int8 for generic-cpu, "
                          "gates: accuracy drop <= 1 point, top-1 agreement >= 97 %")


def _export_tflite(ex: Path, err: Any) -> dict[str, Any]:
    """Step 6: the same CNN exported to an int8 ``.tflite`` (no TensorFlow), validated against the ONNX model."""
    return _gated_convert(ex, err, "digits_cnn_int8.tflite",
                          "[bold]6. tflite export[/bold] digits_cnn.onnx to an int8 .tflite without TensorFlow "
                          "(ai-edge-quantizer), same gates against the ONNX model", profile=False)


def _gated_convert(ex: Path, err: Any, filename: str, title: str, **kwargs: Any) -> dict[str, Any]:
    """Convert the CNN to static int8 as ``filename`` behind validation gates; a summary, or why it was skipped."""
    from ..errors import EdgeOpsError

    try:
        from ..convert import convert
        from ..validate import Gates
    except ImportError as exc:  # the convert extra is not installed
        return {"skipped": str(exc)}
    err.print(title)
    out = Path(os.environ.get("EDGEOPS_QUICKSTART_DIR") or _workdir()) / filename
    try:
        rep = convert(ex / "digits_cnn.onnx", out, quantize="int8", calibration=str(ex / "digits_cnn_calib.npz"),
                      validate=str(ex / "digits_cnn_test.npz"), labels=str(ex / "digits_test_labels.npy"),
                      gates=Gates(max_accuracy_drop=1.0, min_agreement=0.97), **kwargs)
    except (EdgeOpsError, ImportError) as exc:
        return {"skipped": str(exc)}
    d = rep.to_dict()
    v = d["validation"] or {}
    return {"output": str(out), "profile": d["profile"], "size_before": d["size_before"], "size_after": d["size_after"],
            "size_ratio": d["size_ratio"], "nodes_quantized": d["nodes_quantized"], "seconds": d["seconds"],
            "ops": d["ops_after"], "accuracy": v.get("accuracy"), "passed": v.get("passed"),
            "agreement": (v.get("outputs") or {}).get("probabilities", {}).get("top1_agreement")}


def _workdir() -> str:
    import tempfile

    path = os.path.join(tempfile.gettempdir(), "edgeops-quickstart")
    os.makedirs(path, exist_ok=True)
    return path


def _run_all(model: Any, x: np.ndarray) -> np.ndarray:
    name = model.inputs[0].name
    out_name = model.outputs[0].name
    return np.concatenate([model.run({name: x[i:i + 1]})[out_name] for i in range(len(x))])


def _summary(model: Any, probs: np.ndarray, labels: np.ndarray) -> dict[str, Any]:
    snap = model.stats.snapshot()
    return {
        "backend": model.backend,
        "providers": model.providers,
        "accuracy": float(np.mean(probs.argmax(axis=1) == labels)),
        "runs": snap["count"],
        "errors": snap["errors"],
        "latency_ms": snap["latency_ms"],
    }


def _print_table(report: dict[str, Any]) -> None:
    from rich.markup import escape  # skip reasons name extras like edgeops[sign], which rich would read as markup
    from rich.table import Table

    out = console()
    table = Table("model", "backend", "accuracy", "runs", "p50 ms", "p95 ms", "p99 ms", "mean ms",
                  title=f"digits MLP, {report['samples']} held-out samples")
    for key in ("onnx", "tflite"):
        r = report[key]
        if "skipped" in r:
            table.add_row(key, "skipped", "", "", "", "", "", "")
            continue
        lat = r["latency_ms"]
        table.add_row(key, r["backend"], f"{r['accuracy']:.2%}", str(r["runs"]),
                      *(f"{lat[k]:.4f}" for k in ("p50", "p95", "p99", "mean")))
    out.print(table)
    if "max_abs_diff_vs_onnx" in report["tflite"]:
        out.print(f"TFLite vs ONNX: max |difference| of probabilities {report['tflite']['max_abs_diff_vs_onnx']:.2e}")
    g = report["guardrails"]
    out.print(f"guardrails: {g['above']} calls had values above the range, {g['nonfinite']} had NaN/inf, "
              f"{g['values']} values clipped or replaced")
    c = report["convert"]
    if "skipped" in c:
        out.print(f"convert: skipped ({escape(str(c['skipped']))})")
    else:
        acc = c["accuracy"] or {}
        ci = acc.get("ci95") or [float("nan"), float("nan")]
        out.print(f"convert: digits_cnn int8 {c['size_before'] / 1024:.1f} KiB -> {c['size_after'] / 1024:.1f} KiB "
                  f"({c['size_ratio']:.2f}x smaller), accuracy {acc.get('reference', float('nan')):.2%} -> "
                  f"{acc.get('candidate', float('nan')):.2%} (drop {acc.get('drop_points', float('nan')):.2f} points, "
                  f"95% CI {ci[0]:.2f}..{ci[1]:.2f}), top-1 agreement {c['agreement']:.2%}, gates passed: {c['passed']}")
        out.print(f"written to {c['output']} with its reference profile {c['profile']}")
    t = report["tflite_export"]
    if "skipped" in t:
        out.print(f"tflite export: skipped ({escape(str(t['skipped']))})")
    else:
        acc = t["accuracy"] or {}
        out.print(f"tflite export: digits_cnn int8 .tflite {t['size_before'] / 1024:.1f} KiB -> "
                  f"{t['size_after'] / 1024:.1f} KiB ({t['size_ratio']:.2f}x smaller), ops {t['ops']}, accuracy "
                  f"{acc.get('reference', float('nan')):.2%} -> {acc.get('candidate', float('nan')):.2%}, "
                  f"top-1 agreement {t['agreement']:.2%}, gates passed: {t['passed']}; written to {t['output']}")
    from ..bench import report as bench_report

    out.print(bench_report.to_table(report["bench"]))
    a = report["agent"]
    if "skipped" in a:
        out.print(f"agent: skipped ({escape(str(a['skipped']))})")
    else:
        last = a["last"] or {}
        inf, drift = last.get("inference", {}), last.get("drift", {})
        def num(v: Any) -> str:
            return "n/a" if v is None else f"{v:.3g}"

        out.print(f"agent: {a['messages']} telemetry messages arrived on edgeops/quickstart/demo-01/telemetry via "
                  f"{a['broker']} (seq {a['seqs']}); last busy one: {inf.get('total')} inferences so far, "
                  f"p95 {num((inf.get('latency_ms') or {}).get('p95'))} ms, drift max PSI {num(drift.get('max_psi'))}, "
                  f"CPU {num(last.get('health', {}).get('cpu_percent'))} %")
    o = a.get("ota") or {}
    if o:
        if "outcome" in o:
            out.print(f"ship: bundle of {o['bundle_bytes']} bytes flashed over MQTT in {o['seconds']:.2f} s: "
                      f"{o['outcome']}; the agent's telemetry now reports model version {o.get('telemetry_version')} "
                      f"(was 1.0)")
        else:
            out.print(f"ship: skipped ({escape(str(o.get('skipped')))})")
    out.print("more: edgeops bench MODEL ... --plot latency.png, edgeops info MODEL, edgeops agent run --config "
              "agent.toml, edgeops fleet watch --broker URL --fleet F")
