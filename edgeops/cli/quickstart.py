"""``edgeops quickstart``: the tour of what edgeops does, on the bundled digits example.

It grows with the project. Today: inspect the example model, run the held-out
digits through the runtime one by one (accuracy and always-on latency
statistics), run the same model as TFLite when a TFLite runtime is installed,
show guardrails catching out-of-range input, convert the CNN to int8 behind
validation gates, export it to an int8 .tflite without TensorFlow behind the same
gates, benchmark the files side by side, run the agent and ship an update to it, and
explain which pixels the models read and whether int8 changed that.

``--fleet`` runs the fleet side's tour instead (``_quickstart_fleet.py``): the fleet server on a
sqlite store with the local mosquitto, two agents reporting to it, the page's URL and the first rows.
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
@click.option("--fleet", "fleet_tour", is_flag=True,
              help="Tour the fleet side instead: the fleet server on sqlite, two agents, the page and the stored rows.")
@click.option("--json", "as_json", is_flag=True, help="Print the results as JSON on stdout.")
def quickstart(examples_dir: str | None, broker: str | None, fleet_tour: bool, as_json: bool) -> None:
    """Run the tour on the digits example: inspect, run, statistics, TFLite, guardrails, int8, benchmark, agent, explain.

    With --fleet: the fleet side's tour (collector, store, page) with two agents, in about half a minute."""
    import edgeops

    from ..formats import read_summary
    from . import _quickstart_show as show

    ex = Path(examples_dir) if examples_dir else find_examples()
    err = console(stderr=True)
    out = None if as_json else console()  # each step's result goes out as the step ends, under its heading
    if fleet_tour:
        from . import _quickstart_fleet

        result = _quickstart_fleet.fleet_tour(ex, err, broker)
        if out:
            _quickstart_fleet.show(out, result)
        else:
            emit_json({"examples": str(ex), "fleet": result})
        return
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
    if out:
        show.run(out, "onnx", report["onnx"])

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
        if out:
            show.run(out, "tflite", report["tflite"], report["tflite"]["max_abs_diff_vs_onnx"])

    err.print("[bold]4. guardrails[/bold] profile ranges, policy clip; 10 inputs with a broken sensor value")
    guard = model.enable_guardrails(ex / "digits_mlp.profile.json", inputs="clip")
    broken = x[:10].copy()
    broken[:, 0] = 7.5  # far above the 0..1 range the model was trained on
    broken[3, 5] = np.nan
    for row in broken:
        model.run({"pixels": row[None]})
    report["guardrails"] = guard.snapshot()["inputs"]["pixels"]
    model.disable_guardrails()
    if out:
        show.guardrails(out, report["guardrails"])

    report["convert"] = _convert_and_validate(ex, err)
    if out:
        show.convert(out, report["convert"])
    report["tflite_export"] = _export_tflite(ex, err)
    if out:
        show.tflite_export(out, report["tflite_export"])
    err.print("[bold]7. bench[/bold] short latency benchmarks, side by side, through the same runtime")
    report["bench"] = _bench(ex, report)
    if out:
        show.bench(out, report["bench"])
    from ._quickstart_agent import agent_step

    report["agent"] = agent_step(ex, err, broker, on_telemetry=(lambda a: show.agent(out, a)) if out else None)
    if out:
        if "skipped" in report["agent"]:
            show.agent(out, report["agent"])
        show.ship(out, report["agent"].get("ota") or {})
    report["explain"] = _explain(ex, err, report["convert"])
    if out:
        _show_explain(out, report["explain"])
        show.more(out)
    else:
        emit_json(report)


def _explain(ex: Path, err: Any, converted: dict[str, Any]) -> dict[str, Any]:
    """Step 10: which pixels the MLP reads (permutation importance), and whether int8 moved what the CNN looks at."""
    err.print("[bold]10. explain[/bold] which pixels digits_mlp.onnx reads (permutation importance), and the int8 "
              "CNN's occlusion maps against the float one's")
    try:
        from ..explain import compare, explain
    except ImportError as exc:
        return {"skipped": str(exc)}
    names = tuple(f"r{j // 8}c{j % 8}" for j in range(64))
    e = explain(ex / "digits_mlp.onnx", ex / "digits_mlp_test.npz", labels=ex / "digits_test_labels.npy",
                method="permutation", repeats=3, feature_names=names)
    d: dict[str, Any] = {"mlp_top_pixels": [r["feature"] for r in e.importances()[:5]], "mlp_model_calls": e.model_calls,
                         "mlp_score": e.attribution.info["score"]}
    if "output" in converted:
        c = compare(ex / "digits_cnn.onnx", converted["output"], ex / "digits_cnn_test.npz",
                    labels=ex / "digits_test_labels.npy", method="occlusion", samples=32, patch=2, stride=1)
        x = c.to_dict()
        d["int8_vs_float"] = {"rank_correlation": c.rank_correlation, "topk_iou": x["topk_iou"]["mean"],
                              "cosine": x["cosine"]["mean"], "model_calls": x["model_calls"]}
    return d


def _show_explain(out: Any, d: dict[str, Any]) -> None:
    if "skipped" in d:
        out.print(f"explain: skipped ({d['skipped']})", markup=False)
        return
    line = (f"explain: the MLP leans most on pixels {', '.join(d['mlp_top_pixels'])} (row, column; accuracy "
            f"{d['mlp_score']:.1%} before shuffling)")
    x = d.get("int8_vs_float")
    if x:
        line += (f"; int8 CNN vs float: importance rank correlation {x['rank_correlation']:.3f}, top-10% map IoU "
                 f"{x['topk_iou']:.3f}, map cosine {x['cosine']:.3f} ({x['model_calls']} model calls)")
    out.print(line, markup=False)


def _bench(ex: Path, report: dict[str, Any]) -> list[dict[str, Any]]:
    """Step 7: the MLP as ONNX and TFLite, the CNN before and after int8, and the exported .tflite."""
    from ..bench import run as bench_run

    def bench(paths: list[Path]) -> list[dict[str, Any]]:
        return [r.to_dict() for r in bench_run(paths, runs=200, warmup=20, min_duration=0.5, threads=1)]

    rows = bench([ex / "digits_mlp.onnx"] + ([ex / "digits_mlp.tflite"] if "skipped" not in report["tflite"] else []))
    if "output" in report["convert"]:
        rows += bench([ex / "digits_cnn.onnx", Path(report["convert"]["output"])])
    if "output" in report["tflite_export"]:
        rows += bench([Path(report["tflite_export"]["output"])])
    return rows


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

    err.print(title)
    try:
        from ..convert import convert
        from ..validate import Gates
    except ImportError as exc:  # the convert extra is not installed
        return {"skipped": str(exc)}
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
