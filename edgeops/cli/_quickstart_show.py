"""What the quickstart prints for each step, right under that step's heading (the headings go to stderr
as each step starts; these results go to stdout as each step ends, so a terminal shows them in turn).

Each function takes a rich console and the step's part of the ``--json`` report. Skip reasons name
extras like ``edgeops[sign]``, which rich would read as markup, so they are escaped.
"""

from __future__ import annotations

from typing import Any

from rich.markup import escape


def run(out: Any, key: str, r: dict[str, Any], diff: float | None = None) -> None:
    """Steps 2 and 3: accuracy and the always-on latency statistics of one runtime."""
    if "skipped" in r:
        out.print(f"{key}: skipped ({escape(str(r['skipped']))})")
        return
    lat = r["latency_ms"]
    line = (f"{key}: {r['backend']}, accuracy {r['accuracy']:.2%} over {r['runs']} runs; latency (Model.stats) "
            + ", ".join(f"{k} {lat[k]:.4f}" for k in ("p50", "p95", "p99", "mean")) + " ms")
    if diff is not None:
        line += f"; max |difference| of probabilities vs ONNX {diff:.2e}"
    out.print(line)


def guardrails(out: Any, g: dict[str, Any]) -> None:
    out.print(f"guardrails: {g['above']} calls had values above the range, {g['nonfinite']} had NaN/inf, "
              f"{g['values']} values clipped or replaced")


def convert(out: Any, c: dict[str, Any]) -> None:
    """Step 5: the int8 CNN, its size and accuracy, the gates."""
    if "skipped" in c:
        out.print(f"convert: skipped ({escape(str(c['skipped']))})")
        return
    acc = c["accuracy"] or {}
    ci = acc.get("ci95") or [float("nan"), float("nan")]
    out.print(f"convert: digits_cnn int8 {c['size_before'] / 1024:.1f} KiB -> {c['size_after'] / 1024:.1f} KiB "
              f"({c['size_ratio']:.2f}x smaller), accuracy {acc.get('reference', float('nan')):.2%} -> "
              f"{acc.get('candidate', float('nan')):.2%} (drop {acc.get('drop_points', float('nan')):.2f} points, "
              f"95% CI {ci[0]:.2f}..{ci[1]:.2f}), top-1 agreement {c['agreement']:.2%}, gates passed: {c['passed']}")
    out.print(f"written to {c['output']} with its reference profile {c['profile']}")


def tflite_export(out: Any, t: dict[str, Any]) -> None:
    """Step 6: the int8 .tflite, its ops and accuracy, the gates."""
    if "skipped" in t:
        out.print(f"tflite export: skipped ({escape(str(t['skipped']))})")
        return
    acc = t["accuracy"] or {}
    out.print(f"tflite export: digits_cnn int8 .tflite {t['size_before'] / 1024:.1f} KiB -> "
              f"{t['size_after'] / 1024:.1f} KiB ({t['size_ratio']:.2f}x smaller), ops {t['ops']}, accuracy "
              f"{acc.get('reference', float('nan')):.2%} -> {acc.get('candidate', float('nan')):.2%}, "
              f"top-1 agreement {t['agreement']:.2%}, gates passed: {t['passed']}; written to {t['output']}")


def bench(out: Any, rows: list[dict[str, Any]]) -> None:
    """Step 7: the table and warnings ``edgeops bench`` prints, fitted to the terminal the same way."""
    from .bench import show_results

    show_results(out, rows)


def agent(out: Any, a: dict[str, Any]) -> None:
    """Step 8: telemetry that arrived over the broker while the agent ran."""
    if "skipped" in a:
        out.print(f"agent: skipped ({escape(str(a['skipped']))})")
        return
    last = a["last"] or {}
    inf, drift = last.get("inference", {}), last.get("drift", {})

    def num(v: Any) -> str:
        return "n/a" if v is None else f"{v:.3g}"

    out.print(f"agent: {a['messages']} telemetry messages arrived on edgeops/quickstart/demo-01/telemetry via "
              f"{a['broker']} (seq {a['seqs']}); last busy one: {inf.get('total')} inferences so far, "
              f"p95 {num((inf.get('latency_ms') or {}).get('p95'))} ms, drift max PSI {num(drift.get('max_psi'))}, "
              f"CPU {num(last.get('health', {}).get('cpu_percent'))} %")


def ship(out: Any, o: dict[str, Any]) -> None:
    """Step 9: the signed bundle flashed over MQTT, and the version the agent reports now."""
    if not o:
        return
    if "outcome" in o:
        out.print(f"ship: bundle of {o['bundle_bytes']} bytes flashed over MQTT in {o['seconds']:.2f} s: "
                  f"{o['outcome']}; the agent's telemetry now reports model version {o.get('telemetry_version')} "
                  f"(was 1.0)")
    else:
        out.print(f"ship: skipped ({escape(str(o.get('skipped')))})")


def more(out: Any) -> None:
    out.print("more: edgeops bench MODEL ... --plot latency.png, edgeops info MODEL, edgeops agent run --config "
              "agent.toml, edgeops fleet watch --broker URL --fleet F")
