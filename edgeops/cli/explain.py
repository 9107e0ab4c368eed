"""``edgeops explain``: what a model looks at, whether a conversion changed it, which inputs drifted.

    edgeops explain MODEL --data DATA [--labels L] [--method M] [--json] [--report R.html]
    edgeops explain REFERENCE CANDIDATE --data DATA [--min-explanation-agreement F]
    edgeops explain [MODEL] --drift DEVICE_DATA --reference PROFILE_OR_DATA
"""

from __future__ import annotations

import os
from typing import Any

import click

from ..errors import CheckFailed, UsageError
from ._output import console, emit_json

METHOD_HELP = ("permutation (importance per feature or input), occlusion (image maps), shap (Shapley values, "
               "needs the shap package), surrogate (local linear fit around --sample); auto: occlusion for an "
               "image input, else permutation.")


def _baseline(text: str | None) -> float | str | None:
    if text is None or text == "mean":
        return text
    try:
        return float(text)
    except ValueError:
        raise UsageError(f"--baseline is a number or 'mean', not {text!r}") from None


def _feature_names(text: str | None, profile: dict[str, Any] | None) -> tuple[str, ...] | None:
    """--feature-names (comma-separated, or a text file with one name a line), else the profile's."""
    if text:
        if os.path.isfile(text):
            with open(text, encoding="utf-8") as f:
                return tuple(line.strip() for line in f if line.strip())
        return tuple(n.strip() for n in text.split(","))
    if profile:
        if isinstance(profile.get("feature_names"), list):
            return tuple(map(str, profile["feature_names"]))
        for entry in (profile.get("inputs") or {}).values():
            if isinstance(entry, dict) and isinstance(entry.get("feature_names"), list):
                return tuple(map(str, entry["feature_names"]))
    return None


def _read_profile(path: str | None) -> dict[str, Any] | None:
    if not path:
        return None
    from ..runtime.guardrails import load_profile

    return load_profile(path)


def _sibling_profile(models: tuple[str, ...]) -> dict[str, Any] | None:
    """MODEL.profile.json next to the (reference) model, where convert and bundles put it; None if absent or unreadable."""
    from ..errors import EdgeOpsError

    if not models:
        return None
    path = os.path.splitext(models[0])[0] + ".profile.json"
    if not os.path.isfile(path):
        return None
    try:
        return _read_profile(path)
    except EdgeOpsError:
        return None


def _preprocess(text: str | None, profile: dict[str, Any] | None) -> Any:
    from ..runtime.preprocess import Preprocess

    if text:
        return Preprocess.parse(text)
    if profile and isinstance(profile.get("preprocessing"), dict):
        return Preprocess.from_dict(profile["preprocessing"])
    return None


def explain_options(method: str, samples: int | None, repeats: int, patch: int | None, stride: int | None,
                    baseline: str | None, sample: int, perturbations: int, max_evals: int | None,
                    output: str | None, input_name: str | None, feature_names: tuple[str, ...] | None,
                    top_k: float, seed: int) -> Any:
    from ..explain import ExplainOptions

    o = ExplainOptions(method=method, samples=samples, repeats=repeats, patch=patch, stride=stride,
                       baseline=_baseline(baseline), sample=sample, perturbations=perturbations, max_evals=max_evals,
                       output=output, input=input_name, feature_names=feature_names, top_k=top_k, seed=seed)
    o.check()
    return o


@click.command()
@click.argument("models", nargs=-1, type=click.Path(dir_okay=False), metavar="[MODEL [CANDIDATE]]")
@click.option("--data", type=click.Path(dir_okay=False), default=None, help="Samples: .npz keyed by input name, or .npy.")
@click.option("--labels", type=click.Path(dir_okay=False), default=None,
              help="Labels .npy: scores are accuracy (or R2) on them; attributions explain the label's class.")
@click.option("--method", type=click.Choice(["auto", "permutation", "occlusion", "shap", "surrogate"]), default="auto",
              show_default=True, help=METHOD_HELP)
@click.option("--samples", type=click.IntRange(min=1), default=None, metavar="N",
              help="Explain at most the first N samples [permutation 500, occlusion 16, shap 16].")
@click.option("--repeats", type=click.IntRange(min=1), default=5, show_default=True, help="Permutation: shuffles per feature.")
@click.option("--patch", type=click.IntRange(min=1), default=None, metavar="PX",
              help="Image patch side [an eighth of the shorter side, at least 2].")
@click.option("--stride", type=click.IntRange(min=1), default=None, metavar="PX", help="Occlusion step [half the patch].")
@click.option("--baseline", default=None, metavar="VALUE|mean",
              help="What a hidden value becomes [0 for images, the data's mean for tables].")
@click.option("--sample", type=click.IntRange(min=0), default=0, show_default=True, help="Surrogate: the sample explained.")
@click.option("--perturbations", type=click.IntRange(min=10), default=1000, show_default=True,
              help="Surrogate: perturbed copies of the sample.")
@click.option("--max-evals", type=click.IntRange(min=1), default=None, help="SHAP: model evaluations per sample.")
@click.option("--output", "output_name", default=None, metavar="NAME", help="The output explained [the first].")
@click.option("--input", "input_name", default=None, metavar="NAME", help="Image methods: the image input.")
@click.option("--feature-names", default=None, metavar="A,B,..|FILE",
              help="Names of a table's columns (comma-separated, or a file with one a line) [from --profile].")
@click.option("--profile", "profile_path", type=click.Path(dir_okay=False), default=None,
              help="A reference profile: feature names and preprocessing (to show images in the data's units) "
                   "[MODEL.profile.json when there is one].")
@click.option("--preprocess", default=None, metavar="SPEC",
              help="The model's preprocessing, undone on pictures: scale=..,mean=..;..,std=..;..,layout=..")
@click.option("--top-k", type=float, default=0.1, show_default=True,
              help="Comparison: the fraction of pixels/features in the top-k IoU.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of every random choice (same seed, same result).")
@click.option("--min-explanation-agreement", "min_agreement", type=float, default=None, metavar="F",
              help="Gate (REFERENCE CANDIDATE): exit 1 when the explanation agreement (Spearman of importances, "
                   "or mean top-k IoU of image maps) is below F or not a number.")
@click.option("--maps", "maps_dir", type=click.Path(file_okay=False), default=None,
              help="Folder for the PNG pictures [next to --report, else ./edgeops-explain].")
@click.option("--drift", "drift_data", type=click.Path(dir_okay=False), default=None,
              help="Device data: rank the inputs that moved from --reference (with MODEL: are its top features among them).")
@click.option("--reference", "reference", type=click.Path(dir_okay=False), default=None,
              help="With --drift: the reference profile (*.profile.json) or reference data (.npz/.npy, per feature).")
@click.option("--report", "report_path", type=click.Path(dir_okay=False), default=None,
              help="Write a self-contained HTML report here.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON on stdout, nothing else.")
def explain(models: tuple[str, ...], data: str | None, labels: str | None, method: str, samples: int | None,
            repeats: int, patch: int | None, stride: int | None, baseline: str | None, sample: int,
            perturbations: int, max_evals: int | None, output_name: str | None, input_name: str | None,
            feature_names: str | None, profile_path: str | None, preprocess: str | None, top_k: float, seed: int,
            min_agreement: float | None, maps_dir: str | None, drift_data: str | None, reference: str | None,
            report_path: str | None, as_json: bool) -> None:
    """Explain MODEL on --data, or how CANDIDATE's explanation moved from REFERENCE's.

    Black-box methods through edgeops.load (any format and backend): the model is only run.
    The JSON has method, model_calls and importances ([{feature, mean, std}], most important first);
    image methods add the PNG maps they wrote. With two models it adds the agreement and the
    samples whose explanation moved most; --min-explanation-agreement makes it a gate (exit 1).
    """
    if len(models) > 2:
        raise UsageError(f"explain takes a MODEL, or a REFERENCE and a CANDIDATE; got {len(models)} paths")
    profile = _read_profile(profile_path) if profile_path else _sibling_profile(models)
    names = _feature_names(feature_names, profile)
    if drift_data or reference:
        return _drift(models, drift_data, reference, names, seed, samples, as_json, report_path)
    if not models:
        raise UsageError("give a MODEL (or REFERENCE CANDIDATE) and --data, or --drift DEVICE_DATA --reference PROFILE")
    if not data:
        raise UsageError("--data DATA is needed: the samples to explain the model on")
    if min_agreement is not None and len(models) != 2:
        raise UsageError("--min-explanation-agreement compares two models: give REFERENCE CANDIDATE")
    options = explain_options(method, samples, repeats, patch, stride, baseline, sample, perturbations, max_evals,
                              output_name, input_name, names, top_k, seed)
    pre = _preprocess(preprocess, profile)
    from .._progress import Bars
    from ..explain import compare, render
    from ..explain import explain as run_explain

    with Bars() as bars:
        if len(models) == 2:
            result: Any = compare(models[0], models[1], data, labels=labels, options=options, minimum=min_agreement,
                                  preprocess=pre, progress=bars.update)
        else:
            result = run_explain(models[0], data, labels=labels, options=options, preprocess=pre, progress=bars.update)
    pngs = render.comparison_pngs(result) if len(models) == 2 else render.explanation_pngs(result)
    image = (result.reference if len(models) == 2 else result).attribution.layout is not None
    if image or maps_dir:
        folder = maps_dir or (os.path.splitext(report_path)[0] + "_maps" if report_path else "edgeops-explain")
        result.maps_written = render.write_pngs(pngs, folder)
    if report_path:
        render.write_html(result, pngs, report_path)
    d = result.to_dict()
    if as_json:
        emit_json(d)
    else:
        _human(result, d, report_path)
    if len(models) == 2 and not result.passed:
        raise CheckFailed("; ".join(result.failures()))


def _drift(models: tuple[str, ...], drift_data: str | None, reference: str | None, names: Any, seed: int,
           samples: int | None, as_json: bool, report_path: str | None) -> None:
    from ..explain import drift

    if not drift_data or not reference:
        raise UsageError("drift needs both --drift DEVICE_DATA and --reference PROFILE (or reference data)")
    if len(models) > 1:
        raise UsageError("--drift explains one MODEL (or none)")
    if not os.path.isfile(reference):
        raise UsageError(f"--reference {reference}: no such file (a *.profile.json, or reference data .npz/.npy)")
    d = drift(drift_data, reference, model=models[0] if models else None,
              feature_names=list(names) if names else None, seed=seed, samples=samples)
    if report_path:
        from .._io import atomic_write
        from ..explain.render import drift_html

        atomic_write(report_path, drift_html(d))
    if as_json:
        emit_json(d)
        return
    from rich.table import Table

    out = console()
    t = Table("feature", "PSI", "level", "mean shift (ref std)", "p05 / p50 / p95 shift",
              title=f"drift against the reference {d['reference']}", title_justify="left")
    for r in d["drift"][:30]:
        q = r["quantile_shift"]
        t.add_row(str(r["feature"]), _n(r["psi"], ".3f"), r["level"] or "–", _n(r["mean_shift_std"], "+.2f"),
                  " / ".join(_n(v, "+.3g") for v in q.values()) if q else "–")
    out.print(t)
    out.print(f"moved (PSI >= 0.1): {', '.join(map(str, d['moved'])) or 'none'}", markup=False)
    if "top_features" in d:
        out.print(f"the model's top features ({d['importance_on']}, {d['model_calls']} model calls): "
                  f"{', '.join(map(str, d['top_features']))}; among the moved: "
                  f"{', '.join(map(str, d['important_and_moved'])) or 'none'}", markup=False)


def _n(v: Any, spec: str) -> str:
    return "–" if v is None else format(v, spec)


def _human(result: Any, d: dict[str, Any], report_path: str | None) -> None:
    from rich.table import Table

    out = console()
    two = "reference" in d
    title = f"{d['method']}: " + (f"{d['candidate']['model']} against {d['reference']['model']}" if two else d["model"])
    from rich.markup import escape

    out.print(f"[bold]explain[/bold] {escape(title)}")
    rows = (d["reference"]["importances"], d["candidate"]["importances"]) if two else (d["importances"],)
    t = Table("#", "feature", *(["reference", "±", "candidate", "±"] if two else ["importance", "±"]),
              title="importances (most important first)", title_justify="left")
    cand = {str(r["feature"]): r for r in rows[-1]}
    for i, r in enumerate(rows[0][:15]):
        cells = [_n(r["mean"], ".4g"), _n(r["std"], ".2g")]
        if two:
            c = cand.get(str(r["feature"]), {})
            cells += [_n(c.get("mean"), ".4g"), _n(c.get("std"), ".2g")]
        t.add_row(str(i + 1), str(r["feature"]), *cells)
    out.print(t)
    if two:
        line = f"agreement {_n(d['agreement'], '.4f')} ({d['agreement_kind']}); rank correlation {_n(d['rank_correlation'], '.4f')}"
        if "topk_iou" in d:
            line += f"; top-{d['top_k']:.0%} IoU {_n(d['topk_iou']['mean'], '.3f')} (worst {_n(d['topk_iou']['min'], '.3f')})"
        if "cosine" in d:
            line += f"; map cosine {_n(d['cosine']['mean'], '.3f')}"
        out.print(line, markup=False)
        if d["moved_most"]:
            out.print(f"moved most: samples {', '.join(map(str, d['moved_most']))}", markup=False)
        out.print(f"cost: {d['model_calls']} model calls", markup=False)
    else:
        extra = {k: d[k] for k in ("metric", "score", "r2", "patch", "stride") if k in d}
        shown = ", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in extra.items())
        out.print(f"cost: {d['model_calls']} model calls ({d['rows']} rows, {d['samples']} samples)"
                  + (f"; {shown}" if shown else ""), markup=False)
    for path in d.get("maps", []):
        out.print(f"map written to {path}", markup=False)
    if report_path:
        out.print(f"report written to {report_path}", markup=False)
    if two and d.get("gate"):
        if d["gate"]["passed"]:
            out.print(f"[green]PASS[/green] explanation agreement >= {d['gate']['min_explanation_agreement']:g}")
        from rich.markup import escape

        for f in d["failures"]:
            out.print(f"[red]FAIL[/red] {escape(f)}")


# -- the gate in other commands ------------------------------------------------------------------------


def comparison_summary(c: Any) -> dict[str, Any]:
    """The comparison without its per-sample lists: what ``validate`` and ``convert`` put in their JSON."""
    d = c.to_dict()
    for key in ("topk_iou", "cosine"):
        if key in d:
            d[key] = {k: v for k, v in d[key].items() if k != "per_sample"}
    for role in ("reference", "candidate"):
        d[role] = {k: v for k, v in d[role].items() if k != "importances"}
    return d


def explanation_gate(reference: str, candidate: str, data: str, labels: str | None, minimum: float | None,
                     method: str = "auto", seed: int = 0) -> Any:
    """``edgeops explain REFERENCE CANDIDATE`` as a gate for ``validate`` and ``convert``."""
    from ..explain import compare

    if minimum is not None and not -1 <= minimum <= 1:
        raise UsageError(f"--min-explanation-agreement is between -1 and 1 (a correlation or an IoU), not {minimum:g}")
    return compare(reference, candidate, data, labels=labels, method=method, seed=seed, minimum=minimum)


def convert_gate(source: str, output: str, data: str, labels: str | None, minimum: float, force: bool,
                 report: dict[str, Any]) -> dict[str, Any]:
    """After ``edgeops convert`` wrote ``output``: compare its explanation with the source's; below ``minimum``
    the output (and its profile) are removed again unless ``force``."""
    if report.get("extra", {}).get("symbol") or str(output).endswith((".c", ".h", ".cc")):
        raise UsageError("--min-explanation-agreement needs a model edgeops can run (.onnx, .tflite), not C source")
    c = explanation_gate(source, output, data, labels, minimum)
    if not c.passed and not force:
        for path in (output, report.get("profile")):
            if path and os.path.isfile(path):
                os.unlink(path)
        raise CheckFailed("converted model failed the explanation gate, nothing written (use --force to write it "
                          "anyway): " + "; ".join(c.failures()))
    return comparison_summary(c)
