"""Where a candidate ONNX model starts to diverge from its reference.

Both graphs are run on a handful of samples with their intermediate tensors
exposed, tensors are paired, and each pair is scored by SQNR
(``20 log10(|ref| / |ref - cand|)``, in dB; lower is worse):

``qdq``      the candidate holds QuantizeLinear/DequantizeLinear pairs: onnxruntime's
             ``qdq_loss_debug`` helpers expose the tensors
             (``modify_model_output_intermediate_tensors``, ``collect_activations``),
             pair the float tensors with their quantized-then-dequantized twins
             (``create_activation_matching``) and score them (``compute_activation_error``);
             tensors the helpers do not pair but both graphs name are added by name.
``by-name``  anything else (fp16, dynamic quantization, a hand-edited graph, QDQ tensors
             renamed so the helpers cannot pair them): tensors with the same name in both
             graphs become graph outputs in temporary copies and are compared directly; a
             tensor the candidate quantizes (QuantizeLinear -> DequantizeLinear, found from
             the graph) is compared through its dequantized value.

Each entry names the reference node that produces the tensor (its op type and
name) and ``introduced_db``: how much worse the tensor is than the nearest
measured tensors it is computed from. A large value marks the node that adds
the error; the hint suggests excluding those nodes from quantization.
"""

from __future__ import annotations

import math
import os
import tempfile
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

TOP = 10
SQNR_LIMIT = 200.0  # dB; scores are clamped to +-this: 200 means identical, -200 non-finite values
INTRODUCED_DB = 3.0  # a node adding at least this much error is worth excluding
HINT_NODES = 3


def diagnose(reference_path: str, candidate_path: str, ref_feeds: Sequence[dict[str, np.ndarray]],
             cand_feeds: Sequence[dict[str, np.ndarray]], *, top: int = TOP) -> dict[str, Any]:
    """``{"method", "tensors": [ranked entries], "hint", "notes"}`` for the given per-sample feeds."""
    with tempfile.TemporaryDirectory(prefix="edgeops-diverge-") as tmp:
        ref_file, cand_file = os.path.join(tmp, "reference.onnx"), os.path.join(tmp, "candidate.onnx")
        ref_model = _copy(reference_path, ref_file)
        cand_model = _copy(candidate_path, cand_file)
        scores: dict[str, dict[str, Any]] = {}
        notes = []
        if _is_qdq(cand_model):
            try:
                scores = _qdq_scores(ref_file, cand_file, ref_feeds, cand_feeds, tmp)
            except Exception as exc:  # noqa: BLE001 - the helpers assume a model they can shape-infer and run as is
                notes.append(f"onnxruntime's QDQ debugging helpers did not apply ({type(exc).__name__}: {exc}); "
                             "tensors matched by name instead")
        method = "qdq" if scores else "by-name"
        scores.update(_by_name_scores(ref_model, cand_model, ref_feeds, cand_feeds, tmp, skip=set(scores)))
    scores = {k: {m: _clamp(v) if isinstance(v, float) else v for m, v in s.items()} for k, s in scores.items()}
    entries = _entries(ref_model, scores)
    ranked = sorted(entries, key=lambda e: (e["sqnr_db"], e["order"]))[:top]
    return {"method": method, "tensors": ranked, "hint": _hint(ranked), "notes": notes}


def _copy(src: str, dst: str) -> Any:
    """Load (with any external data) and save into the temporary folder: the helpers write next to their input."""
    import onnx

    model = onnx.load(src)
    onnx.save(model, dst)
    return model


def _is_qdq(model: Any) -> bool:
    ops = {n.op_type for n in model.graph.node}
    return "QuantizeLinear" in ops and "DequantizeLinear" in ops


class _Reader:
    """A CalibrationDataReader over a list of feed dicts (duck-typed: the helpers only iterate it)."""

    def __init__(self, feeds: Sequence[dict[str, np.ndarray]]):
        self._feeds = list(feeds)
        self._it = iter(self._feeds)

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._it, None)

    def __iter__(self) -> Iterator[dict[str, np.ndarray]]:
        return iter(self._feeds)


def _qdq_scores(ref_file: str, cand_file: str, ref_feeds: Sequence[dict[str, np.ndarray]],
                cand_feeds: Sequence[dict[str, np.ndarray]], tmp: str) -> dict[str, dict[str, Any]]:
    from onnxruntime.quantization.qdq_loss_debug import (
        collect_activations,
        compute_activation_error,
        create_activation_matching,
        modify_model_output_intermediate_tensors,
    )

    ref_aug, cand_aug = os.path.join(tmp, "reference.aug.onnx"), os.path.join(tmp, "candidate.aug.onnx")
    modify_model_output_intermediate_tensors(ref_file, ref_aug)
    modify_model_output_intermediate_tensors(cand_file, cand_aug)
    float_acts = collect_activations(ref_aug, _Reader(ref_feeds))
    qdq_acts = collect_activations(cand_aug, _Reader(cand_feeds))
    matching = create_activation_matching(qdq_acts, float_acts)
    matching = {k: v for k, v in matching.items() if "float" in v and _same_shapes(v["float"], v["post_qdq"])}
    errors = compute_activation_error(matching)
    return {name: {"sqnr_db": float(e["xmodel_err"]), "qdq_sqnr_db": float(e["qdq_err"]), "match": "qdq"}
            for name, e in errors.items() if "xmodel_err" in e}


def _same_shapes(a: Sequence[np.ndarray], b: Sequence[np.ndarray]) -> bool:
    return len(a) == len(b) and all(x.shape == y.shape for x, y in zip(a, b))


def _float_tensors(model: Any) -> dict[str, Any]:
    """Graph inputs and node outputs with a float type (after shape inference): ``{name: value_info}``."""
    import onnx

    try:
        inferred = onnx.shape_inference.infer_shapes(model)
    except Exception:  # noqa: BLE001 - best effort: without inference only declared types are known
        inferred = model
    g = inferred.graph
    infos = {vi.name: vi for vi in [*g.value_info, *g.output, *g.input]}
    floats = {onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16, onnx.TensorProto.DOUBLE, onnx.TensorProto.BFLOAT16}
    names = [i.name for i in g.input] + [name for node in g.node for name in node.output]
    inits = {i.name for i in g.initializer}
    out = {}
    for name in names:
        vi = infos.get(name)
        if (name and name not in inits and vi is not None and vi.type.HasField("tensor_type")
                and vi.type.tensor_type.elem_type in floats):
            out[name] = vi
    return out


def _dequantized(model: Any) -> dict[str, str]:
    """``{tensor: the DequantizeLinear output that stands for it}`` for every QuantizeLinear -> DequantizeLinear pair.

    Found from the graph, not from names, so it holds after the tensors are renamed, and it gives the
    value the next node really reads (after a fused ReLU's clamp, for instance).
    """
    nodes = model.graph.node
    inits = {i.name for i in model.graph.initializer}
    consumers: dict[str, list[Any]] = {}
    for node in nodes:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    out: dict[str, str] = {}
    for node in nodes:
        if node.op_type != "QuantizeLinear" or node.input[0] in inits:
            continue
        dq = next((c for c in consumers.get(node.output[0], []) if c.op_type == "DequantizeLinear"), None)
        if dq is not None:
            out.setdefault(node.input[0], dq.output[0])
    return out


def _by_name_scores(ref_model: Any, cand_model: Any, ref_feeds: Sequence[dict[str, np.ndarray]],
                    cand_feeds: Sequence[dict[str, np.ndarray]], tmp: str,
                    skip: set[str]) -> dict[str, dict[str, Any]]:
    ref_t, cand_t = _float_tensors(ref_model), _float_tensors(cand_model)
    dq = _dequantized(cand_model)
    pairs = {}  # reference tensor -> (candidate tensor, how it was matched)
    for name in ref_t:
        if name in skip:
            continue
        if dq.get(name) in cand_t:
            pairs[name] = (dq[name], "dequantized")
        elif name in cand_t:
            pairs[name] = (name, "name")
    ref_inputs = {i.name for i in ref_model.graph.input}
    cand_inputs = {i.name for i in cand_model.graph.input}
    pairs = {r: (c, how) for r, (c, how) in pairs.items() if not (r in ref_inputs and c in cand_inputs)}  # same data
    if not pairs:
        return {}
    ref_vals = _run_exposed(ref_model, [ref_t[r] for r in pairs], ref_feeds, os.path.join(tmp, "reference.names.onnx"))
    cand_vals = _run_exposed(cand_model, [cand_t[c] for c, _ in pairs.values()], cand_feeds,
                             os.path.join(tmp, "candidate.names.onnx"))
    scores = {}
    for r, (c, how) in pairs.items():
        if _same_shapes(ref_vals[r], cand_vals[c]):
            scores[r] = {"sqnr_db": sqnr_db(ref_vals[r], cand_vals[c]), "match": how}
    return scores


def _run_exposed(model: Any, infos: list[Any], feeds: Sequence[dict[str, np.ndarray]], path: str) -> dict[str, list]:
    """Run a copy of ``model`` with ``infos`` as extra graph outputs; values per tensor, one per feed."""
    import onnx
    import onnxruntime as ort

    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    inputs = {i.name for i in copy.graph.input}
    present = {o.name for o in copy.graph.output}
    for vi in infos:
        if vi.name not in present and vi.name not in inputs:
            copy.graph.output.append(onnx.helper.make_value_info(vi.name, vi.type))
    onnx.save(copy, path)
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL  # keep every tensor as written
    session = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
    names = [vi.name for vi in infos if vi.name not in inputs]
    values: dict[str, list] = {vi.name: [] for vi in infos}
    for feed in feeds:
        for n, v in zip(names, session.run(names, feed) if names else []):
            values[n].append(np.asarray(v))
        for n in values.keys() & inputs:
            values[n].append(np.asarray(feed[n]))
    return values


def sqnr_db(ref: Sequence[np.ndarray], cand: Sequence[np.ndarray]) -> float:
    """``20 log10(|ref| / |ref - cand|)`` over all values (the formula of onnxruntime's helpers)."""
    r = np.concatenate([np.asarray(x, np.float64).ravel() for x in ref])
    c = np.concatenate([np.asarray(x, np.float64).ravel() for x in cand])
    if not np.isfinite(c).all():
        return -math.inf
    eps = np.finfo(np.float64).eps
    return 20 * math.log10(max(float(np.linalg.norm(r)), eps) / max(float(np.linalg.norm(r - c)), eps))


def _entries(ref_model: Any, scores: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    graph = ref_model.graph
    producer = {}
    for i, node in enumerate(graph.node):
        for out in node.output:
            producer[out] = (i, node)
    inputs = {i.name for i in graph.input}
    inits = {i.name for i in graph.initializer}

    def upstream(name: str, seen: set[str]) -> float:
        """The worst SQNR among the nearest measured tensors ``name`` is computed from (inf: exact inputs)."""
        if name in seen or name in inits or name not in producer:
            return scores[name]["sqnr_db"] if name in scores and name in inputs else math.inf
        seen.add(name)
        worst = math.inf
        for src in producer[name][1].input:
            if not src or src in inits:
                continue
            worst = min(worst, scores[src]["sqnr_db"] if src in scores else upstream(src, seen))
        return worst

    entries = []
    for name, s in scores.items():
        index, node = producer.get(name, (-1, None))
        before = upstream(name, set()) if node is not None else math.inf
        entries.append({
            "tensor": name,
            "op_type": node.op_type if node is not None else ("input" if name in inputs else None),
            "node": (node.name or None) if node is not None else None,
            "sqnr_db": s["sqnr_db"],
            **({"qdq_sqnr_db": s["qdq_sqnr_db"]} if "qdq_sqnr_db" in s else {}),
            "match": s.get("match"),
            "introduced_db": None if node is None else _clamp(before) - s["sqnr_db"],
            "order": index,
        })
    return entries


def _clamp(db: float) -> float:
    return -SQNR_LIMIT if math.isnan(db) else min(SQNR_LIMIT, max(-SQNR_LIMIT, db))


def _hint(ranked: list[dict[str, Any]]) -> str | None:
    """Name the nodes that add the most error (within half of the worst one's share)."""
    culprits = [e for e in ranked if e["introduced_db"] is not None and e["introduced_db"] >= INTRODUCED_DB]
    if not culprits:
        return None
    culprits.sort(key=lambda e: -e["introduced_db"])
    culprits = [e for e in culprits if e["introduced_db"] >= culprits[0]["introduced_db"] / 2][:HINT_NODES]
    names = [e["node"] or e["tensor"] for e in culprits]

    def why(e: dict[str, Any]) -> str:
        if e["sqnr_db"] + e["introduced_db"] >= SQNR_LIMIT:
            return f"{e['op_type']} -> {e['tensor']} (its inputs match; its output is at {e['sqnr_db']:.1f} dB)"
        return f"{e['op_type']} -> {e['tensor']} ({e['introduced_db']:.1f} dB worse than its inputs)"

    unnamed = [e for e in culprits if not e["node"]]
    note = ""
    if unnamed:
        ops = ",".join(sorted({e["op_type"] for e in unnamed}))
        note = (f" (unnamed nodes go by their first output tensor, the name edgeops convert gives them; "
                f"or try --exclude-op-types {ops})")
    return f"exclude these nodes: --exclude-nodes {','.join(names)}{note}; the error starts at " + ", ".join(
        why(e) for e in culprits)
