"""Run onnx's own backend node tests through the TFLite exporter and LiteRT.

``onnx.backend.test.loader.load_node_model_tests()`` is a suite of one-node models with inputs
and expected outputs written by the ONNX authors; it catches what our own parity tests miss.
Each test of an op we register is exported (its shapes are static already), run in LiteRT and
compared with the expected outputs. Outcomes: ``pass``; ``fail`` (ran, wrong numbers);
``unsupported`` (the exporter refused the node with a reason, e.g. a float64 or integer variant or
an attribute TFLite has no kernel for); ``error`` (anything else: a bug).

``python -m edgeops.convert.tflite.nodetests [--op Conv ...] [-v]`` prints the summary per op;
``--markdown docs/tflite_ops.md`` writes the supported-op table with these results.
"""

from __future__ import annotations

import argparse
import functools
import os
import sys
from collections import Counter, defaultdict
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass
class Outcome:
    test: str
    op_type: str
    status: str  # pass | fail | unsupported | error
    detail: str = ""


# The node tests feed weights, shapes and axes as graph inputs; exported models have them as
# initializers (TFLite kernels want constant weights, and shapes are folded before conversion).
# For these op inputs (by position) the harness turns the test's values into initializers, so the
# converter is tested the way it is used.
CONSTANT_INPUTS: dict[str, tuple[int, ...]] = {
    "Conv": (1, 2), "ConvTranspose": (1, 2), "Gemm": (1, 2), "PRelu": (1,), "BatchNormalization": (1, 2, 3, 4),
    "Reshape": (1,), "Squeeze": (1,), "Unsqueeze": (1,), "Split": (1,), "Slice": (1, 2, 3, 4), "Pad": (1, 2, 3),
    "Resize": (1, 2, 3), "ReduceMean": (1,), "ReduceMax": (1,), "ReduceMin": (1,), "ReduceSum": (1,),
    "Clip": (1, 2), "Expand": (1,), "Tile": (1,), "InstanceNormalization": (1, 2),
    "ReduceProd": (1,), "ReduceL1": (1,), "ReduceL2": (1,), "ReduceLogSum": (1,), "ReduceLogSumExp": (1,),
    "ReduceSumSquare": (1,), "Upsample": (1,),
    "Dropout": (1, 2),
    "LSTM": (1, 2, 3, 4, 7), "GRU": (1, 2, 3, 4),
}


def node_tests(op_types: set[str] | None = None) -> list[Any]:
    """The onnx node test cases (not the ``_expanded`` function bodies) of ``op_types`` (default: every registered op)."""
    from .catalog import load_all

    wanted = op_types or set(load_all())
    return [c for c in _all_cases() if "_expanded" not in c.name and _op_type(c) in wanted]


@functools.lru_cache(maxsize=1)
def _all_cases() -> tuple[Any, ...]:
    import warnings

    from onnx.backend.test.loader import load_node_model_tests

    with warnings.catch_warnings():  # the generators overflow casts on purpose
        warnings.simplefilter("ignore")
        with np.errstate(all="ignore"):
            return tuple(load_node_model_tests())


def _op_type(case: Any) -> str | None:
    model = case.model
    if model is None:
        return None
    ops = {n.op_type for n in model.graph.node}
    return ops.pop() if len(ops) == 1 else None


def run_case(case: Any) -> Outcome:
    from ...errors import EdgeOpsError, UnsupportedOpsError
    from .exporter import export

    model = case.model
    op = model.graph.node[0].op_type
    inits = {i.name for i in model.graph.initializer}
    in_names = [i.name for i in model.graph.input if i.name not in inits]
    out_names = [o.name for o in model.graph.output]
    inputs, expected = (list(map(_array, part)) for part in case.data_sets[0])
    if any(not isinstance(a, np.ndarray) for a in list(inputs) + list(expected)):
        return Outcome(case.name, op, "unsupported", "sequence or optional values")
    model, feeds = _freeze(model, dict(zip(in_names, inputs)))
    try:
        exported = export(model)
    except UnsupportedOpsError as exc:
        return Outcome(case.name, op, "unsupported", exc.problems[0][2] if exc.problems else str(exc))
    except EdgeOpsError as exc:
        return Outcome(case.name, op, "unsupported", str(exc).splitlines()[0])
    except Exception as exc:  # noqa: BLE001 - a converter bug, reported as such
        return Outcome(case.name, op, "error", f"export: {type(exc).__name__}: {exc}")
    try:
        got = _run_litert(exported.data, feeds, out_names)
    except Exception as exc:  # noqa: BLE001
        return Outcome(case.name, op, "error", f"litert: {type(exc).__name__}: {str(exc)[:200]}")
    rtol, atol = case.rtol, case.atol  # the suite's own tolerances (1e-3, 1e-7 unless a test says otherwise)
    for name, want, have in zip(out_names, expected, got):
        have = np.asarray(have)
        if have.shape != want.shape:
            return Outcome(case.name, op, "fail", f"{name}: shape {have.shape} != {want.shape}")
        if have.dtype != want.dtype and not (want.dtype == np.int64 and have.dtype == np.int32):
            return Outcome(case.name, op, "fail", f"{name}: dtype {have.dtype} != {want.dtype}")
        if not np.allclose(have.astype(np.float64), want.astype(np.float64), rtol=rtol, atol=atol, equal_nan=True):
            err = float(np.max(np.abs(have.astype(np.float64) - want.astype(np.float64))))
            return Outcome(case.name, op, "fail", f"{name}: max abs error {err:.3g}")
    return Outcome(case.name, op, "pass")


def _array(value: Any) -> Any:
    """Node-test data as numpy: TensorProtos (the Cast tests) and numpy scalars (Pad's value) included."""
    import onnx
    from onnx import numpy_helper

    if isinstance(value, onnx.TensorProto):
        return numpy_helper.to_array(value)
    if isinstance(value, np.generic):
        return np.asarray(value)
    return value


def _freeze(model: Any, feeds: dict[str, np.ndarray]) -> tuple[Any, dict[str, np.ndarray]]:
    """A copy of ``model`` whose parameter inputs (``CONSTANT_INPUTS``) are initializers."""
    import onnx
    from onnx import numpy_helper

    m = onnx.ModelProto()
    m.CopyFrom(model)
    node = m.graph.node[0]
    names = {node.input[i] for i in CONSTANT_INPUTS.get(node.op_type, ()) if i < len(node.input) and node.input[i]}
    names &= set(feeds)
    for name in names:
        m.graph.initializer.append(numpy_helper.from_array(feeds[name], name))
    keep = [i for i in m.graph.input if i.name not in names]
    del m.graph.input[:]
    m.graph.input.extend(keep)
    return m, {k: v for k, v in feeds.items() if k not in names}


def _run_litert(data: bytes, feeds: dict[str, np.ndarray], out_names: list[str]) -> list[np.ndarray]:
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_content=data)
    runner = it.get_signature_runner()
    result = runner(**{k: np.ascontiguousarray(v) for k, v in feeds.items()})
    return [result[n] for n in out_names]


def summarize(outcomes: list[Outcome]) -> dict[str, tuple[int, int]]:
    """op type -> (passed, run) where "run" counts every test of the op, refused ones included."""
    per: dict[str, list[Outcome]] = defaultdict(list)
    for o in outcomes:
        per[o.op_type].append(o)
    return {op: (sum(o.status == "pass" for o in os_), len(os_)) for op, os_ in sorted(per.items())}


def versions() -> str:
    """The packages whose behaviour the results depend on."""
    from importlib.metadata import version

    return ", ".join(f"{p} {version(p)}" for p in ("onnx", "onnxruntime", "ai-edge-litert"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--op", action="append", help="only this op type (repeatable)")
    parser.add_argument("-v", "--verbose", action="store_true", help="print every test that did not pass")
    parser.add_argument("--markdown", help="write the supported-op table with these results to this file")
    args = parser.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    outcomes = [run_case(c) for c in node_tests(set(args.op) if args.op else None)]
    counts = Counter(o.status for o in outcomes)
    for op, (passed, run) in summarize(outcomes).items():
        print(f"{op:24s} {passed:3d}/{run:<3d}")
    if args.verbose:
        for o in outcomes:
            if o.status != "pass":
                print(f"  {o.status:11s} {o.test}: {o.detail}")
    print(", ".join(f"{k} {v}" for k, v in sorted(counts.items())), f"of {len(outcomes)} node tests")
    if args.markdown:
        from .catalog import supported_ops_table

        table = supported_ops_table(summarize(outcomes))
        with open(args.markdown, "w") as f:
            f.write("# ONNX ops the TFLite exporter converts\n\n"
                    "Generated by `python -m edgeops.convert.tflite.nodetests --markdown docs/tflite_ops.md` from the "
                    "converter registry and onnx's backend node tests (passed / tests of that op, refused variants such "
                    "as float64 or integer inputs included; `-v` lists why each one did not pass).\n\n"
                    f"Versions: {versions()}.\n\n"
                    f"{len(summarize(outcomes))} op types with node tests: "
                    + ", ".join(f"{v} {k}" for k, v in sorted(counts.items()))
                    + f" of {len(outcomes)} tests. \"unsupported\" means the exporter refused the variant with a reason "
                    "(no such TFLite type or kernel); \"fail\" would be a wrong answer.\n\n" + table)
    return 0 if counts.get("error", 0) == 0 and counts.get("fail", 0) == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
